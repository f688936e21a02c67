#!/usr/bin/env bash
# Log jails benchmark (issue 5), side by side with the fail2ban daemon on the same input.
#
# A generated mail log (default 1,000,000 lines over the last 50 minutes, scripts/bench/
# gen_maillog.py) is processed from its head by
#   - mxguard serve, and
#   - fail2ban-server (Debian's fail2ban package, no firewall actions),
# each with the postfix, postfix-sasl (postfix[mode=auth]), dovecot and recidive jails and the
# same settings: maxretry 5, findtime 1d, bantime 1d (so no line ages out of the window while
# the slower tool is still reading: the ban sets depend on the log only), recidive maxretry 3
# (an address banned by all three jails is a repeat offender; recidive reads fail2ban's own
# log, mxguard feeds it its ban events). Filters come from FILTER_DIR (default the corpus copy
# of fail2ban 1.0.2's config), read by both.
#
# End of processing: the log ends with five failures of one sentinel address per jail; a tool
# is done when all three sentinels are banned (polled every 50 ms). The wall time runs from
# starting the daemon to that moment. Then both ban sets (`JAIL ADDRESS`, sorted: fail2ban's
# per-jail ban lists, mxguard's per-jail ban events from its log) are compared;
# the script exits 1 if they differ.
#
# With --nft: 100,000 bans are restored into a fresh nftables set inside a network namespace
# created here, through the daemon's start-up restore path (store -> one `nft -f` batch),
# and the daemon's RSS with 100,000 active bans is reported.
#
# Usage: scripts/bench/jails.sh [--lines N] [--no-fail2ban] [--nft]
# (KEEP=1 keeps the temp directory with the logs, configs and ban lists.)
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=1000000; nft=0; f2b=1
while [ $# -gt 0 ]; do
  case $1 in
    --lines) lines=$2; shift 2 ;;
    --nft) nft=1; shift ;;
    --no-fail2ban) f2b=0; shift ;;
    *) echo "usage: $0 [--lines N] [--no-fail2ban] [--nft]" >&2; exit 2 ;;
  esac
done
BIN=${MXGUARD_BIN:-$PWD/target/release/mxguard}
[ -x "$BIN" ] || cargo build --release --locked -p mxguard
FILTER_DIR=${FILTER_DIR:-$(cd ../shared/corpus/fail2ban/config && pwd)}
OUT=$(mktemp -d /tmp/mxjbench.XXXXXX)
PID=; F2B=0; NS=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  [ "$F2B" = 1 ] && fail2ban-client -c "$OUT/f2b" stop >/dev/null 2>&1
  [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
  rm -rf "$OUT"
}
[ -n "${KEEP:-}" ] || trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }
peak_rss_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# --- the log, with the sentinels at its end ------------------------------------------------
python3 scripts/bench/gen_maillog.py --lines "$lines" --end-now 3000 --out "$OUT/mail.log"
stamp=$(tail -n 1 "$OUT/mail.log" | cut -c1-15)
for i in 1 2 3 4 5; do
  echo "$stamp mail postfix/smtpd[100$i]: NOQUEUE: reject: RCPT from unknown[198.51.100.1]: 554 5.7.1 <u@relay.invalid>: Relay access denied; from=<s@example.org> to=<u@relay.invalid> proto=ESMTP helo=<x>"
  echo "$stamp mail postfix/smtpd[100$i]: warning: unknown[198.51.100.2]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
  echo "$stamp mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u>, method=PLAIN, rip=198.51.100.3, lip=192.0.2.25, TLS, session=<sentinel$i>"
done >>"$OUT/mail.log"
total=$(wc -l <"$OUT/mail.log")
SENTINELS="postfix 198.51.100.1
postfix-sasl 198.51.100.2
dovecot 198.51.100.3"
has_sentinels() { # FILE: the ban list holds every sentinel
  [ "$(grep -cxF "$SENTINELS" "$1" || true)" -eq 3 ]
}

# The log jails of both tools (NAME FILTER); recidive is added to each separately.
JAILS="postfix postfix
postfix-sasl postfix[mode=auth]
dovecot dovecot"

