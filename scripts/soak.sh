#!/usr/bin/env bash
# soak.sh -- build libvmsrs and c-examples/soak.c, run the soak under both policies and the
# -DVMSRS_DISABLE baseline (same workload, no faults), and print the time ratios.
#
#   scripts/soak.sh [SOAK ARGS...]     e.g. scripts/soak.sh --faults 20000 --normal 5000000
#
# Exit status: 0 when both policies print "soak: PASS", 1 otherwise. Outputs in target/soak/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/soak
LIB=$ROOT/target/release
mkdir -p "$OUT"
cargo build --release -p vmsrs --lib 2>&1 | tail -n 1
CFLAGS=(-O2 -g -Wall -Wextra -Werror -pthread -I"$ROOT/include")
gcc "${CFLAGS[@]}" c-examples/soak.c -o "$OUT/soak" -L"$LIB" -lvmsrs -Wl,-rpath,"$LIB" || exit 1
gcc "${CFLAGS[@]}" -DVMSRS_DISABLE c-examples/soak.c -o "$OUT/soak-disabled" || exit 1

ms() { grep -o 'elapsed_ms=[0-9]*' "$1" | cut -d= -f2; }
"$OUT/soak-disabled" --quiet "$@" > "$OUT/disabled.txt" 2>&1
base=$(ms "$OUT/disabled.txt")
echo "disabled: $(grep '^soak: summary' "$OUT/disabled.txt")"
status=0
for pol in oblivious unwind; do
    VMSRS_POLICY=$pol "$OUT/soak" --quiet "$@" > "$OUT/$pol.txt" 2>&1
    rc=$?
    grep -E '^soak: (VIOLATION|FAIL|faults|summary|PASS)' "$OUT/$pol.txt"
    t=$(ms "$OUT/$pol.txt")
    if [ -n "$t" ] && [ -n "$base" ] && [ "$base" -gt 0 ]; then
        awk -v p="$pol" -v t="$t" -v b="$base" \
            'BEGIN { printf "%s: %.1f s vs %.1f s without libvmsrs (no faults): %.2fx\n", p, t/1000, b/1000, t/b }'
    fi
    if [ $rc -ne 0 ] || ! grep -qx 'soak: PASS' "$OUT/$pol.txt"; then
        echo "$pol: FAILED (exit $rc); see $OUT/$pol.txt"
        status=1
    fi
done
exit $status
