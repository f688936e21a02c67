#!/usr/bin/env bash
# Rate-limit benchmark (issue 7), in one run on the same request stream:
#   * the do-nothing DUNNO server (../shared/bench/dunno_server.rs): the machine's ceiling;
#   * postfwd2 1.35 (Debian package `postfwd`, installed here without starting its service)
#     with five rate rules: per-login messages per hour and per day, per-login recipients
#     per day, per-client messages per minute, per-sender-domain messages per hour;
#   * mxguard with the equivalent five [[limit]]s (plus a per-/24 one: six windows in all;
#     embedded store, greylisting off).
# The closed-loop generator is ../shared/bench/policy_load.rs (Postfix 3.7 RCPT requests,
# 30 % with sasl_username); each server is measured as a process group
# (scripts/bench/group_measure.py: CPU, peak RSS and PSS sums, processes).
#
# Then the memory phase: a fresh mxguard gets KEYS (default 250000) END-OF-MESSAGE requests,
# each with its own client, login and sender domain (scripts/bench/limits_keys.py), which
# charge 4*KEYS + min(KEYS, 65536) distinct limit keys (1,065,536 for the default), and its RSS is
# read before and after.
#
#   scripts/bench/limits.sh                      c=8, 20000 requests or 30 s, unique mix
#   scripts/bench/limits.sh --concurrency 32 --requests 50000 --duration-s 30 --mix unique --sasl-frac 0.3
#   KEYS=0 scripts/bench/limits.sh               skip the memory phase
#
# Needs root (apt-get, postfwd2 drops to nobody). Not part of scripts/test.sh: a measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh
shared=${MXGUARD_SHARED_BENCH:-$root/../shared/bench}
tools=${TMPDIR:-/tmp}/mxguard-bench-tools
build_load_tools "$shared" "$tools"
ensure_package postfwd2 postfwd || exit 1
if [ -z "${MXGUARD_BIN:-}" ]; then
  cargo build --release --locked -p mxguard
  MXGUARD_BIN=${CARGO_TARGET_DIR:-$root/target}/release/mxguard
fi
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--concurrency 8 --requests 20000 --duration-s 30 --mix unique --sasl-frac 0.3)
KEYS=${KEYS:-250000}

dir=$(mktemp -d)
chmod 755 "$dir"
pids=()      # process groups we started (each server runs in its own session)
cleanup() {
  local g
  for g in "${pids[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  sleep 0.5
  for g in "${pids[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
port=$((30000 + RANDOM % 2000))

write_mxguard_config() { # write_mxguard_config FILE STATE_DIR
  cat >"$1" <<EOF
[policy]
listen = ["inet:127.0.0.1:$port"]
[store]
type = "${STORE:-embedded}"
path = "$2"
[greylist]
enabled = false
[control]
socket = "$2/control.sock"
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
}

# postfwd2: the same windows as rate()/rcpt() rules (postfwd counts fixed windows from the
# first hit), Debian's default ARGS (request cache 600 s, rdomain-only, no size). It runs
# twice: as Debian ships it (a log line per request) and with --perfmon (no logging, its
# best case). The ratio column is against the first.
cat >"$dir/postfwd.cf" <<'EOF'
id=USER_MSG_H; sasl_username=~.; action=rate(sasl_username/100/3600/450 4.7.1 hourly message limit reached)
id=USER_MSG_D; sasl_username=~.; action=rate(sasl_username/500/86400/450 4.7.1 daily message limit reached)
id=USER_RCPT_D; sasl_username=~.; action=rcpt(sasl_username/500/86400/450 4.7.1 daily recipient limit reached)
id=CLIENT; client_address=~.; action=rate(client_address/50/60/450 4.7.1 client rate limit reached)
id=SENDER_DOMAIN; sender_domain=~.; action=rate(sender_domain/1000/3600/450 4.7.1 sender domain rate limit reached)
EOF
mkdir -p "$dir/postfwd"
chown nobody:nogroup "$dir/postfwd"

pgid_of() { awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[3] }' "/proc/$1/stat"; }

# measure NAME PGID: the generator against 127.0.0.1:$port; prints one table row and keeps
# the req/s in $LAST_RPS.
measure() {
  local name=$1 pgid=$2 out
  out=$(python3 scripts/bench/group_measure.py "$pgid" -- "$tools/policy_load" --target "127.0.0.1:$port" "${args[@]}")
  LAST_RPS=$(python3 - "$name" "$out" "${BASE_RPS:-0}" <<'PY'
import json, sys
name, out, base = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
lat, srv, ok = out.get("lat_ms", {}), out["server"], max(out.get("ok") or 0, 1)
ratio = f"{out['rps'] / base:.1f}x" if base else "-"
acts = ", ".join(f"{k} {v * 100 // ok}%" for k, v in sorted(out.get("actions", {}).items()))
print(f"| {name} | {out.get('ok')} | {out['rps']:,.0f} | {lat.get('p50')} | {lat.get('p99')} | "
      f"{srv['cpu_s'] * 1e6 / ok:,.0f} | {srv['peak_rss_kib'] / 1024:.0f} ({srv['peak_pss_kib'] / 1024:.0f}) | "
      f"{srv['procs']} | {ratio} | {acts} |", file=sys.stderr)
print(out["rps"])
PY
)
}

echo "host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); generator: ${args[*]}"
echo "postfwd2 $(dpkg-query -W -f='${Version}' postfwd), $("$MXGUARD_BIN" --version)"
echo "| server | requests | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB (PSS) | procs | vs postfwd2 | actions |"
echo "|---|---|---|---|---|---|---|---|---|---|"
exec 4>&2 2>&1   # rows go to stdout in order

setsid "$tools/dunno_server" "127.0.0.1:$port" >/dev/null 2>&1 &
g=$!; pids+=("$g")
wait_port "$port"
measure "DUNNO ceiling" "$g"
kill -TERM -- "-$g"; wait "$g" 2>/dev/null || true
sleep 0.3

# run_postfwd NAME ARGS...: starts postfwd2 (it daemonizes into its own session) and measures it.
run_postfwd() {
  local name=$1 master g; shift
  postfwd2 --file "$dir/postfwd.cf" --interface 127.0.0.1 --port "$port" --user nobody --group nogroup \
    --pidfile "$dir/postfwd/postfwd2.pid" --cache_socket "unix::$dir/postfwd/cache.sock" \
    --cache=600 --cache-rdomain-only --cache-no-size --noidlestats "$@" >"$dir/postfwd.out" 2>&1
  wait_port "$port"
  for _ in $(seq 50); do [ -s "$dir/postfwd/postfwd2.pid" ] && break; sleep 0.1; done
  master=$(tr -dc 0-9 <"$dir/postfwd/postfwd2.pid")
  g=$(pgid_of "$master"); pids+=("$g")
  sleep 2   # let the pre-forked children start
  measure "$name" "$g"
  kill -TERM -- "-$g" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
  rm -f "$dir/postfwd/postfwd2.pid"
  sleep 0.5
}
# Debian's default: a syslog line per request. There is no /dev/log here, so syslog goes over
# UDP to a sink on 127.0.0.1:514 that drops it (as in ../shared/bench/README.md).
setsid python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 514))
while True:
    s.recv(65536)
