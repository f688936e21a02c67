# shellcheck shell=bash
# Shared helpers for the end-to-end suites in scripts/it/*.sh (sourced, not run; it.sh only
# runs files ending in .sh that are not this one).
#
# What it gives a suite:
#   * PASS/FAIL bookkeeping: `check NAME CMD...`, `pass NAME`, `fail NAME DETAIL`, `it_finish`
#     (prints "N passed, N failed" and returns non-zero when anything failed);
#   * a temp dir `$IT_DIR` (mode 0755: smtpd runs as postfix and virtual(8) as nobody and both
#     must traverse it), removed at exit unless KEEP=1;
#   * free loopback ports from one randomly chosen base (`it_port OFFSET`), so suites and other
#     engineers' services do not collide;
#   * a throw-away Postfix 3.7 instance (`pf_setup`, `pf_start`): its own config, queue and data
#     dirs under `$IT_DIR`, smtpd on loopback, `maillog_file` through postlogd (there is no
#     syslog here), virtual(8) delivery of `@example.test` into one Maildir, chroot n everywhere,
#     XCLIENT allowed from 127.0.0.1 so a test can present any client address and name;
#   * a throw-away Dovecot 2.3 (`dv_setup`, `dv_start`) with passwd-file users, IMAP and the
#     SASL socket Postfix authenticates through (`dv_postfix_sasl`), `imap_login`;
#   * mxguard start/stop/kill -9 with a config the suite writes (`mx_start`, `mx_stop`,
#     `mx_kill9`), bounded polling for ports and files;
#   * a cleanup trap that stops only what this shell started: Postfix by its config dir,
#     daemons by the pids recorded when they were started.
#
# Facts behind the Postfix recipe (traps included) are in ../shared/notes/mail-e2e.md.
# Needs root (postfix start binds ports and drops privileges), postfix, swaks, python3.

set -uo pipefail

IT_START_TS=$(date +%s)
IT_PASSES=0
IT_FAILS=0
IT_NAME=${IT_NAME:-$(basename "${BASH_SOURCE[1]:-suite}" .sh)}
: "${MXGUARD_BIN:=}"
KEEP=${KEEP:-0}

pass() { IT_PASSES=$((IT_PASSES + 1)); echo "PASS $1"; }
fail() { IT_FAILS=$((IT_FAILS + 1)); echo "FAIL $1: ${2:-failed}"; }
# check NAME CMD...: PASS when CMD succeeds; on failure the detail is $CHECK_DETAIL if the
# command set it, else the command line.
check() {
  local name=$1; shift
  CHECK_DETAIL=
  if "$@"; then pass "$name"; else fail "$name" "${CHECK_DETAIL:-$*}"; fi
}
die() { echo "FAIL $IT_NAME-setup: $*"; IT_FAILS=$((IT_FAILS + 1)); exit 1; }
info() { echo "info: $*"; }

# ------------------------------------------------------------------ prerequisites, temp dir
it_require() {
  [ "$(id -u)" = 0 ] || die "must run as root (postfix start needs it); run scripts/install-deps.sh on a Debian 12 box"
  local b
  for b in postfix postconf postqueue swaks python3 "$@"; do
    command -v "$b" >/dev/null 2>&1 || die "missing $b (scripts/install-deps.sh installs it)"
  done
}

it_init() {
  it_require "$@"
  IT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mxit.XXXXXX") || die "mktemp failed"
  chmod 755 "$IT_DIR"
  IT_PIDS=()
  PF_STARTED=0
  MX_PID=
  trap it_cleanup EXIT
  trap 'exit 130' INT TERM
  it_pick_ports
  info "workdir $IT_DIR, ports $IT_BASE_PORT..$((IT_BASE_PORT + 99))"
}

