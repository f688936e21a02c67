#!/usr/bin/env bash
# Installs the Debian packages the test suites need. Idempotent: packages already installed are
# skipped, and `apt-get update` runs at most once, only when something is missing. Needs root
# (CI runs as root). The system postfix/dovecot services are never started here: the tests run
# their own instances from temp dirs (policy-rc.d on these machines forbids service starts; when
# it is absent, a temporary one is put in place for the duration of the install).
#
# Helpers add their packages to pkgs=(...) below.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(postfix swaks iproute2 nftables ipset python3 procps dovecot-core dovecot-imapd systemd-journal-remote redis-server systemd adduser)
# mxguard report: the HTML page is loaded in headless Chromium (scripts/it/report_html.sh).
pkgs+=(chromium chromium-driver)

[ "$(id -u)" = 0 ] || { echo "install-deps: must run as root" >&2; exit 1; }

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"

# Preseed postfix so its postinst asks nothing and writes no system mail config we would use.
debconf-set-selections <<'DEB'
postfix postfix/main_mailer_type select No configuration
postfix postfix/mailname string mx.example.test
DEB

# Never start system services from maintainer scripts (exit 101 = "action forbidden").
made_policy_rc=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy_rc=1
fi
cleanup() { [ "$made_policy_rc" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

# Another apt user (unattended upgrades, a colleague) may hold the lock: wait for it.
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
