#!/usr/bin/env bash
# End-to-end: a real Postfix 3.7 (throw-away instance, scripts/it/lib.sh) consults mxguard as
# its check_policy_service (RCPT and DATA), mxguard resolves through its real resolver
# (hickory) against a small authoritative DNS server on 127.0.0.1 (scripts/it/testdns.py, a
# zone from the temp dir), and swaks sends mail from addresses presented with XCLIENT:
#   * an SPF-fail sender is rejected at RCPT with policyd-spf's text:
#     "550 5.7.23 <rcpt>: Recipient address rejected: Message rejected due to: SPF fail - not
#     authorized. Please see http://www.openspf.net/Why?s=mfrom;id=...;ip=...;r=..."
#   * an SPF-pass sender is delivered with one "Received-SPF: Pass (mailfrom) ..." header;
#   * greylisting by SPF-verified domain: a provider retrying from another /24 of its pool
#     passes on the first retry, and the message carries both Received-SPF and X-Greylist
#     exactly once (one PREPEND per reply: the second header is answered at DATA);
#   * a client listed in a DNSBL (postscreen weights) gets "550 5.7.1 ... blocked using bl.test";
#   * a sender domain whose DNS server never answers is accepted within the time budget with a
#     "Received-SPF: Temperror" header (the reply never waits for the dead server).
#
# Needs root, postfix, swaks, python3 (scripts/install-deps.sh) and $MXGUARD_BIN.
# KEEP=1 keeps the temp dir (configs, zone, maillog, mxguard logs, swaks transcripts).

# shellcheck source=scripts/it/lib.sh
. "$(dirname "$0")/lib.sh"

IT_NAME=postfix_spf
: "${MXGUARD_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/target/release/mxguard}"
it_init

DELAY=3                      # seconds; [greylist] delay
AFTER=4.2                    # when a retry must pass (delay + rounding and scheduling slack)
SMTP=$(it_port 25)
MXPORT=$(it_port 40)
DNSPORT=$(it_port 53)
CONF=$IT_DIR/mxguard.toml
ZONE=$IT_DIR/test.zone

# ------------------------------------------------------------------ DNS
cat >"$ZONE" <<'EOF'
# SPF records of the test senders
fail.test        TXT  v=spf1 -all
pass.test        TXT  v=spf1 ip4:192.0.2.0/24 -all
pool.test        TXT  v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all
# the HELO name swaks uses: exists, no SPF record (HELO result none)
client.test      A    192.0.2.200
# DNSBL: 192.0.2.99 is listed with a code inside the filter
99.2.0.192.bl.test A  127.0.0.4
EOF
python3 "$(dirname "$0")/testdns.py" "$ZONE" "$DNSPORT" --silent slow.test \
  >"$IT_DIR/testdns.log" 2>&1 &
it_track_pid $!
it_wait_port "$DNSPORT" 10 || die "test DNS server not listening on $DNSPORT: $(cat "$IT_DIR/testdns.log")"

# ------------------------------------------------------------------ mxguard
cat >"$IT_DIR/whitelist_recipients" <<'EOF'
# recipients that skip greylisting (postgrey format): the SPF-only scenarios
plain@example.test
EOF
cat >"$CONF" <<EOF
[policy]
listen = ["inet:127.0.0.1:$MXPORT"]
default_action = "DUNNO"

[store]
type = "memory"

[control]
socket = "$IT_DIR/control.sock"

[dns]
servers = ["127.0.0.1:$DNSPORT"]
timeout = "1s"

[spf]
hostname = "mx.example.test"
time_budget = "2s"

[dnsbl]
sites = ["bl.test=127.0.0.[2..11]*3"]
threshold = 3
timeout = "1s"

[greylist]
delay = "${DELAY}s"
retry_window = "1h"
max_age = "1d"
auto_whitelist_clients = 0
hostname = "mx.example.test"
whitelist_recipients = ["$IT_DIR/whitelist_recipients"]
spf_domain_key = true
EOF

check "check-config accepts [dns] [spf] [dnsbl]" mx_config_ok "$CONF"
check "mxguard serve listens on inet:127.0.0.1:$MXPORT" mx_start "$CONF" "$MXPORT"

# ------------------------------------------------------------------ Postfix
# RCPT and DATA: a one-recipient message can get a second header (X-Greylist) at DATA.
PF_MAIN_EXTRA="smtpd_data_restrictions = check_policy_service inet:127.0.0.1:$MXPORT"
pf_setup "$SMTP" "reject_unauth_destination, check_policy_service inet:127.0.0.1:$MXPORT"
pf_start
info "postfix $(postconf -d -h mail_version) on 127.0.0.1:$SMTP, mxguard pid $MX_PID, DNS on 127.0.0.1:$DNSPORT"

