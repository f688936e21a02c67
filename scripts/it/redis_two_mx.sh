#!/usr/bin/env bash
# Two MX hosts sharing one Redis (issue 10), end to end with real processes: a redis-server
# started here on a loopback port from a temp dir (append-only file, so a restart keeps its
# data), and two mxguard daemons A and B with `[store] type = "redis"`. Each host has its own
# nftables table inside its own network namespace (the host's ruleset is never touched).
#   * a triplet greylisted through A passes through B after the delay;
#   * a quota of 4 messages/hour per login, charged 2 on A and 2 on B, is then enforced on
#     both (HOLD);
#   * a ban from A's jail (SASL failures in A's log) appears in B's nftables set within
#     seconds, and B's policy refuses the address; `mxguard unban` on B lifts it on A;
#   * fault injection under load (8 connections to A): Redis paused (SIGSTOP) and killed and
#     restarted: every request is answered within its budget (store timeout 250 ms), no
#     panic, the outage is in /metrics, and the state (greylist, quota, bans) is there after.
#
# Set MXGUARD_REQUIRE_NETNS=1 to fail (not skip) when namespaces cannot be created.
source "$(dirname "$0")/lib.sh"
it_init ip nft redis-server
HERE=$(cd "$(dirname "$0")" && pwd)

NSA=mxr-a-$$
NSB=mxr-b-$$
it_netns "$NSA" "$NSB"

REDIS_PORT=$(it_port 0)
mkdir -p "$IT_DIR/redis"
redis_start() {
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$IT_DIR/redis" --save "" \
    --appendonly yes --appendfsync always >>"$IT_DIR/redis.log" 2>&1 &
  REDIS_PID=$!
  it_track_pid "$REDIS_PID"
  it_wait_port "$REDIS_PORT" 10
}
redis_start || die "redis-server did not start"

FILTERS=$(cd "$HERE/../../../shared/corpus/fail2ban/config" && pwd)
LOG=$IT_DIR/mail.log
: >"$LOG"
DELAY=2
# conf NAME POLICY METRICS NETNS [JAIL]: writes $IT_DIR/NAME.toml
conf() {
  cat >"$IT_DIR/$1.toml" <<CONF
[policy]
listen = ["inet:127.0.0.1:$2"]
[greylist]
delay = "${DELAY}s"
[store]
type = "redis"
url = "redis://127.0.0.1:$REDIS_PORT/0"
prefix = "two-mx:"
timeout = "250ms"
sync_interval = "500ms"
[control]
socket = "$IT_DIR/$1.sock"
[metrics]
listen = "127.0.0.1:$3"
[bans]
poll_interval = "100ms"
[[action]]
name = "nftables"
type = "nftables"
command = ["ip", "netns", "exec", "$4", "nft"]
[[limit]]
name = "per-user"
key = ["sasl_username"]
count = "messages"
rate = ["4/1h"]
action = "HOLD quota %n reached"
signal = false
CONF
  if [ "${5:-}" = jail ]; then
    cat >>"$IT_DIR/$1.toml" <<CONF
[[jail]]
name = "postfix-sasl"
filter = "postfix[mode=auth]"
filter_dir = "$FILTERS"
logpath = ["$LOG"]
maxretry = 3
bantime = "1h"
CONF
  fi
}
PA=$(it_port 1); PB=$(it_port 2); MA=$(it_port 3); MB=$(it_port 4)
conf a "$PA" "$MA" "$NSA" jail
conf b "$PB" "$MB" "$NSB"

# start NAME PORT: runs a daemon, records its pid in A_PID / B_PID.
start() {
  "$MXGUARD_BIN" serve --config "$IT_DIR/$1.toml" >>"$IT_DIR/mxguard-$1.log" 2>&1 &
  local pid=$!
  it_track_pid "$pid"
  eval "${1^^}_PID=$pid"
  it_wait_port "$2" 20
}
check start-a start a "$PA"
check start-b start b "$PB"

ask() { local port=$1; shift; python3 "$HERE/policy_client.py" ask "$port" "$@"; }
triplet=(client_address=192.0.2.10 client_name=mx.sender.example sender=s@sender.example recipient=r@dest.example)
r=$(ask "$PA" "${triplet[@]}")
check "greylist: first attempt through A is deferred" test "${r#action=DEFER}" != "$r"
T_FIRST=$(it_now)
r=$(ask "$PB" "${triplet[@]}")
check "greylist: an early retry through B is deferred too" test "${r#action=DEFER}" != "$r"
while ! it_elapsed_ge "$T_FIRST" $((DELAY + 1)); do sleep 0.2; done
r=$(ask "$PB" "${triplet[@]}")
check "greylist: the retry through B after the delay passes ($r)" test "${r#action=DEFER}" = "$r"

# The quota: END-OF-MESSAGE charges, two on each host.
eom() { ask "$1" protocol_state=END-OF-MESSAGE client_address=192.0.2.20 sasl_username=alice \
  sender=alice@dest.example recipient=x@else.example recipient_count=1 size=1000 queue_id="Q$2"; }
rcpt() { ask "$1" client_address=192.0.2.20 sasl_username=alice sender=alice@dest.example recipient=y@else.example; }
ok=1
for i in 1 2; do
  r=$(rcpt "$PA"); [ "${r#action=HOLD}" = "$r" ] || ok=0
  eom "$PA" "A$i" >/dev/null
  r=$(rcpt "$PB"); [ "${r#action=HOLD}" = "$r" ] || ok=0
  eom "$PB" "B$i" >/dev/null
