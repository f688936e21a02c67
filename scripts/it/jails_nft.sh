#!/usr/bin/env bash
# Log jails end to end with real nftables inside network namespaces this suite creates
# (issue 5): mxguard (in the host namespace, on loopback) follows a mail log, bans an address
# after maxretry SASL failures, and puts it in the `inet mxguard` table of the "server"
# namespace (its nft argv is `ip netns exec SRV nft`). A TCP connect from the banned veth
# address fails while another address connects; the Postfix policy refuses the address;
# after kill -9 and a lost ruleset the restart restores the ban with its remaining time;
# unban and manual ban work through the CLI. The host's ruleset and links are never touched.
#
# Set MXGUARD_REQUIRE_NETNS=1 to fail (not skip) when namespaces cannot be created.
source "$(dirname "$0")/lib.sh"
it_init ip nft ipset

SRV=mxj-srv-$$
CLI=mxj-cli-$$
it_netns "$SRV" "$CLI"
ip -n "$SRV" link add vs type veth peer name vc netns "$CLI" || die "veth"
ip -n "$SRV" addr add 10.77.0.1/24 dev vs
ip -n "$CLI" addr add 10.77.0.2/24 dev vc
ip -n "$CLI" addr add 10.77.0.3/24 dev vc
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set vs up; ip -n "$CLI" link set vc up

# A TCP service in the server namespace.
ip netns exec "$SRV" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 2525)); s.listen(64)
while True:
    c, _ = s.accept(); c.close()
' &
it_track_pid $!

# connect_from ADDR: exit 0 when a TCP connect from ADDR to the service succeeds within 1.5 s.
connect_from() {
  ip netns exec "$CLI" python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(1.5); s.bind((sys.argv[1], 0))
try:
    s.connect(("10.77.0.1", 2525)); sys.exit(0)
except OSError:
    sys.exit(1)
' "$1"
}
no_connect_from() { ! connect_from "$1"; }
it_wait_for 5 connect_from 10.77.0.3 || die "the test service is not reachable"

POLICY=$(it_port 1)
CONF=$IT_DIR/mxguard.toml
LOG=$IT_DIR/mail.log
: >"$LOG"
FILTERS=$(cd "$(dirname "$0")/../../../shared/corpus/fail2ban/config" && pwd)
cat >"$CONF" <<CONF
[policy]
listen = ["inet:127.0.0.1:$POLICY"]
[greylist]
enabled = false
[store]
path = "$IT_DIR/state"
[control]
socket = "$IT_DIR/ctl.sock"
[bans]
poll_interval = "100ms"
[[action]]
name = "nftables"
type = "nftables"
command = ["ip", "netns", "exec", "$SRV", "nft"]
ports = [2525]
[[action]]
name = "ipset"
type = "ipset"
command = ["ip", "netns", "exec", "$SRV", "ipset"]
[[jail]]
name = "postfix-sasl"
filter = "postfix[mode=auth]"
filter_dir = "$FILTERS"
logpath = ["$LOG"]
maxretry = 3
bantime = "1h"
CONF

mx() { "$MXGUARD_BIN" "$@" --config "$CONF"; }
sasl_fail() { it_sasl_fail "$LOG" "$1"; }
in_set() { ip netns exec "$SRV" nft list set inet mxguard ban4 | grep -q "$1"; }
banned_listed() { mx bans --json | grep -q "\"$1\""; }
policy_reply() {
  python3 - "$POLICY" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=%s\n"
           "sender=a@b.example\nrecipient=c@d.example\n\n" % sys.argv[2]).encode())
print(s.recv(4096).decode().splitlines()[0])
PY
}

check start mx_start "$CONF" "$POLICY"
check table-created ip netns exec "$SRV" nft list chain inet mxguard input

sasl_fail 10.77.0.2; sasl_fail 10.77.0.2
check two-failures-no-ban bash -c "sleep 0.5; ! ip netns exec $SRV nft list set inet mxguard ban4 | grep -q 10.77.0.2"
sasl_fail 10.77.0.2
check banned-after-maxretry it_wait_for 10 in_set 10.77.0.2
# The ban runs from the log line's time (whole seconds), so the element's timeout is the
# remaining part of the hour: 1h, or 59m and some seconds.
check set-element-has-timeout bash -c "ip netns exec $SRV nft list set inet mxguard ban4 | grep -Eq '10\.77\.0\.2 timeout (1h|59m[0-9]{1,2}s) expires'"
check banned-address-dropped no_connect_from 10.77.0.2
check ipset-has-it bash -c "ip netns exec $SRV ipset list mxguard4 | grep -Eq '^10\.77\.0\.2 timeout [0-9]+'"
check other-address-connects connect_from 10.77.0.3
check bans-cli-lists-it banned_listed 10.77.0.2/32
check status-shows-jail bash -c "$MXGUARD_BIN status --config $CONF | grep -q 'currently failed 0, total failed 3, ignored 0, currently banned 1'"
r=$(policy_reply 10.77.0.2)
check policy-refuses-banned test "${r#action=REJECT}" != "$r"
r=$(policy_reply 10.77.0.3)
check policy-lets-others-through test "$r" = "action=DUNNO"

# kill -9, and the kernel state is lost too (a reboot): the restart restores from the store.
mx_kill9
ip netns exec "$SRV" nft flush set inet mxguard ban4
check set-emptied bash -c "! ip netns exec $SRV nft list set inet mxguard ban4 | grep -q 10.77.0.2"
sleep 1   # so the restored timeout is visibly shorter than the original hour
check restart mx_start "$CONF" "$POLICY"
check ban-restored it_wait_for 10 in_set 10.77.0.2
check restored-with-remaining-time bash -c "ip netns exec $SRV nft list set inet mxguard ban4 | grep -Eq '10\.77\.0\.2 timeout 59m5[0-9]s'"
check restored-ban-drops no_connect_from 10.77.0.2
rules=$(ip netns exec "$SRV" nft list chain inet mxguard input | grep -c 'saddr @')
check setup-is-idempotent test "$rules" = 4
# The log checkpoint: the three old lines are not read again after the restart.
check ban-logged-once bash -c "grep -q 'bans: ban jail=\"postfix-sasl\" net=10.77.0.2/32' $IT_DIR/mxguard.1.log && ! grep -q 'bans: ban jail=' $IT_DIR/mxguard.2.log"

check unban mx unban 10.77.0.2
check unban-removes-element bash -c "! ip netns exec $SRV nft list set inet mxguard ban4 | grep -q 10.77.0.2"
check unban-removes-ipset-entry bash -c "! ip netns exec $SRV ipset list mxguard4 | grep -q 10.77.0.2"
check unbanned-connects connect_from 10.77.0.2
check unban-again-is-not-an-error mx unban 10.77.0.2

check manual-ban mx ban 10.77.0.3 --for 10m
check manual-ban-in-set it_wait_for 5 in_set 10.77.0.3
check manual-ban-drops no_connect_from 10.77.0.3
check manual-ban-timeout bash -c "ip netns exec $SRV nft list set inet mxguard ban4 | grep -Eq '10\.77\.0\.3 timeout 10m'"
check unban-all mx unban --all
check unban-all-empties bash -c "! ip netns exec $SRV nft list set inet mxguard ban4 | grep -q 10.77.0"
check bad-target-is-usage-error bash -c "$MXGUARD_BIN ban 10.0.0.0/8 --config $CONF; test \$? = 2"

mx_stop
it_finish