# --- mxguard --------------------------------------------------------------------------------
{
  printf '[policy]\nlisten = ["inet:127.0.0.1:0"]\n[store]\ntype = "memory"\n'
  printf '[control]\nsocket = "%s/ctl.sock"\n[bans]\npoll_interval = "50ms"\n' "$OUT"
  while read -r name filter; do
    printf '[[jail]]\nname = "%s"\nfilter = "%s"\nfilter_dir = "%s"\nlogpath = ["%s"]\n' \
      "$name" "$filter" "$FILTER_DIR" "$OUT/mail.log"
    printf 'findtime = "1d"\nbantime = "1d"\nignoreip = ["127.0.0.0/8", "::1"]\n'
  done <<<"$JAILS"
  printf '[[jail]]\nname = "recidive"\nmaxretry = 3\nfindtime = "1d"\nbantime = "1w"\n'
} >"$OUT/mxguard.toml"
# mxguard's ban events per jail, from its log (`ban jail="J" net=N ...`), as `JAIL ADDRESS`.
# Not `mxguard bans`: that lists one record per network (the last jail that banned it), while
# fail2ban keeps a ban per jail and address; the events are the per-jail decisions.
mx_bans() {
  sed -nE 's#.*mxguard::jails::bans: ban jail="([^"]+)" net=([^ /]+)/(32|128) .*#\1 \2#p' \
    "$OUT/mxguard.log" | sort -u >"$1"
}
start=$(now)
"$BIN" serve --config "$OUT/mxguard.toml" 2>"$OUT/mxguard.log" &
PID=$!
n=0
until mx_bans "$OUT/mx.poll" && has_sentinels "$OUT/mx.poll"; do
  n=$((n + 1)); [ $((n % 100)) = 0 ] && echo "mxguard: still waiting for the sentinel bans" >&2
  kill -0 "$PID" || { cat "$OUT/mxguard.log" >&2; exit 1; }
  sleep 0.05
done
mx_wall=$(elapsed "$start" "$(now)")
mx_rss=$(peak_rss_mb "$PID")
sleep 1 # recidive and the last decisions settle
mx_bans "$OUT/mxguard.bans"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

# --- fail2ban -------------------------------------------------------------------------------
if [ "$f2b" = 1 ]; then
  command -v fail2ban-server >/dev/null || { echo "fail2ban is not installed" >&2; exit 1; }
  C=$OUT/f2b
  mkdir -p "$C"
  cp -r "$FILTER_DIR/filter.d" "$FILTER_DIR/paths-common.conf" "$FILTER_DIR/paths-debian.conf" "$C/"
  mkdir -p "$C/action.d" "$C/jail.d" "$C/fail2ban.d"
  : >"$OUT/fail2ban.log"
  cat >"$C/fail2ban.conf" <<CONF
[Definition]
loglevel = INFO
logtarget = $OUT/fail2ban.log
syslogsocket = auto
socket = $OUT/f2b.sock
pidfile = $OUT/f2b.pid
dbfile = $OUT/f2b.sqlite3
dbpurgeage = 1d
allowipv6 = auto
CONF
  {
    printf '[INCLUDES]\nbefore = paths-debian.conf\n[DEFAULT]\nmaxretry = 5\nfindtime = 1d\n'
    # ignoreip: jail.conf only suggests it (commented out); both tools get it explicitly
    # (it is mxguard's default), as the generated log has random 127.x.y.z clients.
    printf 'bantime = 1d\nbackend = polling\naction =\nignoreip = 127.0.0.1/8 ::1\n'
    while read -r name filter; do
      printf '[%s]\nenabled = true\nfilter = %s\nlogpath = %s\n' "$name" "$filter" "$OUT/mail.log"
    done <<<"$JAILS"
  } >"$C/jail.conf"
  cat >>"$C/jail.conf" <<CONF
[recidive]
enabled = true
filter = recidive
logpath = $OUT/fail2ban.log
maxretry = 3
bantime = 1w
CONF
  # The ban lists through fail2ban's own client library (one process, no 0.1 s start-up per
  # poll): `JAIL ADDRESS` lines, sorted.
  f2b_bans() {
    /usr/bin/python3 - "$OUT/f2b.sock" $(cut -d' ' -f1 <<<"$JAILS") recidive >"$1" 2>/dev/null <<'PY' || true
import sys
from fail2ban.client.csocket import CSocket
rows = []
for jail in sys.argv[2:]:
    s = CSocket(sys.argv[1])
    ok, ips = s.send(["get", jail, "banip"])
    s.close()
    rows += ["%s %s" % (jail, ip) for ip in ips]
print("\n".join(sorted(rows)))
PY
  }
  start=$(now)
  F2B=1
  fail2ban-client -c "$C" -x start >"$OUT/f2b.start" 2>&1
  f2b_pid=$(cat "$OUT/f2b.pid")
  until f2b_bans "$OUT/f2b.poll" && has_sentinels "$OUT/f2b.poll"; do
    kill -0 "$f2b_pid" || { tail -20 "$OUT/fail2ban.log" >&2; exit 1; }
    sleep 0.05
  done
  f2b_wall=$(elapsed "$start" "$(now)")
  f2b_rss=$(peak_rss_mb "$f2b_pid")
  sleep 3 # recidive polls fail2ban's log once a second
  f2b_bans "$OUT/fail2ban.bans"
  fail2ban-client -c "$C" stop >/dev/null 2>&1 || true; F2B=0
