#!/usr/bin/env bash
# Dovecot auth-policy endpoint benchmark (issue 8, docs/benchmarks.md "Dovecot auth policy
# endpoint"): keep-alive HTTP clients, one request at a time per connection as Dovecot's auth
# processes send them, mixed allow / report (75 % successes, 25 % failures), client IPs drawn
# from DISTINCT_IPS addresses and logins from 100,000 names.
#
#   scripts/bench/auth_policy.sh [CONNECTIONS] [SECONDS] [DISTINCT_IPS]     (default 32 10 1000000)
#
# The load generator is scripts/bench/auth_load.rs (std only, built with rustc -O). mxguard is
# $MXGUARD_BIN or a release build in $CARGO_TARGET_DIR (default target/), run with a memory
# store. Prints the load generator's line and mxguard's resident memory before and after.
# Not part of scripts/test.sh: a measurement, not a pass/fail test. Keep runs short: the
# machine is shared.
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-32}
secs=${2:-10}
ips=${3:-1000000}
bin=${MXGUARD_BIN:-${CARGO_TARGET_DIR:-target}/release/mxguard}
[ -x "$bin" ] || { echo "auth_policy.sh: $bin missing (cargo build --release --locked -p mxguard)" >&2; exit 1; }
tools=${TMPDIR:-/tmp}/mxguard-bench-tools
mkdir -p "$tools"
if [ ! -x "$tools/auth_load" ] || [ scripts/bench/auth_load.rs -nt "$tools/auth_load" ]; then
  rustc -O --edition 2021 -o "$tools/auth_load" scripts/bench/auth_load.rs
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/mxbench-auth.XXXXXX")
port=$((21000 + RANDOM % 8000))
cat >"$dir/mxguard.toml" <<EOF
[policy]
listen = ["inet:127.0.0.1:$((port + 1))"]
[control]
socket = "$dir/control.sock"
[store]
type = "memory"
[log]
level = "warn"
[auth_policy]
listen = "127.0.0.1:$port"
api_header = "X-API-Key: bench"
EOF
"$bin" serve --config "$dir/mxguard.toml" >"$dir/mxguard.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "mxguard pid $pid, RSS at start $(rss)"
"$tools/auth_load" "127.0.0.1:$port" 4 1 "$ips" "X-API-Key: bench" >/dev/null   # warm-up
echo "connections=$conns"
"$tools/auth_load" "127.0.0.1:$port" "$conns" "$secs" "$ips" "X-API-Key: bench"
echo "mxguard RSS after: $(rss)"
grep -c 'ALERT' "$dir/mxguard.log" | sed 's/^/alert log lines: /'
