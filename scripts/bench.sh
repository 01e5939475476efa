#!/usr/bin/env bash
# bench.sh -- build libvmsrs (release) and the C benchmark harnesses, run them, print results.
#
#   scripts/bench.sh [--quick] [--no-fig14] [--no-selfcheck] [--profile]
#
#   --quick         fewer Fig. 14 repetitions and shorter runs (micro-benchmarks unchanged)
#   --no-fig14      micro-benchmarks only
#   --no-selfcheck  skip the -DVMSRS_DISABLE run of bench_micro (checks the harness itself:
#                   there, "monitored" compiles to the plain access and must match it)
#   --profile       also sample the store path with perf (cpu-clock) and print top symbols
#
# Everything lands in target/bench/ (binaries, full outputs, libvmsrs's stderr reports).
# Benchmarks report, they do not assert: the script fails only if something cannot be built
# or a harness crashes. The machine is shared; see the harness headers for the method.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
QUICK=0 FIG14=1 SELFCHECK=1 PROFILE=0
for a in "$@"; do
    case $a in
        --quick) QUICK=1 ;;
        --no-fig14) FIG14=0 ;;
        --no-selfcheck) SELFCHECK=0 ;;
        --profile) PROFILE=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option $a" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"

echo "== build =="
cargo build --release 2>&1 | tail -n 3
LIB=$ROOT/target/release
test -f "$LIB/libvmsrs.so" || { echo "bench.sh: $LIB/libvmsrs.so missing" >&2; exit 1; }
CC=${CC:-gcc}
CFLAGS=(-O2 -g -Wall -Wextra -pthread -I"$ROOT/include")
LINK=(-L"$LIB" -lvmsrs -Wl,-rpath,"$LIB")
$CC "${CFLAGS[@]}" c-examples/bench_micro.c -o "$OUT/bench_micro" "${LINK[@]}"
$CC "${CFLAGS[@]}" -DVMSRS_DISABLE c-examples/bench_micro.c -o "$OUT/bench_micro_plain"
$CC "${CFLAGS[@]}" -DVMSRS_DISABLE c-examples/bench_fig14.c -o "$OUT/bench_fig14_plain"
$CC "${CFLAGS[@]}" c-examples/bench_fig14.c -o "$OUT/bench_fig14" "${LINK[@]}"
$CC "${CFLAGS[@]}" -rdynamic c-examples/bench_interpose.c -o "$OUT/bench_interpose"
$CC "${CFLAGS[@]}" c-examples/bench_locks.c -o "$OUT/bench_locks"
$CC "${CFLAGS[@]}" -rdynamic c-examples/bench_watch.c -o "$OUT/bench_watch"
$CC "${CFLAGS[@]}" c-examples/bench_exposure.c -o "$OUT/bench_exposure" "${LINK[@]}"
# The floor: the minimal recorder, a shared library called through the PLT like libvmsrs.
$CC "${CFLAGS[@]}" -shared -fPIC c-examples/minrec.c -o "$OUT/libminrec.so"
$CC "${CFLAGS[@]}" c-examples/bench_floor.c -o "$OUT/bench_floor" -L"$OUT" -lminrec -Wl,-rpath,"$OUT" "${LINK[@]}"
$CC "${CFLAGS[@]}" -DFIG14_MINREC c-examples/bench_fig14.c -o "$OUT/bench_fig14_minrec" -L"$OUT" -lminrec -Wl,-rpath,"$OUT"
echo "built: $OUT/{bench_micro,bench_micro_plain,bench_fig14,bench_fig14_plain,bench_fig14_minrec,bench_interpose,bench_locks,bench_floor,bench_watch,bench_exposure}"
echo "libvmsrs: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src hv 2>/dev/null || echo ' + uncommitted changes in src/ or hv/')"

if [ "$SELFCHECK" = 1 ]; then
    echo
    echo "== harness self-check: bench_micro -DVMSRS_DISABLE (monitored must equal plain) =="
    "$OUT/bench_micro_plain" -s ab -r 15 >"$OUT/bench_micro_plain.txt" 2>&1
    grep -E '^  (case|load64|store64)' "$OUT/bench_micro_plain.txt" || true
fi

echo
echo "== bench_micro =="
# libvmsrs writes a report on stderr for every contained fault (thousands here): keep them
# in a file, count them.
"$OUT/bench_micro" 2>"$OUT/bench_micro.stderr" | tee "$OUT/bench_micro.txt"
echo "(libvmsrs stderr: $(grep -c 'SUMMARY: vmsrs' "$OUT/bench_micro.stderr" || true) fault reports in $OUT/bench_micro.stderr)"

