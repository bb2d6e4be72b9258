#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, models, formatting, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Builds shared between checkouts (CI clones afresh each time): keep the target dir outside.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callscribe/target}"

cargo fmt --all -- --check
cargo build --all-targets --locked
# The real models the integration tests run on (fetched and converted once, then cached).
cargo run --quiet --locked -- models pull tiny.en
cargo run --quiet --locked -- models pull base
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked -- --test-threads 2
