#!/usr/bin/env bash
# ThreadSanitizer over the recovery store's tests (crate vmsrs-hv: stress, oracle property
# tests, integrity). Fails on any ThreadSanitizer report (TSan exits 66 at the end).
#
#   scripts/tsan.sh [extra cargo test args, e.g. --test stress]
#
# Needs the nightly toolchain with rust-src (added here if missing): std is rebuilt with
# -Zsanitizer=thread (-Zbuild-std) so its synchronisation is instrumented too. No
# suppressions: every access the store makes to raw monitored memory is a relaxed atomic.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
    rustup component add rust-src --toolchain nightly
host=$(rustc +nightly -vV | sed -n 's/^host: //p')

export RUSTFLAGS="-Zsanitizer=thread"
export CARGO_TARGET_DIR=target/tsan
# The workspace's dev profile is panic=abort; under -Zbuild-std that builds core twice for
# test targets ("duplicate lang item", cargo#7359). Tests unwind anyway.
export CARGO_PROFILE_DEV_PANIC=unwind
# The oracle property tests are single-threaded; a few cases keep them in the run.
export PROPTEST_CASES=${PROPTEST_CASES:-32}

if (($#)); then
    cargo +nightly test -Zbuild-std --target "$host" -p vmsrs-hv "$@"
else
    cargo +nightly test -Zbuild-std --target "$host" -p vmsrs-hv --tests
fi
