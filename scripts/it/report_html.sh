#!/usr/bin/env bash
# mxguard report --format html in a real browser: renders the report of the committed
# generated log (crates/mxguard/tests/report/fixture.log, every category) and loads it in
# headless Chromium (Debian's chromium, from scripts/install-deps.sh):
#   * no console errors or uncaught exceptions while loading (--enable-logging=stderr);
#   * the DOM after load (--dump-dom) has the charts, each with as many point elements as its
#     data-points attribute says, and the figures of the JSON report;
#   * a screenshot is written and is not blank (many distinct colours);
#   * the file references nothing outside itself (no http(s), no src=).
# Chromium runs with its own throw-away profile, no network services, no sandbox (root).
set -uo pipefail
cd "$(dirname "$0")/../.."
IT_NAME=report_html
# shellcheck source=lib.sh
. scripts/it/lib.sh

: "${MXGUARD_BIN:=$(pwd)/target/release/mxguard}"
[ -x "$MXGUARD_BIN" ] || die "no mxguard binary at $MXGUARD_BIN"
command -v chromium >/dev/null 2>&1 || die "missing chromium (scripts/install-deps.sh installs it)"
command -v python3 >/dev/null 2>&1 || die "missing python3"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mxreport.XXXXXX") || die "mktemp failed"
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

FIXTURE=crates/mxguard/tests/report/fixture.log
HTML=$WORK/report.html
report() { "$MXGUARD_BIN" report --now 2026-12-07T06:00:00Z --timezone UTC "$@" "$FIXTURE"; }
check render report --format html --output "$HTML"
report --format json >"$WORK/report.json" || fail json "report --format json failed"

chrome() {
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d "$WORK/profile.XXXXXX")" "$@"
}

check no-external-refs bash -c "! grep -Eiq 'https?:|src=|@import|url\\(' '$HTML'"
check one-file bash -c "[ \$(grep -c '<link' '$HTML') = 0 ]"

# Load with console logging: any console error or uncaught exception fails.
chrome --enable-logging=stderr --v=1 --virtual-time-budget=2000 --dump-dom "file://$HTML" \
  >"$WORK/dom.html" 2>"$WORK/console.log"
check dom-dumped test -s "$WORK/dom.html"
if grep -E 'CONSOLE|Uncaught' "$WORK/console.log" | grep -Eiq 'error|uncaught'; then
  fail no-console-errors "$(grep -E 'CONSOLE|Uncaught' "$WORK/console.log" | head -5)"
else
  pass no-console-errors
fi

# The DOM: every chart's point count matches data-points, the named charts exist, and the
# figures agree with the JSON report.
# relay: turns the PASS/FAIL lines of a python check into this suite's counts.
relay() {
  local l r
  while IFS= read -r l; do
    case $l in
      "PASS "*) pass "${l#PASS }" ;;
      "FAIL "*) r=${l#FAIL }; fail "${r%%:*}" "${r#*: }" ;;
      *) echo "$l" ;;
    esac
  done
}
cat >"$WORK/dom_check.py" <<'PY'
import json, re, sys
from html.parser import HTMLParser
dom, rep = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
class P(HTMLParser):
    def __init__(s):
        super().__init__(); s.charts = []; s.cur = None; s.cards = {}; s.card = None
    def handle_starttag(s, tag, a):
        a = dict(a)
        if tag == "svg" and "chart" in (a.get("class") or ""):
            s.cur = {"series": a.get("data-series"), "points": int(a.get("data-points", -1)), "seen": [], }
            s.charts.append(s.cur)
        elif s.cur is not None and "point" in (a.get("class") or "").split():
            s.cur["seen"].append(int(a.get("data-value", -1)))
        if tag == "div" and a.get("class") == "card":
            s.card = a.get("data-key")
    def handle_endtag(s, tag):
        if tag == "svg": s.cur = None
    def handle_data(s, d):
        if s.card and d.strip().isdigit():
            s.cards[s.card] = int(d); s.card = None
p = P(); p.feed(dom)
def ok(name, cond, detail=""):
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail))
by = {c["series"]: c for c in p.charts}
ok("charts-present", all(k in by for k in ["rejects", "auth_failures", "bans", "rejects_by_reason", "top_rejected_clients", "auth_ips", "bans_by_jail"]), str(sorted(by)))
ok("points-match-data-points", all(len(c["seen"]) == c["points"] for c in p.charts), str([(c["series"], c["points"], len(c["seen"])) for c in p.charts]))
se = rep["series"]
ok("series-points", by["rejects"]["points"] == se["points"] > 1, "%s vs %s" % (by["rejects"]["points"], se["points"]))
ok("series-values", by["rejects"]["seen"] == se["rejects"] and by["bans"]["seen"] == se["bans"], "values differ")
ok("reason-bars", [v for v in by["rejects_by_reason"]["seen"]] == [c["count"] for c in rep["rejects_by_reason"]], "")
ok("cards", p.cards.get("rejected") == rep["messages"]["rejected"] and p.cards.get("bans") == rep["bans"]["total"], str(p.cards))
ok("escaped-login", "<script>x</script>" not in dom.split("<script>")[0] and "&lt;script&gt;x&lt;/script&gt;" in dom, "")
PY
relay < <(python3 "$WORK/dom_check.py" "$WORK/dom.html" "$WORK/report.json" 2>&1)

# Screenshot: a PNG exists and has many distinct colours (charts drawn, not a blank page).
chrome --screenshot="$WORK/shot.png" --window-size=1000,2400 --virtual-time-budget=2000 "file://$HTML" \
  >/dev/null 2>&1
check screenshot-written test -s "$WORK/shot.png"
cat >"$WORK/png_check.py" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
ok = data[:8] == b"\x89PNG\r\n\x1a\n"
w = h = 0; idat = b""; i = 8; ctype = bitdepth = 0
while ok and i < len(data):
    n, t = struct.unpack(">I4s", data[i:i + 8]); body = data[i + 8:i + 8 + n]
    if t == b"IHDR": w, h, bitdepth, ctype = struct.unpack(">IIBB", body[:10])
    elif t == b"IDAT": idat += body
    i += 12 + n
raw = zlib.decompress(idat) if ok else b""
bpp = {2: 3, 6: 4}.get(ctype, 0)
colours = set(); reds = 0
stride = w * bpp + 1
prev = bytearray(stride - 1)
for y in range(h if bpp else 0):
    line = bytearray(raw[y * stride + 1:(y + 1) * stride]); f = raw[y * stride]
    for x in range(len(line)):
        a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 4 == 0:
        for x in range(0, w, 4):
            px = tuple(line[x * bpp:x * bpp + 3]); colours.add(px)
            if px[0] > 150 and px[1] < 90 and px[2] < 90: reds += 1
good = ok and w >= 800 and len(colours) >= 20 and reds > 50
print(("PASS" if good else "FAIL") + " screenshot-not-blank" + ("" if good else ": %dx%d, %d colours, %d red pixels" % (w, h, len(colours), reds)))
PY
relay < <(python3 "$WORK/png_check.py" "$WORK/shot.png" 2>&1)
it_finish
