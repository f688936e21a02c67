#!/usr/bin/env bash
# Installs the Debian packages the test suites need. Idempotent; needs root (CI runs as root).
# The system postfix/dovecot services are never started here: the tests run their own instances
# from temp dirs (policy-rc.d on these machines forbids service starts anyway).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Preseed postfix so its postinst does not ask questions.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string mx.example.test" | debconf-set-selections
pkgs=(postfix swaks iproute2 nftables python3 procps dovecot-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
