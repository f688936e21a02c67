#!/usr/bin/env bash
# The Debian package end to end (issue 11 item 3): builds the .deb (scripts/package.sh, on the
# release binary), checks the unit with `systemd-analyze verify`, installs it with dpkg -i,
# checks what it put in place (binary, conffile, mxguard user and /var/lib/mxguard, man pages,
# completions, docs), runs the unit's ExecStartPre and ExecStart command lines as the mxguard
# user with NOTIFY_SOCKET on a datagram socket this test reads (READY=1, WATCHDOG=1, the
# policy port answers), checks the generator's CAP_NET_ADMIN drop-in, then dpkg -r (state
# kept) and dpkg --purge (conffile, state and user gone). systemd is not PID 1 here: nothing
# is started through systemctl, and the maintainer scripts start nothing either. The package is
# purged at exit, also on failure. Refuses to run when an mxguard package is already installed.
source "$(dirname "$0")/lib.sh"
it_init dpkg systemd-analyze setpriv
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=/lib/systemd/system/mxguard.service

case "$(dpkg-query -W -f='${Status}' mxguard 2>/dev/null)" in
  "" | *not-installed) ;;
  *) die "an mxguard package is (partly) installed here; this suite would replace it" ;;
esac
INSTALLED=0
deb_cleanup() {
  local rc=$? pid
  set +e
  for pid in "${IT_PIDS[@]}"; do it_stop_pid "$pid"; done
  IT_PIDS=()
  if [ "$INSTALLED" = 1 ]; then dpkg --purge mxguard >/dev/null 2>&1; fi
  (exit $rc)
  it_cleanup
}
trap deb_cleanup EXIT

# --------------------------------------------------------------------- build
DEB=$(bash "$ROOT/scripts/package.sh" 2>"$IT_DIR/package.log" | tail -n 1)
if [ -f "$DEB" ]; then pass "deb-builds"; else fail "deb-builds" "$(tail -n 5 "$IT_DIR/package.log" | tr '\n' '|')"; exit 1; fi
info "package $DEB ($(du -h "$DEB" | cut -f1))"
contents() { dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's#^\./#/#'; }
contents >"$IT_DIR/contents"
has_file() { grep -qx "$1" "$IT_DIR/contents" || { CHECK_DETAIL="$1 not in the .deb"; return 1; }; }
check "deb-has-unit" has_file "$UNIT"
check "deb-has-generator" has_file /lib/systemd/system-generators/mxguard-generator

# --------------------------------------------------------------------- install
dpkg -i "$DEB" >"$IT_DIR/dpkg-i.log" 2>&1 && INSTALLED=1
check "dpkg-i" test "$INSTALLED" = 1
[ "$INSTALLED" = 1 ] || { cat "$IT_DIR/dpkg-i.log"; exit 1; }

verify_unit() {
  local out
  out=$(systemd-analyze verify --man=no "$UNIT" 2>&1) || { CHECK_DETAIL="$out"; return 1; }
  # verify prints problems as warnings without failing for some of them: none may mention us.
  if grep -qi "mxguard" <<<"$out"; then CHECK_DETAIL="$out"; return 1; fi
  return 0
}
check "systemd-analyze-verify" verify_unit
check "version-from-usr-bin" bash -c "/usr/bin/mxguard --version | grep -q '^mxguard [0-9]'"
conffile_listed() { dpkg-query -W -f='${Conffiles}' mxguard | grep -q ' /etc/mxguard/mxguard.toml '; }
check "conffile-listed" conffile_listed
check "conffile-present" test -f /etc/mxguard/mxguard.toml
check "conffile-valid" /usr/bin/mxguard check-config --config /etc/mxguard/mxguard.toml
check "user-exists" bash -c "getent passwd mxguard | grep -q ':/var/lib/mxguard:'"
check "state-dir-owned" test "$(stat -c %U:%G /var/lib/mxguard)" = mxguard:mxguard
check "man-page" test -s /usr/share/man/man1/mxguard.1.gz
check "man-page-subcommand" bash -c "zcat /usr/share/man/man1/mxguard-serve.1.gz | grep -q '^.TH'"
check "completion-bash" grep -q mxguard /usr/share/bash-completion/completions/mxguard
check "completion-zsh" grep -q '#compdef mxguard' /usr/share/zsh/vendor-completions/_mxguard
check "completion-fish" grep -q 'complete -c mxguard' /usr/share/fish/vendor_completions.d/mxguard.fish
check "enabled-on-install" test -L /etc/systemd/system/multi-user.target.wants/mxguard.service
check "docs" test -f /usr/share/doc/mxguard/docs/install.md -a -f /usr/share/doc/mxguard/examples/mxguard.toml

# --------------------------------------------------------------------- run the unit's commands
PRE=$(sed -n 's/^ExecStartPre=//p' "$UNIT")
START=$(sed -n 's/^ExecStart=//p' "$UNIT")
check "unit-runs-check-config-first" test "$PRE" = "/usr/bin/mxguard check-config --config /etc/mxguard/mxguard.toml"
POLICY=10040
if (exec 3<>/dev/tcp/127.0.0.1/$POLICY) 2>/dev/null; then
  # Something else has the packaged port: move the (purged anyway) conffile to a free one.
  POLICY=$(it_port 1)
  sed -i "s/127.0.0.1:10040/127.0.0.1:$POLICY/" /etc/mxguard/mxguard.toml
  info "10040 is busy here; the installed config uses $POLICY"
