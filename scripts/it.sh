#!/usr/bin/env bash
# Runs every end-to-end suite in scripts/it/*.sh against real daemons (Postfix, Dovecot, ...)
# started from temp dirs on loopback (scripts/it/lib.sh holds their shared helpers and is
# skipped). Each suite prints PASS/FAIL lines and exits non-zero on a failure; this prints a
# total "N passed, N failed" line and fails if any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${MXGUARD_BIN:=$(pwd)/target/release/mxguard}"
export MXGUARD_BIN
passed=0; failed=0; failed_suites=()
for suite in scripts/it/*.sh; do
  [ -e "$suite" ] || continue
  [ "$(basename "$suite")" = lib.sh ] && continue   # shared helpers, sourced by the suites
  echo "--- $suite"
  out=$(mktemp)
  bash "$suite" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASS' "$out" || true); f=$(grep -c '^FAIL' "$out" || true)
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then failed_suites+=("$suite (rc $rc)"); fi
  rm -f "$out"
done
echo
echo "e2e: $passed passed, $failed failed"
if [ ${#failed_suites[@]} -gt 0 ]; then
  printf 'failed suite: %s\n' "${failed_suites[@]}"
  exit 1
fi
