#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: setup, lints, every test, the loom models.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== build (release library used by the C examples)"
cargo build --release

echo "== loom model checks of the store's critical sections"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p vmsrs-hv --test loom_model --release

echo "== ThreadSanitizer: the store's stress, oracle and integrity tests (scripts/tsan.sh)"
./scripts/tsan.sh

echo "== Miri: the store's integrity tests and oracle property tests, 2 cases each (scripts/miri.sh)"
./scripts/miri.sh --lib --test integrity --test oracle_prop -- every_ a_wild_write

echo "== all tests (unit, property, stress, C examples, bad input, TCP server)"
cargo nextest run --workspace --no-fail-fast
