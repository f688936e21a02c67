#!/usr/bin/env bash
# End-to-end test of `mxguard audit` with the real postconf and doveconf of the installed
# Debian packages, on throw-away copies of their stock configuration (postconf -c DIR,
# doveconf -c FILE). Nothing here starts, stops or reconfigures a system service, and the
# files under /etc are only read (a checksum check at the end proves it).
#
# Prints "PASS name" / "FAIL name: detail" lines; exits non-zero when any check failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN="${MXGUARD_BIN:-$(pwd)/target/release/mxguard}"
fails=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; fails=$((fails + 1)); }

if [ ! -x "$BIN" ]; then fail audit-binary "$BIN not built"; exit 1; fi
for cmd in postconf doveconf python3; do
  command -v "$cmd" >/dev/null || { fail "audit-$cmd" "$cmd not installed (scripts/install-deps.sh)"; exit 1; }
done

T=$(mktemp -d /tmp/mxguard-audit-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
sys_sum() { cat /etc/dovecot/dovecot.conf /etc/dovecot/conf.d/* /etc/postfix/master.cf 2>/dev/null | md5sum; }
before=$(sys_sum)

# Rule ids of a JSON report on stdin, sorted, space separated.
ids() { python3 -c 'import json,sys; print(" ".join(sorted({f["rule"] for f in json.load(sys.stdin)["findings"]})))'; }
has() { case " $1 " in *" $2 "*) return 0;; esac; return 1; }

# --- Stock Debian 12 configuration, built the way postfix.postinst builds "Internet Site".
PF="$T/postfix"; mkdir -p "$PF"
cp /usr/share/postfix/main.cf.debian "$PF/main.cf"
cat /usr/share/postfix/main.cf.tls >> "$PF/main.cf"
cp /usr/share/postfix/master.cf.dist "$PF/master.cf"
postconf -c "$PF" -e \
  "smtpd_relay_restrictions=permit_mynetworks permit_sasl_authenticated defer_unauth_destination" \
  "myhostname=mx.example.test" "alias_maps=hash:/etc/aliases" "alias_database=hash:/etc/aliases" \
  "myorigin=/etc/mailname" "mydestination=\$myhostname, example.test, localhost.localdomain, localhost" \
  "relayhost=" "mynetworks=127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128" "mailbox_size_limit=0" \
  "recipient_delimiter=+" "inet_interfaces=all" "inet_protocols=all"
cp -a /etc/dovecot "$T/dovecot"
DC="$T/dovecot/dovecot.conf"
PFVER=$(postconf -d -h mail_version)

expected="DV-AUTH-POLICY-NOT-SET DV-LISTEN-ALL PF-HELO-NO-CHECKS PF-HELO-NOT-REQUIRED PF-NO-CLIENT-RATE-LIMITS PF-SMTP-SMUGGLING PF-STRICT-RFC821-OFF PF-UNAUTH-PIPELINING-ALLOWED PF-VRFY-ENABLED XX-TLS-SNAKEOIL-CERT"
out=$("$BIN" audit --postfix-instance "$PF" --dovecot-instance "$DC" --format json); rc=$?
got=$(echo "$out" | ids)
if [ "$rc" -eq 0 ] && [ "$got" = "$expected" ]; then pass stock-debian-findings
else fail stock-debian-findings "rc=$rc postfix=$PFVER got: $got"; fi

false_alarm=""
for r in PF-OPEN-RELAY-PERMIT PF-OPEN-RELAY-MYNETWORKS-ANY PF-MYNETWORKS-PUBLIC PF-NO-RELAY-CONTROL \
         PF-SASL-PLAINTEXT-NO-TLS DV-PLAINTEXT-AUTH-ALLOWED DV-AUTH-MECH-PLAIN-NO-TLS DV-PASSDB-STATIC-NOPASSWORD; do
  has "$got" "$r" && false_alarm="$false_alarm $r"
done
if [ -z "$false_alarm" ]; then pass stock-debian-no-false-alarms; else fail stock-debian-no-false-alarms "$false_alarm"; fi

if echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["schema"]=="mxguard.audit/1"; assert d["summary"]["total"]==len(d["findings"])'; then
  pass json-schema; else fail json-schema "bad JSON document"; fi

# The same configuration read as files must give the same findings.
got_files=$("$BIN" audit --postfix-dir "$PF" --postfix-version "$PFVER" --dovecot-config "$DC" --format json | ids)
if [ "$got_files" = "$got" ]; then pass files-match-commands; else fail files-match-commands "files: $got_files / commands: $got"; fi

# --fail-on: the stock smuggling finding is high.
"$BIN" audit --postfix-instance "$PF" --dovecot-instance "$DC" --fail-on high >/dev/null; rc=$?
[ "$rc" -eq 1 ] && pass fail-on-high || fail fail-on-high "exit $rc, want 1"

# --fix-snippet round trip: apply its main.cf lines with postconf -e, re-audit.
"$BIN" audit --postfix-instance "$PF" --dovecot-instance "$DC" --fix-snippet > "$T/snippet.txt"
awk '/^# ---- /{sec=$3; next} /^#/ {next} sec=="main.cf" && /=/ {print}' "$T/snippet.txt" | grep -v snakeoil | grep -v letsencrypt > "$T/main-fixes.txt"
while IFS= read -r line; do postconf -c "$PF" -e "$line"; done < "$T/main-fixes.txt"
after=$("$BIN" audit --postfix-instance "$PF" --dovecot-instance "$DC" --format json | ids)
left=""
for r in PF-SMTP-SMUGGLING PF-NO-CLIENT-RATE-LIMITS PF-HELO-NO-CHECKS PF-HELO-NOT-REQUIRED PF-UNAUTH-PIPELINING-ALLOWED PF-VRFY-ENABLED; do
  has "$after" "$r" && left="$left $r"
done
if [ -s "$T/main-fixes.txt" ] && [ -z "$left" ] && postconf -c "$PF" -n | grep -q '^smtpd_forbid_bare_newline = normalize'; then
  pass fix-snippet-roundtrip; else fail fix-snippet-roundtrip "still firing:$left"; fi

# Open relay through mynetworks.
postconf -c "$PF" -e "mynetworks=127.0.0.0/8 0.0.0.0/0"
out=$("$BIN" audit --postfix-instance "$PF" --no-dovecot --fail-on critical --format json); rc=$?
if [ "$rc" -eq 1 ] && has "$(echo "$out" | ids)" PF-OPEN-RELAY-MYNETWORKS-ANY; then pass open-relay-mynetworks
else fail open-relay-mynetworks "rc=$rc $(echo "$out" | ids)"; fi
postconf -c "$PF" -e "mynetworks=127.0.0.0/8 [::1]/128"

# Submission with AUTH but no TLS requirement, written with postconf -M/-P (master.cf -o).
postconf -c "$PF" -M submission/inet="submission inet n - y - - smtpd"
postconf -c "$PF" -P "submission/inet/smtpd_sasl_auth_enable=yes"
got=$("$BIN" audit --postfix-instance "$PF" --no-dovecot --format json | ids)
if has "$got" PF-SUBMISSION-TLS-NOT-REQUIRED && has "$got" PF-SASL-PLAINTEXT-NO-TLS && has "$got" PF-SENDER-SPOOF-AUTHENTICATED && has "$got" PF-SASL-NO-OUTBOUND-LIMIT; then
  pass submission-override; else fail submission-override "got: $got"; fi
postconf -c "$PF" -P "submission/inet/smtpd_tls_security_level=encrypt" "submission/inet/smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject" "submission/inet/smtpd_sender_login_maps=hash:/etc/postfix/sender_login"
got=$("$BIN" audit --postfix-instance "$PF" --no-dovecot --format json | ids)
if ! has "$got" PF-SUBMISSION-TLS-NOT-REQUIRED && ! has "$got" PF-SASL-PLAINTEXT-NO-TLS && ! has "$got" PF-SENDER-SPOOF-AUTHENTICATED; then
  pass submission-override-fixed; else fail submission-override-fixed "got: $got"; fi

# Seed 002 incident: static passdb with nopassword=y, accepted by doveconf.
cat >> "$T/dovecot/conf.d/10-auth.conf" <<'EOF'
passdb {
  driver = static
  args = nopassword=y
}
EOF
out=$("$BIN" audit --dovecot-instance "$DC" --fail-on critical --format json); rc=$?
if [ "$rc" -eq 1 ] && has "$(echo "$out" | ids)" DV-PASSDB-STATIC-NOPASSWORD; then pass dovecot-static-nopassword
else fail dovecot-static-nopassword "rc=$rc $(echo "$out" | ids)"; fi
sed -i 's/args = nopassword=y/args = proxy=y host=localhost nopassword=y/' "$T/dovecot/conf.d/10-auth.conf"
out=$("$BIN" audit --dovecot-instance "$DC" --format json); rc=$?
if [ "$rc" -eq 0 ] && ! has "$(echo "$out" | ids)" DV-PASSDB-STATIC-NOPASSWORD; then pass dovecot-static-proxy-quiet
else fail dovecot-static-proxy-quiet "rc=$rc $(echo "$out" | ids)"; fi

# Plaintext authentication allowed globally vs. only for loopback.
echo "disable_plaintext_auth = no" > "$T/dovecot/local.conf"
got=$("$BIN" audit --dovecot-instance "$DC" --format json | ids)
has "$got" DV-PLAINTEXT-AUTH-ALLOWED && pass dovecot-plaintext || fail dovecot-plaintext "got: $got"
printf 'remote 127.0.0.1 {\n  disable_plaintext_auth = no\n}\n' > "$T/dovecot/local.conf"
got=$("$BIN" audit --dovecot-instance "$DC" --format json | ids)
has "$got" DV-PLAINTEXT-AUTH-ALLOWED && fail dovecot-plaintext-remote-quiet "got: $got" || pass dovecot-plaintext-remote-quiet

# Broken inputs: exit 2 with a message.
mkdir -p "$T/trunc"; printf 'myhostname = mx.example.test\nsmtpd_recipient_restrictions = permit_mynetworks,' > "$T/trunc/main.cf"
err=$("$BIN" audit --postfix-dir "$T/trunc" 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] && echo "$err" | grep -q truncated && pass broken-truncated-main-cf || fail broken-truncated-main-cf "rc=$rc $err"
mkdir -p "$T/bin"; head -c 256 "$(command -v postconf)" > "$T/bin/main.cf"
err=$("$BIN" audit --postfix-dir "$T/bin" 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] && echo "$err" | grep -q binary && pass broken-binary-file || fail broken-binary-file "rc=$rc $err"
printf 'passdb {\n  driver = pam\n' > "$T/dovecot/local.conf"
err=$("$BIN" audit --dovecot-instance "$DC" 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] && echo "$err" | grep -q doveconf && pass broken-doveconf-fails || fail broken-doveconf-fails "rc=$rc $err"
err=$(PATH="$T/empty-path" "$BIN" audit 2>&1 >/dev/null); rc=$?
[ "$rc" -eq 2 ] && echo "$err" | grep -q 'not found' && pass broken-missing-command || fail broken-missing-command "rc=$rc $err"

[ "$(sys_sum)" = "$before" ] && pass system-config-untouched || fail system-config-untouched "/etc changed"

[ "$fails" -eq 0 ]
