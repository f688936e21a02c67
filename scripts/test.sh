#!/usr/bin/env bash
# Runs every test of mxguard on a fresh Debian 12 machine: installs the system packages the tests
# need, checks formatting and lints, runs the Rust test suites (unit, scripted sessions,
# conformance), then the end-to-end suites against real daemons (scripts/it.sh).
#
#   scripts/test.sh              everything
#   MXGUARD_SKIP_INSTALL=1 ...   skip apt-get (packages already there)
#   MXGUARD_SKIP_IT=1 ...        skip the real-daemon suites
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n=== %s ===\n' "$*"; }

if [ "${MXGUARD_SKIP_INSTALL:-0}" != 1 ]; then
  step "installing system packages"
  bash scripts/install-deps.sh
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build (release binary for the end-to-end suites)"
cargo build --release --locked -p mxguard

step "cargo test"
cargo test --workspace --locked 2>&1 | tee "${TMPDIR:-/tmp}/mxguard-cargo-test.log"
test "${PIPESTATUS[0]}" -eq 0

step "fail2ban sample-log conformance (count shown; the cargo test above gates it)"
cargo test --locked -q -p mxguard-filter --test conformance -- --nocapture 2>&1 | grep -E '^fail2ban conformance:'

step "fuzz targets build (their seed corpora are replayed by cargo test)"
cargo build --locked --manifest-path fuzz/Cargo.toml

if [ "${MXGUARD_SKIP_IT:-0}" != 1 ]; then
  step "end-to-end suites against real daemons"
  MXGUARD_BIN="$root/target/release/mxguard" bash scripts/it.sh
fi
