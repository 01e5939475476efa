#!/usr/bin/env bash
# Miri over the recovery store (crate vmsrs-hv): its unit tests, the integrity tests and the
# oracle tests (property tests with 2 cases each; PROPTEST_CASES is not forwarded into Miri's
# isolation). Fails on any Undefined Behaviour Miri detects. About 15 minutes on 2 cores.
#
#   scripts/miri.sh [cargo miri test args, e.g. --test oracle_prop -- every_]
#
# Needs the nightly toolchain with miri and rust-src (added here if missing). Under Miri the
# arena's guarded mappings are page-aligned heap allocations (hv/src/arena.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

for c in miri rust-src; do
    rustup component list --toolchain nightly --installed | grep -q "^$c" ||
        rustup component add "$c" --toolchain nightly
done

# -Zmiri-permissive-provenance: the store addresses guest memory by integer (the C ABI
#   passes addresses); Miri then tracks exposed provenance and only warns, so silence it.
# -Zmiri-disable-weak-memory-emulation: a granule is written by 1/2/4-byte stores and by an
#   8-byte CAS; Miri's store-buffer emulation cannot model mixed-size atomics and aborts.
#   Data-race detection stays on.
# -Zmiri-ignore-leaks: the tests leak each store's guest gate word on purpose
#   (`HvConfig::gate` is a &'static AtomicUsize); the store's own memory is freed by HvBox.
export MIRIFLAGS="-Zmiri-permissive-provenance -Zmiri-disable-weak-memory-emulation -Zmiri-ignore-leaks ${MIRIFLAGS:-}"

if (($#)); then
    cargo +nightly miri test -p vmsrs-hv "$@"
else
    cargo +nightly miri test -p vmsrs-hv --lib --test integrity --test oracle_prop
fi
