#!/usr/bin/env bash
# Shared-state benchmark (issue 10, docs/benchmarks.md "Redis store"): greylisting plus two
# rate limits with the state in Redis on loopback, side by side in one run with the same
# configuration on the embedded store, postgrey 1.37 (greylisting only, its local BerkeleyDB:
# the peer a Redis deployment replaces) and the do-nothing DUNNO server as the ceiling, all
# driven by the same closed-loop generator (../shared/bench/policy_load.rs) and request stream.
#
#   scripts/bench/redis.sh                         c=32, 100000 requests or 15 s, unique mix
#   scripts/bench/redis.sh --concurrency 8         extra arguments go to policy_load
#
# Per mxguard row it also reports Redis round trips per request (mxguard's own count of
# operations sent, /metrics mxguard_store_redis_operations_total) and Redis commands per
# request (INFO commandstats, commands run inside scripts included).
# Needs root (apt-get for postgrey, postgrey's setuid) and redis-server.
# Not part of scripts/test.sh: it is a measurement, not a pass/fail test.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
shared=${MXGUARD_SHARED_BENCH:-$root/../shared/bench}
tools=${TMPDIR:-/tmp}/mxguard-bench-tools
source scripts/bench/lib.sh
build_load_tools "$shared" "$tools"
ensure_postgrey || exit 1
command -v redis-server >/dev/null || { echo "redis.sh: needs redis-server (scripts/install-deps.sh)" >&2; exit 1; }
if [ -z "${MXGUARD_BIN:-}" ]; then
  cargo build --release --locked -p mxguard
  MXGUARD_BIN=${CARGO_TARGET_DIR:-$root/target}/release/mxguard
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--concurrency 32 --requests 100000 --duration-s 15 --mix unique --sasl-frac 0.3)

dir=$(mktemp -d)
chmod 755 "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
base=$((30000 + RANDOM % 2000))
port=$base; rport=$((base + 1)); mport=$((base + 2))

redis-server --bind 127.0.0.1 --port "$rport" --dir "$dir" --save "" --appendonly no >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_port "$rport"

# conf STORE-LINES: an mxguard config with greylisting and two limits.
conf() {
  cat <<EOF
[policy]
listen = ["inet:127.0.0.1:$port"]
[greylist]
delay = "1s"
[store]
$1
[control]
socket = "$dir/control.sock"
[metrics]
listen = "127.0.0.1:$mport"
[log]
level = "warn"

[[limit]]
name = "client"
key = ["client_address"]
rate = ["1000/1m"]
[[limit]]
name = "user-recipients"
key = ["sasl_username"]
count = "recipients"
rate = ["200/1h", "1000/1d"]
EOF
}
conf "type = \"embedded\"
path = \"$dir/state\"" >"$dir/embedded.toml"
conf "type = \"redis\"
url = \"redis://127.0.0.1:$rport/0\"
prefix = \"bench:\"" >"$dir/redis.toml"

redis_calls() { # total commands redis ran (INFO commandstats), the INFO calls excluded
  redis-cli -p "$rport" INFO commandstats | awk -F'[=,:]' '/^cmdstat_/ && $1 != "cmdstat_info" { n += $3 } END { print n + 0 }'
}
rtt_count() {
  python3 -c 'import sys, urllib.request
for l in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines():
    if l.startswith("mxguard_store_redis_operations_total "): print(l.split()[1]); break
else: print(0)' "$mport"
}

# measure NAME PID [redis]: runs the generator, prints one table row.
measure() {
  local name=$1 pid=$2 t0 t1 rss out c0=0 c1=0 o0=0 o1=0
  if [ "${3:-}" = redis ]; then c0=$(redis_calls); o0=$(rtt_count); fi
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$("$tools/policy_load" --target "127.0.0.1:$port" "${args[@]}")
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  if [ "${3:-}" = redis ]; then c1=$(redis_calls); o1=$(rtt_count); fi
  python3 - "$name" "$out" "$((t1 - t0))" "$(getconf CLK_TCK)" "$rss" "$((c1 - c0))" "$((o1 - o0))" "${3:-}" <<'PY'
import json, sys
name, out, ticks, hz, rss, calls, ops, redis = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
ok = out.get("ok") or 0
lat = out.get("lat_ms", {})
per = lambda n: f"{n / ok:.2f}" if redis == "redis" and ok else "-"
print(f"| {name} | {ok} | {out.get('rps')} | {lat.get('p50')} | {lat.get('p99')} | "
      f"{ticks / hz * 1e6 / max(ok, 1):.0f} | {rss / 1024:.0f} | {per(ops)} | {per(calls)} | "
      f"{json.dumps(out.get('actions', {}))} |")
PY
}

echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3); postgrey $(dpkg-query -W -f='${Version}' postgrey); generator: ${args[*]}"
echo "| server | requests | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB | Redis round trips/req | Redis commands/req | actions |"
echo "|---|---|---|---|---|---|---|---|---|---|"

run_server() { # run_server NAME MODE CMD...: start, measure, stop
  local name=$1 mode=$2; shift 2
  "$@" >"$dir/server.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$port" || { echo "$name did not start: $(tail -3 "$dir/server.log")" >&2; return 1; }
  measure "$name" "$pid" "$mode"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  sleep 0.5
}

run_server "DUNNO ceiling" - "$tools/dunno_server" "127.0.0.1:$port"
mkdir -p "$dir/postgrey"; chown postgrey:postgrey "$dir/postgrey" 2>/dev/null || true
run_server "postgrey 1.37 (greylist only, BerkeleyDB)" - \
  postgrey --inet="127.0.0.1:$port" --dbdir="$dir/postgrey" --delay=1
run_server "mxguard, greylist + 2 limits, embedded store" - \
  "$MXGUARD_BIN" serve --config "$dir/embedded.toml"
run_server "mxguard, greylist + 2 limits, Redis store" redis \
  "$MXGUARD_BIN" serve --config "$dir/redis.toml"
echo "redis after the run: used_memory $(redis-cli -p "$rport" INFO memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r'), keys $(redis-cli -p "$rport" DBSIZE)"