done
check "quota: 4 messages (2 on A, 2 on B) are accepted" test $ok = 1
r=$(rcpt "$PA")
check "quota: the 5th on A is held ($r)" test "${r#action=HOLD}" != "$r"
r=$(rcpt "$PB")
check "quota: the 5th on B is held too ($r)" test "${r#action=HOLD}" != "$r"

# A ban from A's jail reaches B's firewall.
sasl_fail() { it_sasl_fail "$LOG" "$1"; }
in_set() { ip netns exec "$1" nft list set inet mxguard ban4 2>/dev/null | grep -q "$2"; }
not_in_set() { ! in_set "$@"; }
for _ in 1 2 3; do sasl_fail 203.0.113.50; done
check "ban: A's jail bans it in A's set" it_wait_for 10 in_set "$NSA" 203.0.113.50
T_BAN=$(it_now)
check "ban: it appears in B's nftables set within 5 s" it_wait_for 5 in_set "$NSB" 203.0.113.50
info "ban reached B $(awk -v s="$T_BAN" -v n="$(it_now)" 'BEGIN { printf "%.1f", n - s }') s after A's"
check "ban: B's element has a timeout (the remaining time)" bash -c \
  "ip netns exec $NSB nft list set inet mxguard ban4 | grep -Eq '203\.0\.113\.50 timeout (59m[0-9]{1,2}s|1h)'"
r=$(ask "$PB" client_address=203.0.113.50 sender=a@b.example recipient=c@dest.example)
check "ban: B's policy refuses the address ($r)" test "${r#action=REJECT}" != "$r"
check "unban on B" "$MXGUARD_BIN" unban 203.0.113.50 --config "$IT_DIR/b.toml"
check "unban: lifted in A's set within 5 s" it_wait_for 5 not_in_set "$NSA" 203.0.113.50
for _ in 1 2 3; do sasl_fail 203.0.113.51; done
check "ban again (kept for the fault tests)" it_wait_for 10 in_set "$NSB" 203.0.113.51

# Fault injection under load.
metric() { # metric PORT NAME: the sample's value (first match), or empty
  python3 -c '
import sys, urllib.request
for l in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines():
    if l.startswith(sys.argv[2] + " ") or l.startswith(sys.argv[2] + "{"):
        print(l.rsplit(" ", 1)[1]); break
' "$1" "$2"
}
check "metrics: redis up before the faults" test "$(metric "$MA" mxguard_store_redis_up)" = 1
python3 "$HERE/policy_client.py" load "$PA" 9 8 >"$IT_DIR/load.json" &
LOAD_PID=$!
it_track_pid "$LOAD_PID"
sleep 1
kill -STOP "$REDIS_PID"; info "redis paused"
sleep 2
paused_up=$(metric "$MA" mxguard_store_redis_up)
kill -CONT "$REDIS_PID"; info "redis resumed"
sleep 1
kill -KILL "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null; info "redis killed"
sleep 2
killed_up=$(metric "$MA" mxguard_store_redis_up)
redis_start || die "redis-server did not restart"; info "redis restarted"
wait "$LOAD_PID"
info "load during the faults: $(cat "$IT_DIR/load.json")"
check "faults: metrics said down while paused" test "$paused_up" = 0
check "faults: metrics said down while killed" test "$killed_up" = 0
read -r answered unanswered maxms p99 < <(python3 -c '
import json, sys; d = json.load(open(sys.argv[1]))
print(d["answered"], d["unanswered"], d["max_ms"], d["p99_ms"])' "$IT_DIR/load.json")
check "faults: thousands of requests answered ($answered)" test "$answered" -gt 1000
check "faults: none unanswered ($unanswered)" test "$unanswered" = 0
# Budget: each store operation is bounded by the 250 ms timeout and a request makes at most
# three in a row (greylist, limits, account); the slowest reply must stay below that.
check "faults: the slowest reply (${maxms} ms) is within the budget (750 ms)" \
  awk -v m="$maxms" 'BEGIN { exit !(m < 750) }'
up_again() { [ "$(metric "$MA" mxguard_store_redis_up)" = 1 ]; }
# The restart is noticed by the next probe once a request touches the store.
poke() { ask "$PA" client_address=192.0.2.99 sender=p@p.example recipient=p@dest.example >/dev/null; up_again; }
check "faults: redis up again in /metrics" it_wait_for 10 poke
outages=$(metric "$MA" mxguard_store_redis_outages_total)
errors=$(metric "$MA" mxguard_store_redis_errors_total)
logged=$(grep -c 'redis store unavailable' "$IT_DIR/mxguard-a.log")
info "outages $outages, errors $errors, outage log lines $logged"
check "faults: both outages counted in /metrics ($outages)" test "${outages:-0}" -ge 2
check "faults: errors counted ($errors)" test "${errors:-0}" -gt 0
check "faults: each outage logged once ($logged lines for $outages outages)" test "$logged" = "$outages"
check "faults: no panic" bash -c "! grep -qi panick $IT_DIR/mxguard-a.log $IT_DIR/mxguard-b.log"
check "faults: both daemons still running" kill -0 "$A_PID" "$B_PID"
r=$(ask "$PB" "${triplet[@]}")
check "after: the passed triplet still passes ($r)" test "${r#action=DEFER}" = "$r"
r=$(rcpt "$PB")
check "after: the quota is still used up ($r)" test "${r#action=HOLD}" != "$r"
r=$(ask "$PA" client_address=203.0.113.51 sender=a@b.example recipient=c@dest.example)
check "after: the ban still holds ($r)" test "${r#action=REJECT}" != "$r"
r=$(ask "$PA" client_address=192.0.2.77 sender=n@new.example recipient=n@dest.example)
check "after: a new triplet is greylisted again ($r)" test "${r#action=DEFER}" != "$r"

it_finish
