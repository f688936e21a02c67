#!/usr/bin/env bash
# End-to-end: the Postfix snippets in examples/ work as pasted. A throw-away Postfix 3.7
# (scripts/it/lib.sh) gets examples/postfix-main.cf appended to its main.cf and the services
# of examples/postfix-master.cf added to its master.cf, with only these changes: the policy
# address 127.0.0.1:10040 becomes the suite's mxguard port, the submission services listen on
# loopback test ports with chroot n, and their TLS and SASL -o lines are dropped (no
# certificate and no Dovecot here). Then:
#   * `postfix check` accepts both, and postconf shows the policy at RCPT, DATA and
#     END-OF-MESSAGE and, on submission, before permit_sasl_authenticated;
#   * a first message is greylisted at RCPT (one policy request, nothing else is asked);
#   * its retry is delivered and cost exactly three policy requests: RCPT, DATA and
#     END-OF-MESSAGE, counted in /metrics (mxguard_policy_requests_total);
#   * a [[limit]] of 2 messages per hour is charged at END-OF-MESSAGE: the third message of
#     the client is refused at RCPT with the limit's text, so charging really happened;
#   * on the submission port mxguard answers before the final "reject" (the client over its
#     quota gets the limit's 450, not the 554 of "reject").
#
# Needs root, postfix, swaks, python3 (scripts/install-deps.sh) and $MXGUARD_BIN.
# KEEP=1 keeps the temp dir.

# shellcheck source=scripts/it/lib.sh
. "$(dirname "$0")/lib.sh"

IT_NAME=snippets
: "${MXGUARD_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/target/release/mxguard}"
it_init
EXAMPLES=$(cd "$(dirname "$0")/../../examples" && pwd)

DELAY=2
SMTP=$(it_port 25)
SUB=$(it_port 26)
SUBS=$(it_port 27)
MXPORT=$(it_port 40)
METRICS=$(it_port 41)
CONF=$IT_DIR/mxguard.toml

cat >"$CONF" <<EOF
[policy]
listen = ["inet:127.0.0.1:$MXPORT"]

[store]
type = "embedded"
path = "$IT_DIR/state"

[greylist]
delay = "${DELAY}s"
hostname = "mx.example.test"

[[limit]]
name = "per-client"
key = ["client_address"]
count = "messages"
rate = ["2/1h"]
action = "DEFER quota %n reached"

[control]
socket = "$IT_DIR/control.sock"

[metrics]
listen = "127.0.0.1:$METRICS"
EOF

check "mxguard serve listens on 127.0.0.1:$MXPORT" mx_start "$CONF" "$MXPORT"
it_wait_port "$METRICS" 10 || die "no metrics listener on $METRICS"

# The snippets, changed only as the header says.
PF_MAIN_EXTRA="# ---- examples/postfix-main.cf
$(sed "s/127\.0\.0\.1:10040/127.0.0.1:$MXPORT/g" "$EXAMPLES/postfix-main.cf")"
PF_MASTER_EXTRA="$(sed -E \
  -e "s/127\.0\.0\.1:10040/127.0.0.1:$MXPORT/g" \
  -e "s/^submission +inet +n +- +y /127.0.0.1:$SUB inet n - n /" \
  -e "s/^submissions +inet +n +- +y /127.0.0.1:$SUBS inet n - n /" \
  -e '/-o (smtpd_tls_security_level|smtpd_tls_auth_only|smtpd_tls_wrappermode|smtpd_sasl_auth_enable)=/d' \
  "$EXAMPLES/postfix-master.cf")"
pf_setup "$SMTP" "reject_unauth_destination"
# The pasted smtpd_recipient_restrictions replaces the one pf_setup writes.
sed -i '/^smtpd_recipient_restrictions = reject_unauth_destination$/d' "$PF_CONF/main.cf"
pf_start
info "postfix $(postconf -d -h mail_version) on 127.0.0.1:$SMTP (submission $SUB), mxguard pid $MX_PID"

policy="check_policy_service { inet:127.0.0.1:$MXPORT, default_action=DUNNO }"
stage_has_policy() { # stage_has_policy PARAM: main.cf's PARAM calls mxguard
  local v
  v=$(postconf -c "$PF_CONF" -h "$1")
  [[ "$v" == *"$policy"* ]] && return 0
  CHECK_DETAIL="$1 = $v"
  return 1
}
check "postfix check accepts the pasted snippets without a warning" [ ! -s "$PF_DIR/check.out" ]
for p in smtpd_recipient_restrictions smtpd_data_restrictions smtpd_end_of_data_restrictions; do
  check "main.cf snippet: $p asks mxguard" stage_has_policy "$p"
done
submission_order() {
  local v
  v=$(postconf -c "$PF_CONF" -P "127.0.0.1:$SUB/inet/smtpd_recipient_restrictions" 2>&1)
  [[ "$v" == *"= $policy, permit_sasl_authenticated, reject" ]] && return 0
  CHECK_DETAIL="$v"
  return 1
}
check "master.cf snippet: submission asks mxguard before permit_sasl_authenticated" submission_order

# Sum of mxguard_policy_requests_total over its labels.
requests() {
  python3 - "$METRICS" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(int(sum(float(l.split()[-1]) for l in text.splitlines()
              if l.startswith("mxguard_policy_requests_total"))))
PY
}
asked() { # asked BEFORE N: the request counter grew by exactly N since BEFORE
  local now
  now=$(requests)
  [ $((now - $1)) -eq "$2" ] && return 0
  CHECK_DETAIL="mxguard was asked $((now - $1)) times, want $2"
  return 1
}

IP=192.0.2.10; FROM=alice@sender.test; TO=user1@example.test
r0=$(requests)
send m1 "$SMTP" "$FROM" "$TO" --xclient-addr "$IP"
t1=$(it_now)
check "first message: 450 4.2.0 greylisted at RCPT" sent_reply m1 '^<\*\* 450 4\.2\.0 .*Greylisted'
check "first message: one policy request (RCPT only)" asked "$r0" 1

sleep "$DELAY"
it_elapsed_ge "$t1" "$DELAY" || sleep 1
r1=$(requests)
send m2 "$SMTP" "$FROM" "$TO" --xclient-addr "$IP"
check "retry after the delay: 250 queued" sent_queued m2
check "retry: delivered" wait_delivered m2
check "retry: three policy requests (RCPT, DATA, END-OF-MESSAGE)" asked "$r1" 3

send m3 "$SMTP" "$FROM" "$TO" --xclient-addr "$IP"
check "second message of the hour: 250 queued" sent_queued m3
send m4 "$SMTP" "$FROM" "$TO" --xclient-addr "$IP"
check "third message: refused at RCPT by the limit charged at END-OF-MESSAGE" \
  sent_reply m4 '^<\*\* 450 4\.7\.1 .*quota per-client reached'

# The client over its quota (m4) on the submission port: mxguard's DEFER comes before the
# final "reject" (greylisting would not show it: DEFER_IF_PERMIT yields to a later reject).
send s1 "$SUB" "$FROM" user2@example.test --xclient-addr "$IP"
check "submission: mxguard answers before the final reject (limit 450, not 554)" \
  sent_reply s1 '^<\*\* 450 4\.7\.1 .*quota per-client reached'

it_finish