echo
echo "== bench_floor: libvmsrs's store against the minimal recorder (c-examples/minrec.c) and the plain store =="
if [ "$QUICK" = 1 ]; then BF=(-r 5); else BF=(-r 15); fi
"$OUT/bench_floor" "${BF[@]}" 2>"$OUT/bench_floor.stderr" | tee "$OUT/bench_floor.txt"

echo
echo "== bench_interpose: no-fault cost of the interposed malloc/free, memcpy, printf (drop-in) =="
if [ "$QUICK" = 1 ]; then BI=(-r 5); else BI=(-r 21); fi
"$OUT/bench_interpose" -p "$LIB/libvmsrs.so" "${BI[@]}" | tee "$OUT/bench_interpose.txt"
echo "== bench_locks (lock tracking per lock/unlock pair: LD_PRELOAD=libvmsrs.so vs plain) =="
"$OUT/bench_locks" -l "$LIB/libvmsrs.so" 2>"$OUT/bench_locks.stderr" | tee "$OUT/bench_locks.txt"
echo "== bench_watch (drop-in monitored ranges: a trapped store, a watchpoint's store, a page restored) =="
LD_PRELOAD="$LIB/libvmsrs.so" VMSRS_RANGE_0=symbol:watched VMSRS_RANGE_1=symbol:hw_word VMSRS_WATCH_1=hw \
    VMSRS_USER_CALL=poison:-1 VMSRS_POLICY=oblivious \
    "$OUT/bench_watch" "${BI[@]}" 2>"$OUT/bench_watch.stderr" | tee "$OUT/bench_watch.txt"
echo "== bench_exposure (G8: a request of 8 loads of a never-ending writer's data, exposure tracking on vs off) =="
if [ "$QUICK" = 1 ]; then BX=(-r 3); else BX=(-r 7); fi
"$OUT/bench_exposure" "${BX[@]}" | tee "$OUT/bench_exposure.txt"

if [ "$FIG14" = 1 ]; then
    echo
    echo "== bench_fig14 =="
    if [ "$QUICK" = 1 ]; then F14=(-r 1 -t 0.1 -u 1,16,256); else F14=(-r 3 -t 0.2); fi
    "$OUT/bench_fig14" -b "$OUT/bench_fig14_plain" -m "$OUT/bench_fig14_minrec" "${F14[@]}" 2>"$OUT/bench_fig14.stderr" \
        | tee "$OUT/bench_fig14.txt"
    echo
    echo "== bench_fig14, a 4 MiB table (larger than L2: the metadata misses cache, as a server's does) =="
    "$OUT/bench_fig14" -b "$OUT/bench_fig14_plain" -m "$OUT/bench_fig14_minrec" "${F14[@]}" -R 65536 \
        2>"$OUT/bench_fig14_large.stderr" \
        | tee "$OUT/bench_fig14_large.txt"
fi

if [ "$PROFILE" = 1 ]; then
    echo
    echo "== profile: monitored stores (bench_micro -s a), perf cpu-clock samples =="
    if command -v perf >/dev/null 2>&1 &&
        perf record -q -e cpu-clock -F 10000 -o "$OUT/perf_store.data" \
            "$OUT/bench_micro" -s a -r 5 >/dev/null 2>&1; then
        perf report -i "$OUT/perf_store.data" --no-children --stdio --sort symbol \
            >"$OUT/perf_store.txt" 2>/dev/null || true
        grep -E '^ +[0-9.]+%' "$OUT/perf_store.txt" | sed -n '1,20p' || true
    else
        echo "perf unavailable (apt-get install -y linux-perf), or not permitted here"
    fi
fi

echo
echo "== results (copy of the summary blocks) =="
grep -hE '^(BAR|INFO) ' "$OUT/bench_micro.txt" || true
grep -hE '^INFO ' "$OUT/bench_floor.txt" "$OUT/bench_interpose.txt" "$OUT/bench_exposure.txt" || true
grep -hE '^(BAR|INFO) ' "$OUT/bench_micro.txt" "$OUT/bench_locks.txt" || true
if [ "$FIG14" = 1 ]; then grep -hE '^(BAR|INFO) ' "$OUT/bench_fig14.txt" "$OUT/bench_fig14_large.txt" || true; fi
echo "full outputs in $OUT/ (bench_micro.txt, bench_fig14.txt)"
exit 0