fi
# What RuntimeDirectory=mxguard would make.
install -d -o mxguard -g mxguard -m 0755 /run/mxguard
NOTIFY=$IT_DIR/notify.sock
NOTES=$IT_DIR/notify.log
: >"$NOTES"
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
with open(sys.argv[2], "a") as out:
    while True:
        m = s.recv(4096).decode(errors="replace")
        out.write(m.replace("\n", "|") + "\n"); out.flush()
' "$NOTIFY" "$NOTES" &
it_track_pid $!
it_wait_for 5 test -S "$NOTIFY" || die "notify socket not created"
as_mxguard() { setpriv --reuid=mxguard --regid=mxguard --init-groups --inh-caps=-all "$@"; }
# shellcheck disable=SC2086 # the unit's command lines are split on spaces, as systemd does
check "execstartpre-as-mxguard" as_mxguard $PRE
# shellcheck disable=SC2086
# setpriv directly (not the function): $! is then the daemon itself (setpriv and env exec it).
setpriv --reuid=mxguard --regid=mxguard --init-groups --inh-caps=-all \
  env NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=2000000 $START >"$IT_DIR/mxguard.serve.log" 2>&1 &
SERVE_PID=$!
it_track_pid "$SERVE_PID"
got_note() { grep -q "$1" "$NOTES" || { CHECK_DETAIL="no $1 in: $(tr '\n' ' ' <"$NOTES") log: $(tail -n 3 "$IT_DIR/mxguard.serve.log" | tr '\n' '|')"; return 1; }; }
check "notify-ready" it_wait_for 20 got_note '^READY=1'
check "policy-port-answers" bash -c "python3 '$ROOT/scripts/it/policy_client.py' ask $POLICY client_address=192.0.2.1 sender=a@example.org recipient=b@example.test | grep -q '^action='"
check "notify-watchdog" it_wait_for 5 got_note '^WATCHDOG=1'
check "runs-as-mxguard" test "$(ps -o user= -p "$SERVE_PID" | tr -d ' ')" = mxguard
check "store-in-state-dir" bash -c "ls /var/lib/mxguard | grep -q ."
kill -HUP "$SERVE_PID"
readies() { [ "$(grep -c '^READY=1' "$NOTES")" -ge 2 ]; }
check "notify-reload" it_wait_for 10 got_note '^RELOADING=1'
check "notify-ready-after-reload" it_wait_for 10 readies
it_stop_pid "$SERVE_PID" TERM
check "notify-stopping" got_note '^STOPPING=1'
check "stopped-by-pid" bash -c "! kill -0 $SERVE_PID 2>/dev/null"

# --------------------------------------------------------------------- generator
GEN=/lib/systemd/system-generators/mxguard-generator
mkdir -p "$IT_DIR/gen-plain" "$IT_DIR/gen-nft"
MXGUARD_GENERATOR_CONFIG=/etc/mxguard/mxguard.toml "$GEN" "$IT_DIR/gen-plain" "$IT_DIR/gen-plain" "$IT_DIR/gen-plain"
check "generator-no-dropin-without-firewall" test ! -e "$IT_DIR/gen-plain/mxguard.service.d/50-firewall.conf"
cp /etc/mxguard/mxguard.toml "$IT_DIR/nft.toml"
printf '\n[[action]]\nname = "nftables"\ntype = "nftables"\n' >>"$IT_DIR/nft.toml"
MXGUARD_GENERATOR_CONFIG=$IT_DIR/nft.toml "$GEN" "$IT_DIR/gen-nft" "$IT_DIR/gen-nft" "$IT_DIR/gen-nft"
check "generator-dropin-for-nftables" grep -qx 'CapabilityBoundingSet=CAP_NET_ADMIN' "$IT_DIR/gen-nft/mxguard.service.d/50-firewall.conf"
check "generator-dropin-ambient" grep -qx 'AmbientCapabilities=CAP_NET_ADMIN' "$IT_DIR/gen-nft/mxguard.service.d/50-firewall.conf"

# --------------------------------------------------------------------- remove, purge
dpkg -r mxguard >"$IT_DIR/dpkg-r.log" 2>&1
check "dpkg-r" test ! -e /usr/bin/mxguard
check "remove-keeps-state" test -d /var/lib/mxguard
check "remove-keeps-conffile" test -f /etc/mxguard/mxguard.toml
dpkg --purge mxguard >"$IT_DIR/dpkg-purge.log" 2>&1 && INSTALLED=0
check "purge-removes-conffile" test ! -e /etc/mxguard
check "purge-removes-state" test ! -e /var/lib/mxguard
check "purge-removes-user" bash -c "! getent passwd mxguard >/dev/null && ! getent group mxguard >/dev/null"
unit_state() { find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked -name '*mxguard*' 2>/dev/null; }
check "purge-removes-unit-links" test -z "$(unit_state)"
check "purge-leaves-no-package" bash -c "! dpkg-query -W -f='\${Status}' mxguard 2>/dev/null | grep -qE 'ok (installed|config-files)'"

it_finish
