#!/usr/bin/env bash
# End-to-end, issue 7: authenticated submission through a real Postfix 3.7 whose SMTP AUTH
# goes to a real, throw-away Dovecot 2.3 (smtpd_sasl_type = dovecot, scripts/it/lib.sh), with
# mxguard consulted at RCPT (before permit_sasl_authenticated, as docs/limits.md says) and at
# END-OF-MESSAGE, and as Dovecot's auth policy server (locked accounts refused at login).
#
#   * per-login quota `2/1h` messages, action HOLD: alice's first two messages are delivered,
#     the next two are accepted ("250 queued": nothing bounced, nothing lost) into Postfix's
#     hold queue (`postqueue -j`), and mxguard recorded exactly those queue ids;
#   * the quota is per login: bob, sending at the same time, is never held;
#   * only accepted mail is charged: a wrong password (535), messages rejected at RCPT by a
#     later restriction, and a transaction the client abandons after RCPT cost carol nothing,
#     so her two messages afterwards are delivered;
#   * `mxguard account unlock alice@... --release` runs postsuper -H: the held mail is
#     delivered and alice's quota starts afresh;
#   * containment: mallory sends with a MAIL FROM of another domain (sender_rule =
#     "same_domain"); at the threshold the account is locked, that message is held, the
#     notify_command runs, and the lock shuts mallory out of IMAP and SMTP AUTH (Dovecot asks
#     mxguard's auth policy); unlock --release delivers the held message and lets her back in.
#
# Needs root, postfix, swaks, dovecot-core, dovecot-imapd, python3 (scripts/install-deps.sh)
# and $MXGUARD_BIN. KEEP=1 keeps the temp dir.
set -uo pipefail
IT_NAME=postfix_sasl_quota
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
: "${MXGUARD_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/target/release/mxguard}"
it_init dovecot doveadm postsuper
[ -x /usr/lib/dovecot/imap ] || die "missing /usr/lib/dovecot/imap (package dovecot-imapd)"

SMTP=$(it_port 25)
POLICY_PORT=$(it_port 40)
AUTH_PORT=$(it_port 41)
IMAP_PORT=$(it_port 43)
CONF=$IT_DIR/mxguard.toml
SOCK=$IT_DIR/control.sock
NOTIFY_OUT=$IT_DIR/notify.out

cat >"$IT_DIR/notify.sh" <<EOF
#!/bin/sh
echo "account=\$MXGUARD_ACCOUNT score=\$MXGUARD_SCORE reasons=\$MXGUARD_REASONS" >>"$NOTIFY_OUT"
EOF
chmod 755 "$IT_DIR/notify.sh"

cat >"$CONF" <<EOF
[policy]
listen = ["inet:127.0.0.1:$POLICY_PORT"]
default_action = "DUNNO"

[store]
type = "embedded"
path = "$IT_DIR/state"

[greylist]
enabled = false

[[limit]]
name = "per-user"
key = ["sasl_username"]
count = "messages"
rate = ["2/1h"]
action = "HOLD quota %n reached, held for review"
signal = false

[account]
containment = true
threshold = 50
points_sender_mismatch = 25
sender_rule = "same_domain"
notify_command = ["$IT_DIR/notify.sh"]
postfix_config = "$IT_DIR/postfix/etc"

[auth_policy]
listen = "127.0.0.1:$AUTH_PORT"
login_tarpit_after = 0

[control]
socket = "$SOCK"
EOF

check "check-config accepts [[limit]], [account] and [auth_policy]" mx_config_ok "$CONF"
check "mxguard serve listens on 127.0.0.1:$POLICY_PORT" mx_start "$CONF" "$POLICY_PORT"
it_wait_port "$AUTH_PORT" 10 || die "mxguard auth policy not listening on $AUTH_PORT"

DV_EXTRA="auth_policy_server_url = http://127.0.0.1:$AUTH_PORT/
auth_policy_hash_nonce = $(python3 -c 'import secrets; print(secrets.token_hex(16))')
auth_policy_check_before_auth = yes
auth_policy_check_after_auth = yes
auth_policy_report_after_auth = yes
auth_policy_reject_on_fail = no"
dv_setup "$IMAP_PORT" alice@example.test:alice-pw bob@example.test:bob-pw \
  carol@example.test:carol-pw mallory@example.test:mallory-pw
dv_start

# Submission: the policy service before permit_sasl_authenticated (or authenticated mail
# never reaches it); nobody@example.test is refused by a restriction after it.
echo "nobody@example.test REJECT no such user" >"$IT_DIR/recipient_access"
PF_MAIN_EXTRA="$(dv_postfix_sasl)
smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:$POLICY_PORT"
pf_setup "$SMTP" "check_policy_service inet:127.0.0.1:$POLICY_PORT, check_recipient_access texthash:$IT_DIR/recipient_access, permit_sasl_authenticated, reject"
pf_start
info "postfix $(postconf -d -h mail_version) on 127.0.0.1:$SMTP, dovecot $(dovecot --version | cut -d' ' -f1), mxguard pid $MX_PID"

# submit NAME LOGIN PASSWORD TO [swaks args...]: an authenticated submission as LOGIN, with
# MAIL FROM the login.
submit() {
  local name=$1 login=$2 pw=$3 to=$4; shift 4
  send "$name" "$SMTP" "$login" "$to" --auth PLAIN --auth-user "$login" --auth-password "$pw" "$@"
}
account_json() { # account_json LOGIN PYEXPR: PYEXPR over the account's JSON `a` is true
  "$MXGUARD_BIN" account show --socket "$SOCK" --json "$1" >"$IT_DIR/account.json" 2>&1 || {
    CHECK_DETAIL="account show failed: $(head -c 300 "$IT_DIR/account.json")"; return 1; }
  python3 -c "import json,sys; a=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$IT_DIR/account.json" && return 0
  CHECK_DETAIL="account $1: $(head -c 400 "$IT_DIR/account.json") does not satisfy $2"
  return 1
}