' &
pids+=($!)
for _ in $(seq 50); do ss -Huln | grep -q '127.0.0.1:514 ' && break; sleep 0.1; done
run_postfwd "postfwd2, 5 rate rules, logging (Debian default)" --socktype udp
BASE_RPS=$LAST_RPS
run_postfwd "postfwd2, 5 rate rules, --perfmon (no logging)" --perfmon
PERFMON_RPS=$LAST_RPS

write_mxguard_config "$dir/mxguard.toml" "$dir/state"
setsid "$MXGUARD_BIN" serve --config "$dir/mxguard.toml" 2>"$dir/mxguard.log" &
g=$!; pids+=("$g")
wait_port "$port"
measure "mxguard, 5 limits (${STORE:-embedded} store)" "$g"
kill -TERM -- "-$g"; wait "$g" 2>/dev/null || true
exec 2>&4
python3 -c 'import sys; m, a, b = map(float, sys.argv[1:]); print(f"mxguard / postfwd2: {m / a:.1f}x (logging), {m / b:.1f}x (--perfmon)")' \
  "$LAST_RPS" "$BASE_RPS" "$PERFMON_RPS"

[ "$KEYS" -gt 0 ] || exit 0
# ------------------------------------------------------------------ memory with ~1M keys
sleep 0.5
write_mxguard_config "$dir/mxguard-mem.toml" "$dir/state-mem"
setsid "$MXGUARD_BIN" serve --config "$dir/mxguard-mem.toml" 2>"$dir/mxguard-mem.log" &
g=$!; pids+=("$g")
wait_port "$port"
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$g/status")
fill=$(python3 scripts/bench/limits_keys.py "127.0.0.1:$port" "$KEYS" 4)
sleep 3   # one write-behind pass to the redb file
rss_3s=$(awk '/VmRSS/ {print $2}' "/proc/$g/status")
sleep 12  # the allocator returns freed buffers with a delay
rss_15s=$(awk '/VmRSS/ {print $2}' "/proc/$g/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$g/status")
kill -TERM -- "-$g"; wait "$g" 2>/dev/null || true
disk=$(du -sk "$dir/state-mem" | cut -f1)
# the same keys loaded from disk by a restarted daemon: what holding them costs
setsid "$MXGUARD_BIN" serve --config "$dir/mxguard-mem.toml" 2>>"$dir/mxguard-mem.log" &
g=$!; pids+=("$g")
wait_port "$port"
sleep 2
rss_loaded=$(awk '/VmRSS/ {print $2}' "/proc/$g/status")
python3 - "$KEYS" "$fill" "$rss_before" "$rss_3s" "$rss_15s" "$hwm" "$rss_loaded" "$disk" <<'PY'
import json, sys
n, fill = int(sys.argv[1]), json.loads(sys.argv[2])
before, r3, r15, hwm, loaded, disk = (int(x) for x in sys.argv[3:9])
keys = 4 * n + min(n, 65536)
dunno = fill["actions"].get("DUNNO", 0)
mib = lambda k: f"{k / 1024:.0f}"
print()
print(f"memory: {n:,} END-OF-MESSAGE requests in {fill['elapsed_s']} s ({n / fill['elapsed_s']:,.0f}/s, "
      f"answers {fill['actions']}), {'all' if dunno == n else f'only {dunno:,}'} charged -> {keys:,} limit keys")
print("| keys | RSS idle MiB | RSS 3 s after MiB | RSS 15 s after MiB | peak RSS MiB | RSS after restart (loaded) MiB | bytes/key (loaded - idle) | state file MiB |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {keys:,} | {mib(before)} | {mib(r3)} | {mib(r15)} | {mib(hwm)} | {mib(loaded)} | "
      f"{(loaded - before) * 1024 / keys:.0f} | {mib(disk)} |")
PY
