#!/usr/bin/env bash
# End-to-end: a real Dovecot 2.3 asks mxguard's auth-policy endpoint before and after every
# login (auth_policy_server_url), IMAP and Postfix SMTP AUTH (Dovecot SASL) alike.
#
# A throw-away Dovecot (own config, base_dir, state and log under $IT_DIR; passwd-file users;
# IMAP on a loopback port; Dovecot's anvil penalty off so only mxguard delays logins) and a
# throw-away Postfix with SASL through that Dovecot. Different client IPs are distinct
# loopback source addresses (127.0.0.x). Checks: a good login works; repeated wrong passwords
# are tarpitted, then the IP is banned and refused even with the right password (IMAP and
# SMTP AUTH); another IP still logs in; a phone retrying one stale password is not banned; a
# locked account is refused with the right password and works after unlock; bans survive a
# restart (embedded store); with mxguard stopped, logins still work (Dovecot's auth_policy_reject_on_fail = no: fail-open).
#
# Needs root, dovecot-core, dovecot-imapd, postfix, swaks, python3 (scripts/install-deps.sh).
set -uo pipefail
IT_NAME=dovecot_auth
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
it_init dovecot doveadm
[ -x /usr/lib/dovecot/imap ] || die "missing /usr/lib/dovecot/imap (package dovecot-imapd)"

IMAP_PORT=$(it_port 43)
AUTH_PORT=$(it_port 41)
POLICY_PORT=$(it_port 40)
SMTP_PORT=$(it_port 25)
REJECT_TEXT="Login refused by mxguard"
API_SECRET="e2e-$RANDOM$RANDOM"
NONCE=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

# ------------------------------------------------------------------ mxguard
MX_CONF=$IT_DIR/mxguard.toml
cat >"$MX_CONF" <<EOF
[policy]
listen = ["inet:127.0.0.1:$POLICY_PORT"]
[control]
socket = "$IT_DIR/control.sock"
[store]
type = "embedded"
path = "$IT_DIR/state"
[auth_policy]
listen = "127.0.0.1:$AUTH_PORT"
api_header = "X-API-Key: $API_SECRET"
tarpit_after = 3
tarpit_step = "1s"
tarpit_max = "2s"
ban_after = 5
ban_time = "10m"
login_tarpit_after = 0
reject_text = "$REJECT_TEXT"
EOF
check "mxguard starts with [auth_policy]" mx_start "$MX_CONF" "$AUTH_PORT"

# ------------------------------------------------------------------ Dovecot
# Dovecot's own per-IP penalty is off (lib.sh): it would blur mxguard's tarpit.
DV_EXTRA="auth_policy_server_url = http://127.0.0.1:$AUTH_PORT/
auth_policy_server_api_header = X-API-Key: $API_SECRET
auth_policy_hash_nonce = $NONCE
auth_policy_hash_truncate = 12
auth_policy_check_before_auth = yes
auth_policy_check_after_auth = yes
auth_policy_report_after_auth = yes
auth_policy_reject_on_fail = no"
dv_setup "$IMAP_PORT" alice:alice-pw bob:bob-pw carol:carol-pw dave:dave-pw erin:erin-pw
dv_start

# ------------------------------------------------------------------ Postfix SMTP AUTH via Dovecot
PF_MAIN_EXTRA=$(dv_postfix_sasl)
pf_setup "$SMTP_PORT" "permit_sasl_authenticated, reject"
pf_start

