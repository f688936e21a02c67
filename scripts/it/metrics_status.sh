#!/usr/bin/env bash
# End-to-end: `/metrics` and `mxguard status` of the real binary (embedded store), after
# policy requests, auth-policy requests and a jail ban from a followed log file.
#
# Checks: the scrape is OpenMetrics text with the request, greylist, store-latency, jail and
# auth-policy series moved; every metric in the scrape is in docs/metrics.md (the other
# direction, every documented metric exposed, needs traffic through every subsystem: that is
# crates/mxguard/tests/metrics.rs); `mxguard status` prints its sections with the bound
# listeners; `mxguard status --json` has the documented keys.
#
# Needs root (lib.sh's it_init), python3 (scripts/install-deps.sh).
set -uo pipefail
IT_NAME=metrics_status
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
it_init

POLICY_PORT=$(it_port 40)
AUTH_PORT=$(it_port 41)
METRICS_PORT=$(it_port 42)
LOG=$IT_DIR/mail.log
: >"$LOG"
CONF=$IT_DIR/mxguard.toml
cat >"$CONF" <<EOF2
[policy]
listen = ["inet:127.0.0.1:$POLICY_PORT"]
[control]
socket = "$IT_DIR/control.sock"
[store]
type = "embedded"
path = "$IT_DIR/state"
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[auth_policy]
listen = "127.0.0.1:$AUTH_PORT"
[greylist]
delay = "5m"
[[limit]]
name = "per-user"
key = ["sasl_username"]
count = "messages"
rate = ["100/1h"]
[bans]
poll_interval = "50ms"
[[jail]]
name = "postfix-sasl"
filter = "postfix[mode=auth]"
filter_dir = "$REPO/../shared/corpus/fail2ban/config"
logpath = ["$LOG"]
maxretry = 3
findtime = "10m"
bantime = "1h"
EOF2

check start mx_start "$CONF" "$POLICY_PORT"
it_wait_port "$METRICS_PORT" 10 || fail metrics-listener "nothing on $METRICS_PORT"

ask() { python3 "$HERE/policy_client.py" ask "$POLICY_PORT" "$@"; }
greylisted() {
  local r
  r=$(ask client_address=192.0.2.1 sender=a@example.org recipient=b@example.test instance=m1)
  CHECK_DETAIL="reply: $r"
  [[ $r == *DEFER_IF_PERMIT* ]]
}
check greylist-defers greylisted
ask client_address=198.51.100.2 sender=c@example.org recipient=d@example.test \
  sasl_username=carol protocol_state=END-OF-MESSAGE recipient_count=1 >/dev/null

auth() { # auth COMMAND BODY: the HTTP status code
  python3 - "$AUTH_PORT" "$1" "$2" <<'PY'
import sys, urllib.request
port, command, body = sys.argv[1:]
req = urllib.request.Request(f"http://127.0.0.1:{port}/?command={command}", data=body.encode(),
                             headers={"Content-Type": "application/json"})
try:
    print(urllib.request.urlopen(req, timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
}
BODY='{"login":"dave","protocol":"imap","pwhash":"0a","remote":"203.0.113.5","session_id":"s"}'
check auth-allow test "$(auth allow "$BODY")" = 200

for _ in 1 2 3; do it_sasl_fail "$LOG" 203.0.113.77; done
banned() { "$MXGUARD_BIN" bans --config "$CONF" 2>/dev/null | grep -q 203.0.113.77; }
check jail-bans it_wait_for 15 banned

scrape() {
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$METRICS_PORT/metrics"
}
scrape >"$IT_DIR/scrape.txt" || fail scrape "GET /metrics failed"
has() { CHECK_DETAIL="no line matching $1"; grep -Eq "$1" "$IT_DIR/scrape.txt"; }
check requests-counted has '^mxguard_policy_requests_total\{action="defer_if_permit",check="greylist"\} 1$'
check greylist-decision has '^mxguard_greylist_decisions_total\{result="deferred"\} 1$'
check greylist-entries has '^mxguard_greylist_entries\{kind="triplet"\} 1$'
check embedded-store-timed has '^mxguard_store_operation_duration_seconds_count\{operation="greylist_touch"\} 1$'
check jail-matched has '^mxguard_log_lines_matched_total\{jail="postfix-sasl"\} 3$'
check bans-active has '^mxguard_bans_active\{jail="postfix-sasl"\} 1$'
check auth-decision has '^mxguard_auth_policy_requests_total\{command="allow",answer="allow",check="[a-z_]+"\} 1$'
check eof-marker has '^# EOF$'

# Every exposed metric is in the catalogue.
catalogue() {
  python3 - "$IT_DIR/scrape.txt" "$REPO/docs/metrics.md" <<'PY'
import re, sys
scrape, doc = (open(p).read() for p in sys.argv[1:])
documented = set(re.findall(r"\bmxguard_[a-z0-9_]+", doc))
exposed = set()
for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", scrape, re.M):
    exposed.add(name + "_total" if kind == "counter" else name)
undocumented = sorted(exposed - documented)
if undocumented or len(exposed) < 20:
    print("undocumented:", undocumented, "exposed:", len(exposed))
    sys.exit(1)
PY
}
check scrape-documented catalogue

"$MXGUARD_BIN" status --config "$CONF" >"$IT_DIR/status.txt" 2>&1
status_text() {
  CHECK_DETAIL=$(tr '\n' '|' <"$IT_DIR/status.txt")
  grep -q '^Listeners$' "$IT_DIR/status.txt" &&
    grep -Eq "^  policy +inet:127\.0\.0\.1:$POLICY_PORT$" "$IT_DIR/status.txt" &&
    grep -Eq "^  metrics +127\.0\.0\.1:$METRICS_PORT$" "$IT_DIR/status.txt" &&
    grep -Eq '^  health +ok$' "$IT_DIR/status.txt" &&
    grep -q 'currently banned 1, total banned 1' "$IT_DIR/status.txt"
}
check status-text status_text
status_json() {
  "$MXGUARD_BIN" status --config "$CONF" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)["data"]
keys = ["version", "uptime_seconds", "config", "listeners", "store", "store_healthy", "jails",
        "bans_active", "counters", "last_reload", "triplets", "log_lines_read"]
missing = [k for k in keys if k not in d]
assert not missing, missing
assert d["counters"]["policy_requests"]["defer_if_permit"] == 1, d["counters"]
assert d["listeners"]["auth_policy"].endswith(sys.argv[1]), d["listeners"]
' ":$AUTH_PORT"
}
check status-json status_json
check stop mx_stop
it_finish
