#!/usr/bin/env bash
# End-to-end: a real Postfix 3.7 (throw-away instance, scripts/it/lib.sh) consults mxguard at
# RCPT and at END-OF-MESSAGE (smtpd_end_of_data_restrictions) with a quota of 2 messages per
# hour per client_address and action HOLD (docs/limits.md):
#   * the first two messages are delivered;
#   * later messages are still answered "250 queued" (nothing bounced, nothing lost) but sit
#     in Postfix's hold queue: `postqueue -j` shows them with queue_name "hold";
#   * mxguard recorded exactly those queue ids (`mxguard account show ip:127.0.0.1`);
#   * `mxguard account unlock ip:127.0.0.1 --release` runs `postsuper -H` and both held
#     messages are delivered; the client's quota is reset so new mail flows again;
#   * an administrator's lock (`mxguard account lock`) is listed and unlocking it works.
# The quota here is keyed on client_address; the same for SASL logins through a real
# Dovecot, and containment, is scripts/it/postfix_sasl_quota.sh.
#
# Needs root, postfix, swaks, python3 (scripts/install-deps.sh) and $MXGUARD_BIN.
# KEEP=1 keeps the temp dir.

# shellcheck source=scripts/it/lib.sh
. "$(dirname "$0")/lib.sh"

IT_NAME=postfix_quota
: "${MXGUARD_BIN:=$(cd "$(dirname "$0")/../.." && pwd)/target/release/mxguard}"
it_init postsuper

SMTP=$(it_port 25)
MXPORT=$(it_port 40)
CONF=$IT_DIR/mxguard.toml
SOCK=$IT_DIR/control.sock

cat >"$CONF" <<EOF
[policy]
listen = ["inet:127.0.0.1:$MXPORT"]
default_action = "DUNNO"

[store]
type = "embedded"
path = "$IT_DIR/state"

[greylist]
enabled = false

[[limit]]
name = "per-client"
key = ["client_address"]
count = "messages"
rate = ["2/1h"]
action = "HOLD quota %n reached, held for review"

[account]
postfix_config = "$IT_DIR/postfix/etc"

[control]
socket = "$SOCK"
EOF

check "check-config accepts [[limit]] and [account]" mx_config_ok "$CONF"
check "mxguard serve listens on 127.0.0.1:$MXPORT" mx_start "$CONF" "$MXPORT"

PF_MAIN_EXTRA="smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:$MXPORT"
pf_setup "$SMTP" "reject_unauth_destination, check_policy_service inet:127.0.0.1:$MXPORT"
pf_start
info "postfix $(postconf -d -h mail_version) on 127.0.0.1:$SMTP, mxguard pid $MX_PID"


for i in 1 2; do
  send "quota$i" "$SMTP" sender@client.test "user@example.test"
  check "message $i under the quota is queued" sent_queued "quota$i"
  check "message $i is delivered" wait_delivered "quota$i"
done
send quota3 "$SMTP" sender@client.test "user@example.test"
check "message 3 over the quota is still accepted (250, not bounced)" sent_queued quota3
send quota4 "$SMTP" sender@client.test "a@example.test,b@example.test"
check "message 4 (2 recipients) over the quota is accepted" sent_queued quota4
check "postqueue -j shows both over-quota messages held" it_wait_for 10 held_count_is 2
check "held message 3 is not delivered" not_delivered quota3
check "the HOLD was logged by Postfix" grep -q "hold: RCPT from .*quota per-client reached" "$PF_LOG"

check "mxguard recorded exactly the held queue ids" mx_recorded_is_held "$SOCK" ip:127.0.0.1
check "nothing bounced" no_bounce

check "account unlock --release exits 0" mx_unlock_release "$CONF" "$SOCK" ip:127.0.0.1
check "released message 3 is delivered" wait_delivered quota3
check "released message 4 reaches both recipients" wait_delivered quota4 2
check "the hold queue is empty" held_count_is 0
send quota5 "$SMTP" sender@client.test "user@example.test"
check "after unlock the client's quota starts afresh" wait_delivered quota5

admin_lock() {
  "$MXGUARD_BIN" account lock --socket "$SOCK" --reason "test lock" bob@example.test >/dev/null &&
    "$MXGUARD_BIN" account list --socket "$SOCK" | grep -q "bob@example.test: LOCKED .*test lock"
}
check "account lock is listed with its reason" admin_lock
check "account unlock of the admin lock" "$MXGUARD_BIN" account unlock --socket "$SOCK" bob@example.test
check "account show reports it unlocked" sh -c "'$MXGUARD_BIN' account show --socket '$SOCK' bob@example.test | grep -q 'not locked'"

it_finish
