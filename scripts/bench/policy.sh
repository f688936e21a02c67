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
source scripts/bench/lib.sh
build_load_tools "$shared" "$tools"
ensure_postgrey || exit 1

if [ -z "${MXGUARD_BIN:-}" ]; then
  echo "building mxguard (release)" >&2
  cargo build --release --locked -p mxguard
  MXGUARD_BIN=${CARGO_TARGET_DIR:-$root/target}/release/mxguard
fi

echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), postgrey $(dpkg-query -W -f='${Version}' postgrey), $("$MXGUARD_BIN" --version 2>/dev/null || echo mxguard)" >&2
exec python3 scripts/bench/policy_bench.py \
  --policy-load "$tools/policy_load" --dunno-server "$tools/dunno_server" \
  --mxguard "$MXGUARD_BIN" "$@"