sent_fixed() { # sent_fixed NAME TEXT: a server line of NAME's transcript contains TEXT
  grep -qF -- "$2" "$IT_DIR/swaks.$1" && return 0
  CHECK_DETAIL="expected '$2', server said: $(grep -E '^(<-|<\*\*)' "$IT_DIR/swaks.$1" | tail -n 3 | tr '\n' '|')"
  return 1
}
header_line() { # header_line SUBJECT NAME: the first NAME: header of the delivered SUBJECT
  local f
  f=$(delivered_file "$1")
  [ -n "$f" ] && awk -v h="$2" '/^$/ { exit } tolower($0) ~ "^" tolower(h) ":" { print; exit }' "$f"
}
header_has() { # header_has SUBJECT NAME TEXT: that header line contains TEXT
  local line
  line=$(header_line "$1" "$2")
  case $line in *"$3"*) return 0 ;; esac
  CHECK_DETAIL="$2 header was: '${line:-<none>}', want it to contain '$3'"
  return 1
}
count_is() { # count_is SUBJECT NAME N
  local f n
  f=$(delivered_file "$1")
  [ -n "$f" ] || { CHECK_DETAIL="no delivered copy of $1"; return 1; }
  n=$(header_count "$f" "$2")
  [ "$n" = "$3" ] && return 0
  CHECK_DETAIL="$f has $n $2 headers, want $3"
  return 1
}
header_before() { # header_before SUBJECT FIRST SECOND: FIRST comes above SECOND
  local f a b
  f=$(delivered_file "$1")
  a=$(grep -n -m1 -i "^$2:" "$f" | cut -d: -f1)
  b=$(grep -n -m1 -i "^$3:" "$f" | cut -d: -f1)
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ] && return 0
  CHECK_DETAIL="$2 at line ${a:-none}, $3 at line ${b:-none}"
  return 1
}

# ------------------------------------------------------------------ SPF fail: rejected
send fail1 "$SMTP" a@fail.test plain@example.test --xclient-addr 192.0.2.10
check "SPF fail: 550 5.7.23 with policyd-spf's text" sent_fixed fail1 \
  "<** 550 5.7.23 <plain@example.test>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=a@fail.test;ip=192.0.2.10;r=example.test"
check "SPF fail: swaks sees a permanent failure (rc 24)" [ "$SEND_RC" = 24 ]

# ------------------------------------------------------------------ SPF pass: header
send pass1 "$SMTP" b@pass.test plain@example.test --xclient-addr 192.0.2.20
check "SPF pass: 250 queued" sent_queued pass1
check "SPF pass: delivered" wait_delivered pass1
check "SPF pass: Received-SPF header in policyd-spf's format" header_has pass1 Received-SPF \
  "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.20; helo=client.test; envelope-from=b@pass.test; receiver=example.test"
check "SPF pass: exactly one Received-SPF header" count_is pass1 Received-SPF 1
check "SPF pass (greylist-whitelisted recipient): no X-Greylist" count_is pass1 X-Greylist 0

# ------------------------------------------------------------------ DNSBL
send bl1 "$SMTP" b@pass.test plain@example.test --xclient-addr 192.0.2.99
check "DNSBL-listed client: 550 5.7.1 ... blocked using bl.test" sent_fixed bl1 \
  "<** 550 5.7.1 <plain@example.test>: Recipient address rejected: Service unavailable; client [192.0.2.99] blocked using bl.test"

# ------------------------------------------------------------------ greylisting by SPF domain
send pool1 "$SMTP" bounce@pool.test grey@example.test --xclient-addr 192.0.2.30
POOL_END=$(it_now)
check "pool sender, first attempt: 450 4.2.0 greylisted" sent_reply pool1 \
  '^<\*\* 450 4\.2\.0 <grey@example\.test>: Recipient address rejected: Greylisted'
left=$(awk -v s="$POOL_END" -v d="$AFTER" -v n="$(it_now)" 'BEGIN { l = s + d - n; if (l < 0) l = 0; printf "%.2f", l }')
sleep "$left"
# The retry comes from another /24 of the provider's pool: SPF passes for pool.test there too.
send pool2 "$SMTP" bounce@pool.test grey@example.test --xclient-addr 203.0.113.40
check "retry from another /24 of the SPF-authorised pool: 250 queued" sent_queued pool2
check "retry: delivered" wait_delivered pool2
check "retry: one Received-SPF header (client-ip of the retry)" eval \
  'count_is pool2 Received-SPF 1 && header_has pool2 Received-SPF "Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=203.0.113.40;"'
check "retry: one X-Greylist header (added at DATA: one PREPEND per reply)" eval \
  'count_is pool2 X-Greylist 1 && header_has pool2 X-Greylist "X-Greylist: delayed "'
check "retry: Received-SPF above X-Greylist" header_before pool2 Received-SPF X-Greylist

# ------------------------------------------------------------------ a DNS server that never answers
T0=$(date +%s%N)
send slow1 "$SMTP" c@x.slow.test plain@example.test --xclient-addr 192.0.2.50
T1=$(date +%s%N)
MS=$(( (T1 - T0) / 1000000 ))
info "slow DNS: the SMTP transaction took ${MS} ms ([spf] time_budget 2s, [dns] timeout 1s)"
check "silent DNS: accepted (fail open) within 8 s" eval '[ "$MS" -lt 8000 ] && sent_queued slow1'
check "silent DNS: Received-SPF: Temperror header" eval \
  'wait_delivered slow1 && header_has slow1 Received-SPF "Received-SPF: Temperror (mailfrom) identity=mailfrom; client-ip=192.0.2.50;"'

it_finish