fi

# --- report ---------------------------------------------------------------------------------
row() { # TOOL WALL RSS BANFILE
  awk -v t="$1" -v l="$total" -v w="$2" -v r="$3" -v b="$(wc -l <"$4")" \
    'BEGIN { printf "| %s | %d | %.2f | %.0f | %d | %s |\n", t, l, w, l / w, b, r }'
}
echo
echo "| tool | lines | wall s | lines/s | bans | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
row mxguard "$mx_wall" "$mx_rss" "$OUT/mxguard.bans"
by_jail() { cut -d' ' -f1 "$1" | sort | uniq -c | awk '{ printf "%s %s, ", $2, $1 }' | sed 's/, $//'; }
status=0
if [ "$f2b" = 1 ]; then
  row "fail2ban $(dpkg-query -W -f '${Version}' fail2ban 2>/dev/null)" "$f2b_wall" "$f2b_rss" "$OUT/fail2ban.bans"
  echo
  awk -v a="$mx_wall" -v b="$f2b_wall" 'BEGIN { printf "speed-up (fail2ban wall / mxguard wall): %.1fx\n", b / a }'
  echo "mxguard bans by jail:  $(by_jail "$OUT/mxguard.bans")"
  echo "fail2ban bans by jail: $(by_jail "$OUT/fail2ban.bans")"
  if cmp -s "$OUT/mxguard.bans" "$OUT/fail2ban.bans"; then
    echo "ban sets: identical ($(wc -l <"$OUT/mxguard.bans") jail/address pairs)"
  else
    echo "ban sets: DIFFERENT (< mxguard only, > fail2ban only):"
    diff "$OUT/mxguard.bans" "$OUT/fail2ban.bans" | grep '^[<>]' | head -40
    status=1
  fi
else
  echo "mxguard bans by jail: $(by_jail "$OUT/mxguard.bans")"
fi

# --- 100,000 bans restored into nftables ---------------------------------------------------
if [ "$nft" = 1 ]; then
  NS=mxjb-$$
  ip netns add "$NS"
  base() {
    printf '[policy]\nlisten = ["inet:127.0.0.1:0"]\n[store]\npath = "%s/state"\n' "$OUT"
    printf '[control]\nsocket = "%s/ctl2.sock"\n' "$OUT"
  }
  base >"$OUT/fill.toml"
  { base; printf '[[action]]\nname = "nftables"\ntype = "nftables"\n'
    printf 'command = ["ip", "netns", "exec", "%s", "nft"]\n' "$NS"; } >"$OUT/nft.toml"
  # Fill the store without actions (one control connection, 100,000 `ban` requests), then
  # start again with the nftables action: the restore is one batch.
  "$BIN" serve --config "$OUT/fill.toml" 2>"$OUT/fill.log" &
  PID=$!
  until [ -S "$OUT/ctl2.sock" ]; do sleep 0.05; done
  python3 - "$OUT/ctl2.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
n = 0
for a in range(16, 224):
    for b in range(0, 256):
        for c in range(1, 3):
            if n == 100000: break
            f.write(json.dumps({"op": "ban", "target": "%d.%d.%d.%d" % (a, b, c, 7), "jail": "bench",
                                "seconds": 3600, "reason": "bench"}) + "\n"); f.flush()
            reply = json.loads(f.readline())
            assert reply.get("ok"), reply
            n += 1
print("stored", n, "bans")
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  rm -f "$OUT/ctl2.sock"
  t0=$(now)
  "$BIN" serve --config "$OUT/nft.toml" 2>"$OUT/nft.log" &
  PID=$!
  until grep -q "restored active bans" "$OUT/nft.log"; do
    kill -0 "$PID" || { cat "$OUT/nft.log" >&2; exit 1; }
    sleep 0.02
  done
  t1=$(now)
  n=$(ip netns exec "$NS" nft list set inet mxguard ban4 | grep -o 'expires' | wc -l)
  sleep 1
  rss=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$PID/status")
  echo
  echo "| restore | bans | elements in set | wall s (daemon start to restored) | RSS MB with the bans active |"
  echo "|---|---:|---:|---:|---:|"
  echo "| nftables, one nft -f batch | 100000 | $n | $(elapsed "$t0" "$t1") | $rss |"
fi
exit $status
