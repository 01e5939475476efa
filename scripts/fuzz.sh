#!/usr/bin/env bash
# Fuzz every cargo-fuzz target in fuzz/ for a bounded time; exit 1 if any target crashes
# (panics, fails a property, times out or runs out of memory).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      SECONDS per target (default 60); default: all targets
#   FUZZ_UPDATE_CORPUS=1 scripts/fuzz.sh 300   also fold the new inputs into fuzz/corpus/<target>
#                                              and minimise it (cargo fuzz cmin)
#
# Targets (properties in fuzz/checks/*.rs; tests replay the committed corpora on every test run):
#   envfile       environment-file reader: no panic, accepted files read identically by a model
#                 of systemd's reader, pairs round-trip through quoting
#   config_load   the whole loader (file + VMSRS_* + VMSRS_OPTIONS): no panic, describe() loads back
#   range_spec    range specs: no panic, accepted specs round-trip through Display
#   skip_planner  instruction-skip planner: no panic, skips exactly one iced-decoded instruction,
#                 plausible registers, no allocation once warmed up
#
# Reads the committed seeds (fuzz/seeds/<target>) and corpus (fuzz/corpus/<target>) and writes
# new inputs to a scratch corpus (fuzz/target/work-corpus/<target>), so a run leaves the tree
# clean unless FUZZ_UPDATE_CORPUS=1. A crashing input is saved in fuzz/artifacts/<target>/;
# reproduce it with `cargo +nightly fuzz run <target> <file>`. Needs the nightly toolchain;
# installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

failed=()
for target in "${targets[@]}"; do
    work=fuzz/target/work-corpus/$target
    mkdir -p "$work" "fuzz/corpus/$target" "fuzz/seeds/$target"
    echo "== fuzz $target for ${seconds}s"
    if ! cargo +nightly fuzz run "$target" "$work" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=25 -print_final_stats=1; then
        echo "!! $target: crash; input saved under fuzz/artifacts/$target/" >&2
        failed+=("$target")
        continue
    fi
    if [[ ${FUZZ_UPDATE_CORPUS:-0} == 1 ]]; then
        cp -n "$work"/* "fuzz/corpus/$target/" 2>/dev/null || true
        cargo +nightly fuzz cmin "$target" "fuzz/corpus/$target"
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: crashes in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s), ${seconds}s each, no crash"