secs_of() { awk '{print $2}' <<<"$1"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# ------------------------------------------------------------------ checks
check "good login from a clean IP works" imap_ok 127.0.0.10 alice alice-pw

# bob from 127.0.0.20 with five different wrong passwords.
times=()
for i in 1 2 3 4 5; do
  r=$(imap_login 127.0.0.20 bob "wrong-$i")
  times+=("$(secs_of "$r")")
done
info "wrong-password login times: ${times[*]}"
tarpit_seen() {
  lt "${times[0]}" 0.9 && ge "${times[3]}" 0.9 && ge "${times[4]}" 1.9 && return 0
  CHECK_DETAIL="times ${times[*]}: expected <0.9 s at first, >=1 s from the 4th, >=2 s at the 5th"
  return 1
}
check "repeated wrong passwords are tarpitted (Dovecot waits the status seconds)" tarpit_seen
check "then the IP is banned: right password refused with reject_text" \
  imap_no 127.0.0.20 bob bob-pw "$REJECT_TEXT"
check "the same user from another IP still logs in" imap_ok 127.0.0.21 bob bob-pw
ban_listed() {
  grep -q 'auth policy: banned' "$MX_LOG" && return 0
  CHECK_DETAIL="no ban logged in $MX_LOG: $(tail -n 3 "$MX_LOG" | tr '\n' '|')"
  return 1
}
check "the ban is logged" ban_listed

# SMTP AUTH through Postfix -> Dovecot SASL -> mxguard.
smtp_auth() { # NAME SRC USER PASS
  swaks --server 127.0.0.1 --port "$SMTP_PORT" --local-interface "$2" --helo client.test \
    --timeout 30 --hide-informational --quit-after AUTH \
    --auth PLAIN --auth-user "$3" --auth-password "$4" >"$IT_DIR/swaks.$1" 2>&1
  return 0
}
smtp_auth smtp-banned 127.0.0.20 bob bob-pw
check "SMTP AUTH from the banned IP is refused with the right password" \
  sent_reply smtp-banned '^<\*\* +535 .*'"$REJECT_TEXT"
smtp_auth smtp-clean 127.0.0.22 bob bob-pw
check "SMTP AUTH from a clean IP succeeds" sent_reply smtp-clean '^<- +235 '

# Bans are in the embedded store: they survive a restart.
restart_mx() { mx_stop && mx_start "$MX_CONF" "$AUTH_PORT"; }
check "mxguard restarts" restart_mx
check "the ban holds across the restart" imap_no 127.0.0.20 bob bob-pw "$REJECT_TEXT"

# A phone retrying one stale password: counted once, never banned.
for i in $(seq 1 8); do imap_login 127.0.0.30 carol old-carol-pw >/dev/null; done
check "a device retrying one stale password is not banned" imap_ok 127.0.0.30 carol carol-pw
stale_fast() {
  lt "$(secs_of "$LAST")" 0.9 && return 0
  CHECK_DETAIL="login took $(secs_of "$LAST") s (tarpitted)"; return 1
}
check "... nor tarpitted" stale_fast

# Account lock through the control socket.
"$MXGUARD_BIN" account lock --socket "$IT_DIR/control.sock" dave --reason "e2e" \
  >"$IT_DIR/lock.out" 2>&1 || info "lock: $(cat "$IT_DIR/lock.out")"
check "a locked account is refused with the right password" imap_no 127.0.0.40 dave dave-pw
smtp_auth smtp-locked 127.0.0.41 dave dave-pw
check "... over SMTP AUTH too" sent_reply smtp-locked '^<\*\* +535 '
"$MXGUARD_BIN" account unlock --socket "$IT_DIR/control.sock" dave >"$IT_DIR/unlock.out" 2>&1 \
  || info "unlock: $(cat "$IT_DIR/unlock.out")"
check "after unlock the account logs in" imap_ok 127.0.0.40 dave dave-pw

# Fail-open: mxguard stopped, Dovecot's policy requests fail, logins go on.
check "mxguard stops cleanly" mx_stop
check "with mxguard stopped, logins still work (fail-open)" imap_ok 127.0.0.50 erin erin-pw
fail_open_fast() {
  lt "$(secs_of "$LAST")" 5 && return 0
  CHECK_DETAIL="login took $(secs_of "$LAST") s"; return 1
}
check "... without a long wait" fail_open_fast
check "Dovecot logged the policy failure" grep -qi 'policy' "$DV/dovecot.log"

it_finish
