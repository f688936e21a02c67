#!/usr/bin/env bash
# End-to-end: a real Postfix 3.7 (throw-away instance, scripts/it/lib.sh) consults mxguard as
# its check_policy_service; swaks sends mail and the checks assert what an SMTP client and the
# mailbox see when mxguard greylists with postgrey 1.37's semantics:
#   * a new triplet is deferred at RCPT: "450 4.2.0 <rcpt>: Recipient address rejected:
#     Greylisted, please try again in N seconds" (mxguard's default text with the remaining
#     time, and postgrey's 4.2.0 DSN, used because Postfix sends etrn_domain);
#   * a retry before the delay is deferred again, a retry after it is accepted and the delivered
#     message carries exactly one X-Greylist header (one per message, also with 2 recipients);
#   * the next message of a passed triplet is accepted at once without a header, and with
#     auto_whitelist_clients = 1 a new triplet from that client passes too;
#   * an IPv6 client is keyed by its /64: a retry from a sibling address passes, another /64
#     is a new triplet;
#   * clients / recipients in postgrey-format whitelist files pass at once;
#   * the unix: listener answers like the inet: one;
#   * SIGHUP re-reads the whitelist files; a broken config on SIGHUP is refused, the daemon
#     keeps greylisting with the old one;
#   * /metrics counts the deferrals by action and has the latency histogram;
#   * the control socket lists the triplet (`mxguard greylist list`);
#   * state survives kill -9 (after the store's 1 s write-behind interval);
#   * with mxguard stopped, `check_policy_service { inet:..., default_action=DUNNO }` still
#     accepts mail (fail-open) while the plain form answers 451 4.3.5.
# The greylist delay is 3 s so the suite stays short; every wait is a bounded poll or a wait
# for "delay + margin since the first attempt ended", never an open-ended sleep.
#
# Needs root, postfix, swaks, python3 (scripts/install-deps.sh) and $MXGUARD_BIN.
# KEEP=1 keeps the temp dir (configs, maillog, mxguard logs, swaks transcripts).

# shellcheck source=scripts/it/lib.sh
. "$(dirname "$0")/lib.sh"

IT_NAME=postfix_greylist
: "${MXGUARD_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/target/release/mxguard}"
it_init

DELAY=3                      # seconds; [greylist] delay
MARGIN=1.2                   # whole-second rounding in the store plus scheduling slack
AFTER=$(awk -v d=$DELAY -v m=$MARGIN 'BEGIN { print d + m }')   # when a retry must pass
SMTP=$(it_port 25)           # smtpd -> check_policy_service inet:  (fail-closed, Postfix default)
SMTP_OPEN=$(it_port 26)      # smtpd -> check_policy_service { inet:..., default_action=DUNNO }
SMTP_UNIX=$(it_port 27)      # smtpd -> check_policy_service unix:$IT_DIR/policy.sock
METRICS=$(it_port 41)        # mxguard Prometheus endpoint
MXPORT=$(it_port 40)         # mxguard policy listener
STATE=$IT_DIR/state
CONF=$IT_DIR/mxguard.toml

# ------------------------------------------------------------------ config files
# postgrey's whitelist formats, as in Debian's /etc/postgrey/whitelist_*:
# a hostname suffix, an IP address; `user@` for recipients.
cat >"$IT_DIR/whitelist_clients" <<'EOF'
# test whitelist (postgrey format)
trusted-sender.test
192.0.2.77
EOF
cat >"$IT_DIR/whitelist_recipients" <<'EOF'
# test recipient whitelist (postgrey format)
postmaster@
EOF
cat >"$CONF" <<EOF
[policy]
listen = ["inet:127.0.0.1:$MXPORT", "unix:$IT_DIR/policy.sock"]
default_action = "DUNNO"

[store]
type = "embedded"
path = "$STATE"

[greylist]
enabled = true
delay = "${DELAY}s"
retry_window = "1h"
max_age = "1d"
auto_whitelist_clients = 1
hostname = "mx.example.test"
whitelist_clients = ["$IT_DIR/whitelist_clients"]
whitelist_recipients = ["$IT_DIR/whitelist_recipients"]

[control]
socket = "$IT_DIR/control.sock"

[metrics]
listen = "127.0.0.1:$METRICS"

[log]
level = "info"
EOF

# ------------------------------------------------------------------ start everything
check "check-config accepts the suite's config" mx_config_ok "$CONF"
check "mxguard serve listens on inet:127.0.0.1:$MXPORT" mx_start "$CONF" "$MXPORT"

PF_MAIN_EXTRA="mxit_failopen = reject_unauth_destination, check_policy_service { inet:127.0.0.1:$MXPORT, default_action=DUNNO }"
PF_MAIN_EXTRA+="
mxit_unix = reject_unauth_destination, check_policy_service unix:$IT_DIR/policy.sock"
PF_MASTER_EXTRA="127.0.0.1:$SMTP_OPEN inet n - n - - smtpd
  -o syslog_name=postfix/failopen
  -o smtpd_recipient_restrictions=\$mxit_failopen
