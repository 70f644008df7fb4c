#!/usr/bin/env bash
# Warren's whole test suite, as root: dependencies, build (no warnings), clippy, unit and root
# integration tests (each in a private sandbox namespace), then every lab in its own sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (tests create network namespaces)" >&2; exit 1; }
. scripts/deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== build (release, warnings are errors)"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo build --release --locked --bins

echo "== clippy"
cargo clippy --release --locked --all-targets -- -D warnings

echo "== unit and integration tests"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo test --release --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"

echo "== labs"
labs/run.sh
