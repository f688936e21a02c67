#!/usr/bin/env bash
# Log jails benchmark (issue 5): mxguard's daemon processes a generated mail log (default
# 1,000,000 lines spread over the last 50 minutes) with the postfix, postfix-sasl
# (postfix[mode=auth]), dovecot and recidive jails, from the log's head; prints wall time,
# lines/s and the ban set (`JAIL NET` per line, sorted, in $OUT/mxguard.bans). Filters come from
# FILTER_DIR (default the corpus copy of fail2ban 1.0.2's config).
#
# Also: with --nft, 100,000 bans are restored into a fresh nftables set inside a network
# namespace created here (the daemon's start-up restore path: store -> one `nft -f` batch).
#
# The fail2ban side by side run is NOT automated yet (docs/benchmarks.md says so).
# Usage: scripts/bench/jails.sh [--lines N] [--nft]
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=1000000; nft=0
while [ $# -gt 0 ]; do
  case $1 in
    --lines) lines=$2; shift 2 ;;
    --nft) nft=1; shift ;;
    *) echo "usage: $0 [--lines N] [--nft]" >&2; exit 2 ;;
  esac
done
BIN=${MXGUARD_BIN:-$PWD/target/release/mxguard}
[ -x "$BIN" ] || cargo build --release --locked -p mxguard
FILTER_DIR=${FILTER_DIR:-$(cd ../shared/corpus/fail2ban/config && pwd)}
OUT=$(mktemp -d /tmp/mxjbench.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "${NS:-}" ] && ip netns del "$NS" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT

python3 scripts/bench/gen_maillog.py --lines "$lines" --end-now 3000 --out "$OUT/mail.log"
jail() { # jail NAME FILTER
  printf '[[jail]]\nname = "%s"\nfilter = "%s"\nfilter_dir = "%s"\nlogpath = ["%s"]\n' \
    "$1" "$2" "$FILTER_DIR" "$OUT/mail.log"
}
{
  printf '[policy]\nlisten = ["inet:127.0.0.1:0"]\n[store]\ntype = "memory"\n'
  printf '[control]\nsocket = "%s/ctl.sock"\n[bans]\npoll_interval = "50ms"\n' "$OUT"
  jail postfix "postfix"
  jail postfix-sasl "postfix[mode=auth]"
  jail dovecot "dovecot"
  printf '[[jail]]\nname = "recidive"\n'
} >"$OUT/mxguard.toml"

start=$(date +%s.%N)
"$BIN" serve --config "$OUT/mxguard.toml" 2>"$OUT/mxguard.log" &
PID=$!
read_lines() { "$BIN" status --config "$OUT/mxguard.toml" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["log_lines_read"])' 2>/dev/null || echo 0; }
until [ "$(read_lines)" -ge "$lines" ]; do sleep 0.05; done
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
"$BIN" bans --config "$OUT/mxguard.toml" --json | python3 -c '
import json, sys
for b in json.load(sys.stdin)["bans"]: print(b["jail"], b["net"])' | sort >"$OUT/mxguard.bans"
wall=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
echo
echo "| tool | lines | wall s | lines/s | bans | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
awk -v l="$lines" -v w="$wall" -v b="$(wc -l <"$OUT/mxguard.bans")" -v r="$rss" \
  'BEGIN { printf "| mxguard | %d | %.2f | %.0f | %d | %.0f |\n", l, w, l / w, b, r / 1024 }'
echo "bans by jail: $(cut -d' ' -f1 "$OUT/mxguard.bans" | sort | uniq -c | tr '\n' ' ')"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

if [ "$nft" = 1 ]; then
  NS=mxjb-$$
  ip netns add "$NS"
  # 100,000 distinct addresses with timeouts, through the daemon's restore path: the
  # embedded store is filled by `mxguard ban` over one control connection per 1,000.
  cat >"$OUT/nft.toml" <<CONF
[policy]
listen = ["inet:127.0.0.1:0"]
[store]
path = "$OUT/state"
[control]
socket = "$OUT/ctl2.sock"
[[action]]
name = "nftables"
type = "nftables"
command = ["ip", "netns", "exec", "$NS", "nft"]
CONF
  "$BIN" serve --config "$OUT/nft.toml" 2>"$OUT/nft1.log" &
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
                                "seconds": 3600, "reason": "bench"}) + "\n"); f.flush(); f.readline()
            n += 1
print("stored", n, "bans")
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  ip netns exec "$NS" nft flush ruleset
  "$BIN" serve --config "$OUT/nft.toml" 2>"$OUT/nft2.log" &
  PID=$!
  t0=$(date +%s.%N)
  until grep -q "restored active bans" "$OUT/nft2.log"; do sleep 0.02; done
  t1=$(date +%s.%N)
  n=$(ip netns exec "$NS" nft list set inet mxguard ban4 | grep -o timeout | wc -l)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  echo
  echo "| restore | bans | in set | wall s (daemon start to restored) | RSS MB |"
  echo "|---|---:|---:|---:|---:|"
  awk -v a="$t0" -v b="$t1" -v n="$n" -v r="$rss" 'BEGIN { printf "| nftables, 1 batch | 100000 | %d | %.2f | %.0f |\n", n, b - a, r / 1024 }'
fi
