#!/usr/bin/env bash
# Rate-limit benchmark (issue 7): mxguard with 5 [[limit]] rules (per-login messages and
# recipients, per-client, per-/24 and per-sender-domain rates; greylisting off) and the
# do-nothing DUNNO server as the ceiling, driven by the same closed-loop generator
# (../shared/bench/policy_load.rs) with the same request stream.
#
#   scripts/bench/limits.sh                      c=8, 20000 requests, unique mix, 30% SASL
#   scripts/bench/limits.sh --concurrency 32     extra arguments go to policy_load
#
# postfwd2 with equivalent rate rules is not started here (see docs/limits.md "Benchmark":
# its figures come from ../shared/bench/README.md, measured with the same generator).
# Prints one line per server: req/s, p50/p99 latency, server CPU seconds, peak RSS.
# Not part of scripts/test.sh: it is a measurement, not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
shared=${MXGUARD_SHARED_BENCH:-$root/../shared/bench}
tools=${TMPDIR:-/tmp}/mxguard-bench-tools
mkdir -p "$tools"
for t in policy_load dunno_server; do
  if [ ! -x "$tools/$t" ] || [ "$shared/$t.rs" -nt "$tools/$t" ]; then
    rustc -O --edition 2021 -o "$tools/$t" "$shared/$t.rs"
  fi
done
if [ -z "${MXGUARD_BIN:-}" ]; then
  cargo build --release --locked -p mxguard
  MXGUARD_BIN=${CARGO_TARGET_DIR:-$root/target}/release/mxguard
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--concurrency 8 --requests 20000 --duration-s 30 --mix unique --sasl-frac 0.3)

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
port=$((30000 + RANDOM % 2000))

cat >"$dir/mxguard.toml" <<EOF
[policy]
listen = ["inet:127.0.0.1:$port"]
[store]
type = "${STORE:-embedded}"
path = "$dir/state"
[greylist]
enabled = false
[control]
socket = "$dir/control.sock"
[log]
level = "warn"

[[limit]]
name = "user-messages"
key = ["sasl_username"]
rate = ["100/1h", "500/1d"]
[[limit]]
name = "user-recipients"
key = ["sasl_username"]
count = "recipients"
rate = ["500/1d"]
[[limit]]
name = "client"
key = ["client_address"]
rate = ["50/1m"]
[[limit]]
name = "network"
key = ["client_prefix"]
rate = ["200/1m"]
[[limit]]
name = "sender-domain"
key = ["sender_domain"]
rate = ["1000/1h"]
EOF

# measure NAME PID: runs the generator against 127.0.0.1:$port, prints one result line.
measure() {
  local name=$1 pid=$2 t0 t1 rss out
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$("$tools/policy_load" --target "127.0.0.1:$port" "${args[@]}")
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  python3 - "$name" "$out" "$(( (t1 - t0) ))" "$(getconf CLK_TCK)" "$rss" <<'PY'
import json, sys
name, out, ticks, hz, rss = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
lat = out.get("lat_ms", {})
print(f"| {name} | {out.get('ok')} | {out.get('rps')} | {lat.get('p50')} | {lat.get('p99')} | "
      f"{ticks/hz:.2f} | {rss/1024:.0f} | {json.dumps(out.get('actions', {}))} |")
PY
}

echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); generator: ${args[*]}"
echo "| server | requests | req/s | p50 ms | p99 ms | server CPU s | peak RSS MiB | actions |"
echo "|---|---|---|---|---|---|---|---|"

"$tools/dunno_server" "127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
measure "DUNNO ceiling" "${pids[-1]}"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
sleep 0.3

"$MXGUARD_BIN" serve --config "$dir/mxguard.toml" 2>"$dir/mxguard.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
measure "mxguard, 5 limits (${STORE:-embedded} store)" "${pids[-1]}"