# One base port for the whole suite; every port is base + offset (0..99). The base is drawn at
# random below the kernel's ephemeral range (32768+, where thousands of client sockets of other
# tests may sit) and kept only when none of its 100 ports is bound by any TCP socket.
it_pick_ports() {
  local used try base
  used=" $(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}' | sort -u | tr '\n' ' ') "
  for try in $(seq 1 50); do
    base=${IT_BASE_PORT:-$((20000 + (RANDOM % 120) * 100))}
    local p ok=1
    for p in $(seq "$base" $((base + 99))); do
      case $used in *" $p "*) ok=0; break ;; esac
    done
    if [ $ok = 1 ]; then IT_BASE_PORT=$base; return 0; fi
    [ -n "${IT_BASE_PORT:-}" ] && die "IT_BASE_PORT=$IT_BASE_PORT: a port in its range is busy"
  done
  die "no free range of 100 loopback ports found"
}
it_port() { echo $((IT_BASE_PORT + $1)); }

# it_wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT (polls every 0.1 s).
it_wait_port() {
  local port=$1 tries=$(( ${2:-15} * 10 )) i
  for ((i = 0; i < tries; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# it_wait_port_closed PORT [SECONDS]: until nothing accepts on it any more.
it_wait_port_closed() {
  local port=$1 tries=$(( ${2:-10} * 10 )) i
  for ((i = 0; i < tries; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}
# it_wait_for SECONDS CMD...: until CMD succeeds (polls every 0.1 s).
it_wait_for() {
  local tries=$(( $1 * 10 )) i; shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
# Monotonic-enough seconds with fractions, for "has the delay elapsed" decisions.
it_now() { date +%s.%N; }
it_elapsed_ge() { # it_elapsed_ge START SECONDS: true when now - START >= SECONDS
  awk -v s="$1" -v d="$2" -v n="$(it_now)" 'BEGIN { exit !(n - s >= d) }'
}

# it_sasl_fail LOG IP: appends a Postfix submission "SASL LOGIN authentication failed" line
# from IP, stamped now, to LOG (what the postfix[mode=auth] filter counts).
it_sasl_fail() {
  echo "$(date '+%b %e %H:%M:%S') mail postfix/submission/smtpd[77]: warning: unknown[$2]: SASL LOGIN authentication failed: UGFzc3dvcmQ6" >>"$1"
}

# it_netns NAME...: creates these network namespaces, deleted again at exit (after
# it_cleanup). Skips the suite (exit 0) when namespaces cannot be created here, or fails it
# with MXGUARD_REQUIRE_NETNS=1.
it_netns() {
  IT_NETNS=("$@")
  trap 'it_netns_cleanup' EXIT
  local ns
  for ns in "$@"; do
    if ! ip netns add "$ns" 2>/dev/null; then
      if [ "${MXGUARD_REQUIRE_NETNS:-0}" = 1 ]; then die "cannot create network namespaces"; fi
      echo "skip: cannot create network namespaces here"; exit 0
    fi
  done
}
it_netns_cleanup() {
  local rc=$? ns
  for ns in "${IT_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  (exit $rc)
  it_cleanup
}

# Background process whose pid cleanup must stop (TERM, then KILL after 5 s).
it_track_pid() { IT_PIDS+=("$1"); }
it_stop_pid() { # it_stop_pid PID [SIGNAL]: signal it and wait (bounded) until it is gone
  local pid=$1 sig=${2:-TERM} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 1
}

it_cleanup() {
  local rc=$? pid
  set +e
  if [ "$IT_FAILS" -gt 0 ]; then it_dump_logs; fi
  dv_stop
  [ -n "${MX_PID:-}" ] && it_stop_pid "$MX_PID"
  for pid in "${IT_PIDS[@]}"; do it_stop_pid "$pid"; done
  if [ "${PF_STARTED:-0}" = 1 ]; then
    postfix -c "$PF_CONF" stop >/dev/null 2>&1
    # master.pid disappears once the master has stopped its children and exited
    it_wait_for 10 pf_master_gone || echo "warn: postfix master (config $PF_CONF) still running"
  fi
  if [ "$KEEP" = 1 ]; then echo "kept: $IT_DIR"; else rm -rf "$IT_DIR"; fi
  echo "elapsed: $(( $(date +%s) - IT_START_TS ))s"
  exit "$rc"
}

it_dump_logs() {
  local f
  for f in "$IT_DIR"/mxguard*.log "${PF_LOG:-/nonexistent}" "${DV:-/nonexistent}/dovecot.log"; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f"
    tail -n 25 "$f"
  done
}

# Prints "N passed, N failed" and returns 1 when something failed.
it_finish() {
  echo "$IT_NAME: $IT_PASSES passed, $IT_FAILS failed"
  [ "$IT_FAILS" = 0 ]
}

# ------------------------------------------------------------------ Postfix
# pf_setup SMTP_PORT RECIPIENT_RESTRICTIONS
#   Writes main.cf/master.cf for an instance under $IT_DIR/postfix with smtpd on
#   127.0.0.1:SMTP_PORT. Extra main.cf lines: $PF_MAIN_EXTRA; extra master.cf services (for
#   -o overrides on other ports): $PF_MASTER_EXTRA.
pf_setup() {
  local smtp_port=$1 restrictions=$2
  PF_DIR=$IT_DIR/postfix
  PF_CONF=$PF_DIR/etc
  PF_QUEUE=$PF_DIR/spool
  PF_DATA=$PF_DIR/data
  PF_MAIL=$PF_DIR/mail
  PF_LOG=$PF_DIR/maillog
  PF_MAILDIR=$PF_MAIL/inbox
  # smtpd refuses an XCLIENT IPv6 address unless IPv6 is enabled (501 Bad ADDR syntax); the
  # listeners stay on 127.0.0.1 either way.
  if grep -qs . /proc/net/if_inet6; then PF_IPV6=1; PF_PROTOCOLS="ipv4, ipv6"; else PF_IPV6=0; PF_PROTOCOLS=ipv4; fi
  mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$PF_MAIL"
  chown postfix:postfix "$PF_DATA"
  chown 65534:65534 "$PF_MAIL"
  cat >"$PF_CONF/main.cf" <<EOF
# throw-away test instance written by scripts/it/lib.sh
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = $PF_PROTOCOLS
mynetworks = 127.0.0.1/32
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_banner = \$myhostname ESMTP mxguard-it
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
# no syslog here: log through postlogd; /tmp must be an allowed prefix or start fails silently
maillog_file = $PF_LOG
maillog_file_prefixes = /var, /dev/stdout, /tmp, $IT_DIR
# everything for example.test goes into one Maildir owned by nobody
virtual_mailbox_domains = example.test
virtual_mailbox_base = $PF_MAIL
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
# scan the deferred queue every second: mail released from hold (postsuper -H moves it to
# the deferred queue) or deferred once is delivered within the suites' bounded waits
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = $restrictions
# swaks --xclient-addr/--xclient-name present any client address and name (test only)
smtpd_authorized_xclient_hosts = 127.0.0.1
${PF_MAIN_EXTRA:-}
EOF
  cat >"$PF_CONF/master.cf" <<EOF
# chroot n everywhere: absolute socket paths work without a jail
127.0.0.1:$smtp_port inet n   -       n       -       -       smtpd
${PF_MASTER_EXTRA:-}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
  PF_SMTP_PORT=$smtp_port
}

pf_master_gone() {
  local pid
  [ -f "$PF_QUEUE/pid/master.pid" ] || return 0
  pid=$(tr -d ' \n' <"$PF_QUEUE/pid/master.pid")
  [ -z "$pid" ] && return 0
  ! kill -0 "$pid" 2>/dev/null
}

pf_start() {
  postfix -c "$PF_CONF" check >"$PF_DIR/check.out" 2>&1 \
    || { cat "$PF_DIR/check.out"; die "postfix check failed (config $PF_CONF)"; }
  postfix -c "$PF_CONF" start >"$PF_DIR/start.out" 2>&1 \
    || { cat "$PF_DIR/start.out"; [ -f "$PF_LOG" ] && tail -5 "$PF_LOG"; die "postfix start failed"; }
  PF_STARTED=1
  it_wait_port "$PF_SMTP_PORT" 15 || die "postfix smtpd not listening on $PF_SMTP_PORT"
}

# ------------------------------------------------------------------ swaks and the Maildir
# send NAME PORT FROM TO [swaks args...]: one SMTP transaction; output in $IT_DIR/swaks.NAME,
# swaks exit code in SEND_RC. The Subject is NAME so the delivered file can be found.
send() {
  local name=$1 port=$2 from=$3 to=$4; shift 4
  swaks --server 127.0.0.1 --port "$port" --helo client.test --timeout 30 \
    --hide-informational --from "$from" --to "$to" --header "Subject: $name" "$@" \
    >"$IT_DIR/swaks.$name" 2>&1
  SEND_RC=$?
  return 0
}
# sent_reply NAME REGEX: the swaks transcript of NAME has a server line matching REGEX.
sent_reply() {
  grep -qE "$2" "$IT_DIR/swaks.$1" && return 0
  CHECK_DETAIL="expected /$2/, server said: $(grep -E '^(<-|<\*\*)' "$IT_DIR/swaks.$1" | tail -n 3 | tr '\n' '|')"
  return 1
}
sent_queued() { sent_reply "$1" '^<-  250 2\.0\.0 Ok: queued'; }
# The first server line with a 4xx/5xx code (for info output).
sent_error() { grep -E '^<\*\*' "$IT_DIR/swaks.$1" | head -n 1; }

# delivered_file SUBJECT: path of the delivered message whose Subject is SUBJECT (one of).
delivered_file() {
  grep -lx "Subject: $1" "$PF_MAILDIR"/new/* 2>/dev/null | head -n 1
}
delivered_files() { grep -lx "Subject: $1" "$PF_MAILDIR"/new/* 2>/dev/null; }
_delivered_count() { [ "$(delivered_files "$1" | wc -l)" -ge "$2" ]; }
# wait_delivered SUBJECT [COUNT] [SECONDS]: until COUNT delivered copies carry that Subject.
wait_delivered() {
  local want=${2:-1}
  it_wait_for "${3:-15}" _delivered_count "$1" "$want" && return 0
  CHECK_DETAIL="$(delivered_files "$1" | wc -l) of $want copies of '$1' in $PF_MAILDIR/new"
  return 1
}
# not_delivered SUBJECT: no delivered message carries that Subject.
not_delivered() {
  [ -z "$(delivered_file "$1")" ] && return 0
  CHECK_DETAIL="$1 was delivered"
  return 1
}
# held_ids: queue ids in the hold queue, one per line, sorted (postqueue -j).
held_ids() {
  postqueue -c "$PF_CONF" -j 2>/dev/null | python3 -c '
import json, sys
ids = [m["queue_id"] for m in map(json.loads, filter(None, sys.stdin.read().splitlines()))
       if m.get("queue_name") == "hold"]
print("\n".join(sorted(ids)))'
}
# held_count_is N: exactly N messages sit in the hold queue.
held_count_is() {
  local n
  n=$(held_ids | grep -c . || true)
  [ "$n" = "$1" ] && return 0
  CHECK_DETAIL="$n messages in the hold queue, want $1: $(postqueue -c "$PF_CONF" -p 2>&1 | tail -n 8 | tr '\n' '|')"
  return 1
}
# no_bounce: Postfix's log shows no bounce and no non-delivery notice.
no_bounce() {
  ! grep -qE 'status=bounced|NDN|sender non-delivery' "$PF_LOG" && return 0
  CHECK_DETAIL="$(grep -E 'status=bounced|NDN|sender non-delivery' "$PF_LOG" | head -n 2 | tr '\n' '|')"
  return 1
}
# header_count FILE NAME: how often header NAME occurs in the header block of FILE.
header_count() {
  awk -v h="$2" 'BEGIN { n = 0 } /^$/ { exit } tolower($0) ~ "^" tolower(h) ":" { n++ } END { print n }' "$1"
}

# ------------------------------------------------------------------ mxguard
# mx_start CONFIG [PORT]: runs `$MXGUARD_BIN serve --config CONFIG` in the background (stderr
# and stdout to $IT_DIR/mxguard.N.log) and waits until PORT accepts connections.
MX_RUNS=0
mx_start() {
  local conf=$1 port=${2:-}
  [ -x "$MXGUARD_BIN" ] || die "MXGUARD_BIN=$MXGUARD_BIN is not an executable (build: cargo build --release --locked -p mxguard)"
  MX_RUNS=$((MX_RUNS + 1))
  MX_LOG=$IT_DIR/mxguard.$MX_RUNS.log
  "$MXGUARD_BIN" serve --config "$conf" >"$MX_LOG" 2>&1 &
  MX_PID=$!
  if [ -n "$port" ] && ! it_wait_port "$port" 20; then
    CHECK_DETAIL="mxguard did not listen on $port within 20 s: $(tail -n 5 "$MX_LOG" | tr '\n' '|')"
    return 1
  fi
  if ! kill -0 "$MX_PID" 2>/dev/null; then
    CHECK_DETAIL="mxguard exited: $(tail -n 5 "$MX_LOG" | tr '\n' '|')"
    return 1
  fi
  return 0
}
# mx_recorded_held SOCKET ACCOUNT: the queue ids mxguard recorded as held for ACCOUNT (a
# login or ip:ADDRESS), sorted, one per line.
mx_recorded_held() {
  "$MXGUARD_BIN" account show --socket "$1" --json "$2" \
    | python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)["held"])))'
}
# mx_recorded_is_held SOCKET ACCOUNT: mxguard recorded exactly the ids in the hold queue.
mx_recorded_is_held() {
  local a b
  a=$(mx_recorded_held "$1" "$2"); b=$(held_ids)
  [ -n "$a" ] && [ "$a" = "$b" ] && return 0
  CHECK_DETAIL="mxguard recorded [$(echo "$a" | tr '\n' ' ')], hold queue has [$(echo "$b" | tr '\n' ' ')]"
  return 1
}
# mx_unlock_release CONFIG SOCKET ACCOUNT: `mxguard account unlock --release` succeeds.
mx_unlock_release() {
  local out
  out=$("$MXGUARD_BIN" account unlock --config "$1" --socket "$2" --release "$3" 2>&1) && return 0
  CHECK_DETAIL="exit $?: $(echo "$out" | tr '\n' '|')"
  return 1
}
# mx_config_ok CONFIG: `mxguard check-config` accepts CONFIG.
mx_config_ok() {
  local out
  out=$("$MXGUARD_BIN" check-config --config "$1" 2>&1) && return 0
  CHECK_DETAIL="exit $?: $(echo "$out" | head -n 5 | tr '\n' '|')"
  return 1
}
mx_stop() { # graceful: SIGTERM and wait (bounded)
  [ -n "${MX_PID:-}" ] || return 0
  it_stop_pid "$MX_PID" TERM
  local rc=$?
  MX_PID=
  return $rc
}
mx_kill9() {
  [ -n "${MX_PID:-}" ] || return 0
  kill -KILL "$MX_PID" 2>/dev/null
  wait "$MX_PID" 2>/dev/null
  MX_PID=
  return 0
}

# ------------------------------------------------------------------ Dovecot
# dv_setup IMAP_PORT USERS...: writes a throw-away Dovecot 2.3 config under $IT_DIR/dovecot
# (own base_dir, state and log; nothing from /etc/dovecot): passwd-file users given as
# `login:password`, IMAP on 127.0.0.1:IMAP_PORT, the SASL socket $DV/run/auth-postfix for
# Postfix (smtpd_sasl_type = dovecot), Dovecot's anvil auth penalty off (it would delay every
# login from 127.0.0.1 after one failure). Extra dovecot.conf lines: $DV_EXTRA.
# dv_start starts it; the EXIT trap of lib.sh stops it (doveadm stop) before anything else.
DV_STARTED=0
dv_setup() {
  local imap_port=$1 u; shift
  DV=$IT_DIR/dovecot
  DV_CONF=$DV/dovecot.conf
  DV_IMAP_PORT=$imap_port
  DV_SASL=$DV/run/auth-postfix
  mkdir -p "$DV/mail" "$DV/state"
  chown 65534:65534 "$DV/mail"
  : >"$DV/users"
  for u in "$@"; do echo "${u%%:*}:{PLAIN}${u#*:}" >>"$DV/users"; done
  chmod 644 "$DV/users"
  cat >"$DV_CONF" <<EOC
# throw-away instance written by scripts/it/lib.sh; nothing from /etc/dovecot
instance_name = mxit-dovecot-$IT_BASE_PORT
base_dir = $DV/run
state_dir = $DV/state
log_path = $DV/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
mail_location = maildir:$DV/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN $DV/users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$DV/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
${DV_EXTRA:-}
EOC
}
dv_start() {
  dovecot -c "$DV_CONF" || die "dovecot failed to start: $(tail -n 5 "$DV/dovecot.log" 2>/dev/null)"
  DV_STARTED=1
  it_wait_port "$DV_IMAP_PORT" 15 || die "dovecot imap not listening on $DV_IMAP_PORT"
  it_wait_for 10 test -S "$DV_SASL" || die "dovecot auth socket $DV_SASL missing"
}
dv_stop() {
  [ "$DV_STARTED" = 1 ] || return 0
  doveadm -c "$DV_CONF" stop >/dev/null 2>&1
  it_wait_for 10 dv_gone || echo "warn: dovecot (config $DV_CONF) still running"
  DV_STARTED=0
}
dv_gone() {
  local pid
  [ -f "$DV/run/master.pid" ] || return 0
  pid=$(tr -d ' \n' <"$DV/run/master.pid")
  ! kill -0 "$pid" 2>/dev/null
}
# The main.cf lines for SMTP AUTH through that Dovecot (no TLS: loopback test only).
dv_postfix_sasl() {
  printf '%s\n' "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = dovecot" \
    "smtpd_sasl_path = $DV_SASL" "smtpd_sasl_security_options = noanonymous" \
    "smtpd_tls_security_level = none"
}

# imap_login SRC USER PASS: one IMAP LOGIN to the Dovecot of dv_setup from source address
# SRC (any 127.0.0.x). Prints "ok SECS" or "no SECS MESSAGE".
imap_login() {
  python3 - "$DV_IMAP_PORT" "$@" <<'PY'
import imaplib, socket, sys, time
port, src, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Client(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return socket.create_connection(("127.0.0.1", port), timeout, source_address=(src, 0))
t0 = time.monotonic()
try:
    c = Client("127.0.0.1", port, timeout=30)
    c.login(user, pw)
    c.logout()
    print(f"ok {time.monotonic() - t0:.2f}")
except (imaplib.IMAP4.error, OSError) as e:
    print(f"no {time.monotonic() - t0:.2f} {e}")
PY
}
# imap_ok SRC USER PASS: that login succeeds. imap_no SRC USER PASS [REGEX]: it is refused
# (with a message matching REGEX). Both leave imap_login's output in $LAST.
imap_ok() {
  LAST=$(imap_login "$@")
  [[ $LAST == ok* ]] && return 0
  CHECK_DETAIL="IMAP login $2 from $1 refused: $LAST"; return 1
}
imap_no() {
  LAST=$(imap_login "$1" "$2" "$3")
  if [[ $LAST == no* ]] && { [ -z "${4:-}" ] || [[ $LAST =~ $4 ]]; }; then return 0; fi
  CHECK_DETAIL="IMAP login $2 from $1: $LAST (expected a refusal${4:+ matching /$4/})"; return 1
}
