#!/usr/bin/env bash
# Policy-service benchmark (issue 3, docs/benchmarks.md "Policy service: greylisting vs
# postgrey"): mxguard greylisting, postgrey 1.37 (Debian package) and a do-nothing DUNNO server,
# measured in one run with the same load generator and the same request streams.
#
#   scripts/bench/policy.sh                       full run (~4-6 min incl. the 1M-triplet fill)
#   scripts/bench/policy.sh --fill 0 --requests 5000 --duration-s 5    quick look
#
# Extra arguments go to scripts/bench/policy_bench.py (see its --help). Needs root for
# apt-get (postgrey) and for postgrey's setuid to its own user. The load generator and the
# DUNNO server are the std-only Rust tools in ../shared/bench (built here with rustc -O);
# mxguard is $MXGUARD_BIN or a release build in $CARGO_TARGET_DIR (default target/).
# Not part of scripts/test.sh: it is a measurement, not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
shared=${MXGUARD_SHARED_BENCH:-$root/../shared/bench}
[ -f "$shared/policy_load.rs" ] || { echo "policy.sh: $shared/policy_load.rs not found" >&2; exit 1; }

tools=${TMPDIR:-/tmp}/mxguard-bench-tools
mkdir -p "$tools"
for t in policy_load dunno_server; do
  if [ ! -x "$tools/$t" ] || [ "$shared/$t.rs" -nt "$tools/$t" ]; then
    echo "building $t with rustc -O" >&2
    rustc -O --edition 2021 -o "$tools/$t" "$shared/$t.rs"
  fi
done

if ! command -v postgrey >/dev/null 2>&1; then
  echo "installing postgrey (the system service is not started: policy-rc.d)" >&2
  export DEBIAN_FRONTEND=noninteractive
  made_policy_rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # exit 101 = "action forbidden": the maintainer scripts must not start the system postgrey
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy_rc=1
  fi
  rc=0
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgrey; } || rc=$?
  [ "$made_policy_rc" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { echo "policy.sh: installing postgrey failed ($rc)" >&2; exit 1; }
fi

if [ -z "${MXGUARD_BIN:-}" ]; then
  echo "building mxguard (release)" >&2
  cargo build --release --locked -p mxguard
  MXGUARD_BIN=${CARGO_TARGET_DIR:-$root/target}/release/mxguard
fi

echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), postgrey $(dpkg-query -W -f='${Version}' postgrey), $("$MXGUARD_BIN" --version 2>/dev/null || echo mxguard)" >&2
exec python3 scripts/bench/policy_bench.py \
  --policy-load "$tools/policy_load" --dunno-server "$tools/dunno_server" \
  --mxguard "$MXGUARD_BIN" "$@"
