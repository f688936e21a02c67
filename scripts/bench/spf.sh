#!/usr/bin/env bash
# SPF policy benchmark (issue 6, docs/benchmarks.md "SPF policy vs policyd-spf"): mxguard's
# [spf] and postfix-policyd-spf-python 3.0.4 (Debian package) side by side, against the same
# local DNS server (scripts/it/testdns.py on 127.0.0.1) and the same request streams.
#
#   scripts/bench/spf.sh                                  full run (~3 min)
#   scripts/bench/spf.sh --requests 5000 --duration-s 5   quick look
#
# Extra arguments go to scripts/bench/spf_bench.py (see its --help). Needs root for apt-get
# (postfix-policyd-spf-python, socat; system services are not started). The load generator is
# the std-only Rust tool in ../shared/bench (built here with rustc -O); mxguard is
# $MXGUARD_BIN or a release build in $CARGO_TARGET_DIR (default target/).
# Not part of scripts/test.sh: it is a measurement, not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
shared=${MXGUARD_SHARED_BENCH:-$root/../shared/bench}
[ -f "$shared/policy_load.rs" ] || { echo "spf.sh: $shared/policy_load.rs not found" >&2; exit 1; }

tools=${TMPDIR:-/tmp}/mxguard-bench-tools
mkdir -p "$tools"
if [ ! -x "$tools/policy_load" ] || [ "$shared/policy_load.rs" -nt "$tools/policy_load" ]; then
  echo "building policy_load with rustc -O" >&2
  rustc -O --edition 2021 -o "$tools/policy_load" "$shared/policy_load.rs"
fi

need=()
command -v policyd-spf >/dev/null 2>&1 || need+=(postfix-policyd-spf-python)
command -v socat >/dev/null 2>&1 || need+=(socat)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (system services are not started: policy-rc.d)" >&2
  export DEBIAN_FRONTEND=noninteractive
  made_policy_rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy_rc=1
  fi
  rc=0
  { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"; } || rc=$?
  [ "$made_policy_rc" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { echo "spf.sh: installing ${need[*]} failed ($rc)" >&2; exit 1; }
fi

if [ -z "${MXGUARD_BIN:-}" ]; then
  echo "building mxguard (release)" >&2
  cargo build --release --locked -p mxguard
  MXGUARD_BIN=${CARGO_TARGET_DIR:-$root/target}/release/mxguard
fi

echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), policyd-spf $(dpkg-query -W -f='${Version}' postfix-policyd-spf-python), $("$MXGUARD_BIN" --version 2>/dev/null || echo mxguard)" >&2
exec python3 scripts/bench/spf_bench.py --policy-load "$tools/policy_load" --mxguard "$MXGUARD_BIN" "$@"