127.0.0.1:$SMTP_UNIX inet n - n - - smtpd
  -o syslog_name=postfix/unixpol
  -o smtpd_recipient_restrictions=\$mxit_unix"
pf_setup "$SMTP" "reject_unauth_destination, check_policy_service inet:127.0.0.1:$MXPORT"
pf_start
it_wait_port "$SMTP_OPEN" 15 || die "postfix fail-open smtpd not listening on $SMTP_OPEN"
it_wait_port "$SMTP_UNIX" 15 || die "postfix unix-policy smtpd not listening on $SMTP_UNIX"
info "postfix $(postconf -d -h mail_version) on 127.0.0.1:$SMTP (+ fail-open $SMTP_OPEN), mxguard pid $MX_PID"

# Each scenario presents its own client (XCLIENT) so the triplets, and the per-client
# auto-whitelist, never overlap.
GREY_RE='^<\*\* 450 4\.2\.0 <%s>: Recipient address rejected: Greylisted, please try again in [0-9]+ seconds'
greylisted() { # greylisted NAME RCPT
  # shellcheck disable=SC2059
  sent_reply "$1" "$(printf "$GREY_RE" "${2//./\\.}")"
}
xc() { echo "--xclient-addr $1 --xclient-name $2"; }

# it_wait_until START SECONDS: sleep until START + SECONDS (bounded by SECONDS).
it_wait_until() {
  local left
  left=$(awk -v s="$1" -v d="$2" -v n="$(it_now)" 'BEGIN { l = s + d - n; if (l < 0) l = 0; printf "%.2f", l }')
  sleep "$left"
}

header_is() { # header_is NAME COUNT: every delivered copy of NAME has COUNT X-Greylist headers
  local f n ok=0
  for f in $(delivered_files "$1"); do
    n=$(header_count "$f" X-Greylist)
    if [ "$n" != "$2" ]; then CHECK_DETAIL="$f has $n X-Greylist headers, want $2"; return 1; fi
    ok=1
  done
  [ $ok = 1 ] || { CHECK_DETAIL="no delivered copy of $1"; return 1; }
}
header_text_ok() { # header_text_ok NAME: X-Greylist says delayed N >= DELAY seconds by mxguard
  local f line n
  f=$(delivered_file "$1")
  line=$(grep -m1 -i '^X-Greylist:' "$f")
  n=$(echo "$line" | sed -nE 's/^X-Greylist: delayed ([0-9]+) seconds by mxguard at mx\.example\.test; .+/\1/p')
  if [ -n "$n" ] && [ "$n" -ge "$DELAY" ]; then return 0; fi
  CHECK_DETAIL="header was: $line"
  return 1
}

# ------------------------------------------------------------------ greylisting lifecycle
A_IP=198.51.100.10; A_FROM=alice@sender-a.test; A_TO=user1@example.test
send a1 "$SMTP" "$A_FROM" "$A_TO" $(xc $A_IP mx.sender-a.test)
A_END=$(it_now)
check "first attempt: 450 4.2.0 Greylisted" greylisted a1 "$A_TO"
check "first attempt: swaks sees a temporary failure (rc 24)" [ "$SEND_RC" = 24 ]

send a2 "$SMTP" "$A_FROM" "$A_TO" $(xc $A_IP mx.sender-a.test)
if it_elapsed_ge "$A_END" "$DELAY"; then
  fail "retry before the delay: still 450" "box too slow: the early retry came after the delay"
else
  check "retry before the delay: still 450" greylisted a2 "$A_TO"
fi

# A message to two recipients: both triplets are greylisted; after the delay the message goes
# through once and carries one X-Greylist header (postgrey tracks the Postfix `instance`).
B_IP=198.51.100.20; B_FROM=bob@sender-b.test; B_TO1=u2a@example.test; B_TO2=u2b@example.test
send b1 "$SMTP" "$B_FROM" "$B_TO1,$B_TO2" $(xc $B_IP mx.sender-b.test)
B_END=$(it_now)
check "two recipients, first attempt: both 450" \
  eval 'greylisted b1 "$B_TO1" && greylisted b1 "$B_TO2"'

# IPv6 client: the triplet is keyed by its /64 (ipv6_prefix = 64), so a retry from another
# address of the same /64 (a sending pool) is the same triplet.
V_FROM=olga@sender-v6.test; V_TO=user11@example.test
if [ "$PF_IPV6" = 1 ]; then
  send v1 "$SMTP" "$V_FROM" "$V_TO" $(xc IPV6:2001:db8:1:2::10 mx1.sender-v6.test)
  V_END=$(it_now)
  check "IPv6 client, first attempt: 450" greylisted v1 "$V_TO"
else
  info "this host has no IPv6 (/proc/net/if_inet6 empty or absent): Postfix cannot take XCLIENT IPv6 addresses, IPv6 checks not run"
fi

it_wait_until "$A_END" "$AFTER"
send a3 "$SMTP" "$A_FROM" "$A_TO" $(xc $A_IP mx.sender-a.test)
check "retry after the delay: 250 queued" sent_queued a3
check "retry after the delay: message delivered to the Maildir" wait_delivered a3
check "delivered message has exactly one X-Greylist header" header_is a3 1
check "X-Greylist says 'delayed N seconds by mxguard at <hostname>; <date>' with N >= delay" header_text_ok a3

send a4 "$SMTP" "$A_FROM" "$A_TO" $(xc $A_IP mx.sender-a.test)
check "second message of a passed triplet: 250 at once" sent_queued a4
check "second message: delivered without X-Greylist header" eval 'wait_delivered a4 && header_is a4 0'
# auto_whitelist_clients = 1: one delivery after greylisting whitelists the client address
# (postgrey's --auto-whitelist-clients), so a brand-new triplet from it passes at once.
send aw1 "$SMTP" zed@other-a.test user12@example.test $(xc $A_IP mx.sender-a.test)
check "auto-whitelisted client (1 delivery): a new triplet passes at once" sent_queued aw1

it_wait_until "$B_END" "$AFTER"
send b2 "$SMTP" "$B_FROM" "$B_TO1,$B_TO2" $(xc $B_IP mx.sender-b.test)
check "two recipients after the delay: 250 queued" sent_queued b2
check "two recipients: both copies carry exactly one X-Greylist header" \
  eval 'wait_delivered b2 2 && header_is b2 1'

if [ "$PF_IPV6" = 1 ]; then
  it_wait_until "$V_END" "$AFTER"
  send v2 "$SMTP" "$V_FROM" "$V_TO" $(xc IPV6:2001:db8:1:2::99 mx2.sender-v6.test)
  check "IPv6: retry from another address of the same /64 after the delay: 250" sent_queued v2
  send v3 "$SMTP" "$V_FROM" "$V_TO" $(xc IPV6:2001:db8:1:3::10 mx3.sender-v6.test)
  check "IPv6: the same sender/recipient from another /64 is a new triplet: 450" greylisted v3 "$V_TO"
fi

# ------------------------------------------------------------------ whitelists
send wl1 "$SMTP" carol@new-sender.test user3@example.test $(xc 203.0.113.45 mail.trusted-sender.test)
check "whitelist_clients hostname suffix: 250 at once" sent_queued wl1
check "whitelisted client: no X-Greylist header" eval 'wait_delivered wl1 && header_is wl1 0'
send wl2 "$SMTP" dave@new-sender.test user4@example.test $(xc 192.0.2.77 unknown)
check "whitelist_clients IP address: 250 at once" sent_queued wl2
send wl3 "$SMTP" erin@new-sender.test postmaster@example.test $(xc 203.0.113.99 mx.nobody.test)
check "whitelist_recipients 'postmaster@': 250 at once" sent_queued wl3
send wl4 "$SMTP" erin@new-sender.test user5@example.test $(xc 203.0.113.99 mx.nobody.test)
check "same client, other recipient: greylisted (whitelist is per recipient)" greylisted wl4 user5@example.test

# ------------------------------------------------------------------ unix: listener
send u1 "$SMTP_UNIX" gina@sender-u.test user8@example.test $(xc 198.51.100.50 mx.sender-u.test)
check "unix: listener (check_policy_service unix:/path): 450 Greylisted" greylisted u1 user8@example.test

# ------------------------------------------------------------------ SIGHUP reload
# A client added to the whitelist file takes effect on SIGHUP; a broken config on SIGHUP is
# refused and the daemon keeps answering with the old one.
send r1 "$SMTP" hank@sender-r.test user9@example.test $(xc 203.0.113.150 mx.reload-sender.test)
check "before reload: client not whitelisted yet (450)" greylisted r1 user9@example.test
echo "reload-sender.test" >>"$IT_DIR/whitelist_clients"
kill -HUP "$MX_PID"
reload_whitelisted() { # a fresh recipient per try, so greylisting's own delay cannot pass it
  local i
  for i in 1 2 3 4 5 6; do
    send "r2-$i" "$SMTP" hank@sender-r.test "user9-$i@example.test" $(xc 203.0.113.150 mx.reload-sender.test)
    sent_queued "r2-$i" && return 0
    sleep 0.3
  done
  return 1
}
check "SIGHUP re-reads whitelist_clients: the client passes at once" reload_whitelisted
cp "$CONF" "$CONF.good"
echo "[greylist] delay = " >>"$CONF"     # not TOML: the reload must be refused
kill -HUP "$MX_PID"
sleep 0.5
send r3 "$SMTP" ivan@sender-r3.test user10@example.test $(xc 198.51.100.60 mx.sender-r3.test)
check "SIGHUP with a broken config: daemon keeps running" kill -0 "$MX_PID"
check "SIGHUP with a broken config: old config still greylists (450)" greylisted r3 user10@example.test
cp "$CONF.good" "$CONF"

# ------------------------------------------------------------------ metrics
metrics_ok() {
  local body defers
  body=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$METRICS/metrics" 2>&1) || { CHECK_DETAIL="GET /metrics failed: ${body:0:200}"; return 1; }
  # deferrals so far: a1 a2, b1 (2 recipients), wl4, u1, r1, r3 = 8, plus v1 v3 with IPv6
  local want=$((8 + 2 * PF_IPV6))
  defers=$(echo "$body" | awk '/^mxguard_policy_requests_total\{/ && /defer_if_permit/ { n += $NF } END { print n + 0 }')
  if [ "${defers%.*}" -lt "$want" ]; then
    CHECK_DETAIL="defer_if_permit requests counted: $defers; $(echo "$body" | grep '^mxguard_policy_requests' | head -n 5 | tr '\n' '|')"
    return 1
  fi
  echo "$body" | grep -q '^mxguard_policy_request_duration_seconds_count [1-9]' \
    || { CHECK_DETAIL="no latency histogram count"; return 1; }
}
check "metrics: /metrics counts the deferrals by action and has the latency histogram" metrics_ok

# ------------------------------------------------------------------ control socket
list_has_a() {
  local out
  out=$("$MXGUARD_BIN" greylist list --config "$CONF" 2>&1) \
    || { CHECK_DETAIL="exit $?: $(echo "$out" | head -n 3 | tr '\n' '|')"; return 1; }
  echo "$out" | grep -qF "198.51.100.0/$A_FROM/$A_TO" && return 0
  CHECK_DETAIL="triplet 198.51.100.0/$A_FROM/$A_TO not in: $(echo "$out" | head -n 5 | tr '\n' '|')"
  return 1
}
check "mxguard greylist list shows the triplet (NETWORK/SENDER/RECIPIENT)" list_has_a

# ------------------------------------------------------------------ kill -9 and restart
C_IP=198.51.100.30; C_FROM=frank@sender-c.test; C_TO=user6@example.test
send c1 "$SMTP" "$C_FROM" "$C_TO" $(xc $C_IP mx.sender-c.test)
C_END=$(it_now)
check "restart scenario, first attempt: 450" greylisted c1 "$C_TO"
it_wait_until "$C_END" 1.6          # past the embedded store's 1 s write-behind interval
OLD_PID=$MX_PID
mx_kill9
check "kill -9: daemon gone" eval '! kill -0 "$OLD_PID" 2>/dev/null'
check "restart after kill -9 on the same state dir" mx_start "$CONF" "$MXPORT"
it_wait_until "$C_END" "$AFTER"
send c2 "$SMTP" "$C_FROM" "$C_TO" $(xc $C_IP mx.sender-c.test)
check "after kill -9 + restart the triplet is still known: retry after the delay is 250" sent_queued c2
check "after restart: one X-Greylist header counting the delay from the first attempt" \
  eval 'wait_delivered c2 && header_is c2 1 && header_text_ok c2'
send a5 "$SMTP" "$A_FROM" "$A_TO" $(xc $A_IP mx.sender-a.test)
check "after restart: an earlier passed triplet still passes at once" sent_queued a5
send aw2 "$SMTP" yan@other-a2.test user13@example.test $(xc $A_IP mx.sender-a.test)
check "after restart: the client auto-whitelist survived (new triplet passes at once)" sent_queued aw2

# ------------------------------------------------------------------ fail-open
stop_ok() {
  local pid=$MX_PID
  mx_stop || { CHECK_DETAIL="mxguard $pid did not exit within 5 s of SIGTERM"; return 1; }
  it_wait_port_closed "$MXPORT" 5 || { CHECK_DETAIL="port $MXPORT still accepts"; return 1; }
}
check "SIGTERM stops mxguard within 5 s" stop_ok
send fo1 "$SMTP_OPEN" grace@sender-d.test user7@example.test $(xc 198.51.100.40 mx.sender-d.test)
check "mxguard down + default_action=DUNNO: mail accepted (fail-open)" sent_queued fo1
send fo2 "$SMTP" grace@sender-d.test user7@example.test $(xc 198.51.100.40 mx.sender-d.test)
check "mxguard down, plain check_policy_service: 451 4.3.5 (Postfix fails closed)" \
  sent_reply fo2 '^<\*\* 451 4\.3\.5 .*Server configuration problem'

it_finish