# ------------------------------------------------------------------ alice: quota, HOLD
submit alice1 alice@example.test alice-pw user@example.test
check "alice authenticates through Dovecot SASL (235)" sent_reply alice1 '^<- +235 '
check "alice message 1 is queued" sent_queued alice1
submit alice2 alice@example.test alice-pw user@example.test
check "alice message 2 is queued" sent_queued alice2
check "alice messages 1 and 2 are delivered" wait_delivered alice2
submit alice3 alice@example.test alice-pw user@example.test
check "alice message 3 over the quota is still accepted (250, not bounced)" sent_queued alice3
submit bob1 bob@example.test bob-pw user@example.test
check "bob's message at the same time is queued" sent_queued bob1
check "... and delivered: the quota is per login" wait_delivered bob1
submit alice4 alice@example.test alice-pw "a@example.test,b@example.test"
check "alice message 4 (2 recipients) is accepted" sent_queued alice4
check "postqueue -j shows alice's two over-quota messages held" it_wait_for 10 held_count_is 2
check "held message 3 is not delivered" not_delivered alice3
check "Postfix logged the HOLD with mxguard's text" grep -q "hold: RCPT from .*quota per-user reached" "$PF_LOG"
check "mxguard recorded exactly the held queue ids under the login" mx_recorded_is_held "$SOCK" alice@example.test
check "account list shows alice with held mail" sh -c "'$MXGUARD_BIN' account list --socket '$SOCK' | grep -q 'alice@example.test'"

# ------------------------------------------------------------------ carol: nothing charged
# that Postfix refused or the client abandoned
send carol-badpw "$SMTP" carol@example.test user@example.test --local-interface 127.0.0.9 \
  --auth PLAIN --auth-user carol@example.test --auth-password wrong-pw
check "a wrong password is refused with 535" sent_reply carol-badpw '^<\*\* +535 '
submit carol-rej1 carol@example.test carol-pw nobody@example.test
check "a recipient refused by a later restriction gets 554 (message 1)" sent_reply carol-rej1 '^<\*\* +554 .*no such user'
submit carol-rej2 carol@example.test carol-pw nobody@example.test
check "... and again (message 2)" sent_reply carol-rej2 '^<\*\* +554 .*no such user'
submit carol-quit carol@example.test carol-pw user@example.test --quit-after RCPT
check "a transaction abandoned after RCPT got its RCPT accepted" sent_reply carol-quit '^<- +250 .*Ok'
submit carol1 carol@example.test carol-pw user@example.test
submit carol2 carol@example.test carol-pw user@example.test
check "carol's first real message is delivered" wait_delivered carol1
check "carol's second is delivered: refused and abandoned mail was not charged" wait_delivered carol2
check "no message of carol is held" held_count_is 2

# ------------------------------------------------------------------ unlock --release
check "account unlock alice --release exits 0" mx_unlock_release "$CONF" "$SOCK" alice@example.test
check "released message 3 is delivered" wait_delivered alice3
check "released message 4 reaches both recipients" wait_delivered alice4 2
check "the hold queue is empty" held_count_is 0
submit alice5 alice@example.test alice-pw user@example.test
check "after unlock alice's quota starts afresh" wait_delivered alice5
check "nothing bounced" no_bounce

# ------------------------------------------------------------------ mallory: containment
check "mallory logs in over IMAP before" imap_ok 127.0.0.20 mallory@example.test mallory-pw
send mallory1 "$SMTP" ceo@other.test "x@example.test,y@example.test" \
  --auth PLAIN --auth-user mallory@example.test --auth-password mallory-pw
check "mallory's message with a foreign MAIL FROM is accepted (held, not bounced)" sent_queued mallory1
check "... into the hold queue" it_wait_for 10 held_count_is 1
check "mallory is locked with the sender-mismatch reason" \
  account_json mallory@example.test 'a.get("locked") and "not owned by the login" in json.dumps(a)'
notified() {
  grep -q "account=mallory@example.test score=50 reasons=.*ceo@other.test" "$NOTIFY_OUT" 2>/dev/null && return 0
  CHECK_DETAIL="notify output: $(cat "$NOTIFY_OUT" 2>/dev/null | tr '\n' '|')"
  return 1
}
check "notify_command ran with the account, score and reasons" it_wait_for 10 notified
check "the containment is logged" grep -q 'mallory@example.test' "$MX_LOG"
check "the locked account is refused at IMAP login with the right password" \
  imap_no 127.0.0.21 mallory@example.test mallory-pw
send mallory2 "$SMTP" mallory@example.test user@example.test --local-interface 127.0.0.22 \
  --auth PLAIN --auth-user mallory@example.test --auth-password mallory-pw
check "... and at SMTP AUTH (535)" sent_reply mallory2 '^<\*\* +535 '
check "alice is not affected" imap_ok 127.0.0.23 alice@example.test alice-pw
check "account unlock mallory --release exits 0" mx_unlock_release "$CONF" "$SOCK" mallory@example.test
check "mallory's held message is delivered to both recipients" wait_delivered mallory1 2
check "the hold queue is empty again" held_count_is 0
check "mallory logs in again after unlock" imap_ok 127.0.0.21 mallory@example.test mallory-pw
check "nothing bounced at all" no_bounce

it_finish
