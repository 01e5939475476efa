/*
 * bench_floor.c -- libvmsrs's store path against the floor: the minimal recorder
 * (c-examples/minrec.c, a shared library called through the PLT like libvmsrs) and the
 * plain store, in the same process, rounds rotating the order of the three sides.
 *
 * Rows (8-byte stores; one normal user, no user faulted):
 *   hot granule            the same granule again and again
 *   working set 32 KiB     4096 granules visited with an odd stride (the same user rewrites)
 *   working set 4 MiB      2^19 granules, larger than L2: the recorders' metadata misses too
 *   first store of a user  a fresh user per 4096 stores, each to a granule it has not written
 *   begin + store + commit one user per store (plain: the store alone)
 * Printed: medians (thread CPU time, ns/op) of plain, minimal recorder and libvmsrs, and the
 * medians of the per-round ratios libvmsrs/minrec, libvmsrs/plain and minrec/plain. The
 * targets of DESIGN §8 are printed beside them. Reports, never asserts.
 *
 * Build (scripts/bench.sh does this):
 *   gcc -O2 -shared -fPIC c-examples/minrec.c -o libminrec.so
 *   gcc -O2 -pthread -Iinclude c-examples/bench_floor.c -o bench_floor \
 *       -L. -lminrec -Ltarget/release -lvmsrs -Wl,-rpath,$PWD:$PWD/target/release
 * Usage: bench_floor [-r ROUNDS] [-n OPS_PER_ROUND]
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include "bench_common.h"

#include <stdint.h>
#include <sys/mman.h>

int minrec_profile(void *addr, size_t len);
int minrec_begin(void);
void minrec_store64(uint64_t *p, uint64_t v);
void minrec_commit(void);

#define NOINLINE __attribute__((noinline))
#define SMALL (1u << 12) /* granules: 32 KiB */
#define LARGE (1u << 19) /* granules: 4 MiB */
#define STRIDE 1021u     /* odd: visits every granule of a power-of-two set */
#define MAXR 64

enum side { PLAIN, MINREC, VMSRS, SIDES };
static const char *side_name[SIDES] = {"plain", "minrec", "libvmsrs"};

static uint64_t *table;
static int rounds = 15;
static long ops = 1L << 20;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_floor: %s failed: %d\n", what, rc);
    exit(2);
}

static void begin(enum side s) {
    int rc = 0;
    if (s == MINREC) rc = minrec_begin();
    if (s == VMSRS) rc = vmsrs_user_begin();
    if (rc) die("begin", rc);
}

static void end(enum side s) {
    if (s == MINREC) minrec_commit();
    if (s == VMSRS) {
        int rc = vmsrs_user_end();
        if (rc) die("vmsrs_user_end", rc);
    }
}

/* n stores walking `set` granules (a power of two) with STRIDE, starting at granule *pos. */
static NOINLINE void stores(enum side s, unsigned set, long n, unsigned *pos) {
    unsigned i = *pos;
    uint64_t *t = table;
    switch (s) {
    case PLAIN:
        for (long k = 0; k < n; k++) {
            *(volatile uint64_t *)(t + i) = (uint64_t)k;
            i = (i + STRIDE) & (set - 1);
        }
        break;
    case MINREC:
        for (long k = 0; k < n; k++) {
            minrec_store64(t + i, (uint64_t)k);
            i = (i + STRIDE) & (set - 1);
        }
        break;
    default:
        for (long k = 0; k < n; k++) {
            vmsrs_store64(t + i, (uint64_t)k);
            i = (i + STRIDE) & (set - 1);
        }
        break;
    }
    *pos = i;
}

static NOINLINE void user_per_store(enum side s, long n) {
    for (long k = 0; k < n; k++) {
        begin(s);
        if (s == PLAIN)
            *(volatile uint64_t *)(table + 5) = (uint64_t)k;
        else if (s == MINREC)
            minrec_store64(table + 5, (uint64_t)k);
        else
            vmsrs_store64(table + 5, (uint64_t)k);
        end(s);
    }
}

enum kind { HOT, WS_SMALL, WS_LARGE, FIRST, PER_STORE, KINDS };
static const char *kind_name[KINDS] = {
    "store64, hot granule", "store64, working set 32 KiB", "store64, working set 4 MiB",
    "store64, first store of a user / granule", "begin + store64 + commit"};
static const char *target[KINDS] = {"<= 2x minrec, <= 20 ns", "<= 2x minrec, <= 20 ns",
                                    "<= 2x minrec, <= 20 ns", "<= 20 ns", "<= 15 ns + store"};

/* One timed run of `kind` on side `s`: ns per store. */
static double run(enum kind kind, enum side s) {
    unsigned pos = 0;
    uint64_t t = 0;
    switch (kind) {
    case HOT:
    case WS_SMALL:
    case WS_LARGE: {
        unsigned set = kind == HOT ? 1 : kind == WS_SMALL ? SMALL : LARGE;
        begin(s);
        stores(s, set, set, &pos); /* the user owns every granule of the set: rewrites */
        uint64_t t0 = now_ns();
        stores(s, set, ops, &pos);
        t = now_ns() - t0;
        end(s);
        return (double)t / (double)ops;
    }
    case FIRST: {
        long batches = ops / SMALL;
        for (long b = 0; b < batches; b++) {
            begin(s);
            uint64_t t0 = now_ns();
            stores(s, SMALL, SMALL, &pos);
            t += now_ns() - t0;
            end(s);
        }
        return (double)t / (double)(batches * SMALL);
    }
    default: {
        long n = ops / 4;
        uint64_t t0 = now_ns();
        user_per_store(s, n);
        return (double)(now_ns() - t0) / (double)n;
    }
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    double tmp[MAXR];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "r:n:")) != -1) {
        switch (opt) {
        case 'r': rounds = atoi(optarg); break;
        case 'n': ops = atol(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-r ROUNDS (default 15)] [-n OPS per round (default 1048576)]\n",
                    argv[0]);
            return 2;
        }
    }
    if (rounds < 1) rounds = 1;
    if (rounds > MAXR) rounds = MAXR;
    if (ops < (long)SMALL) ops = SMALL;

    size_t bytes = (size_t)LARGE * sizeof(uint64_t);
    table = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) die("mmap", -1);
    memset(table, 0x51, bytes);
    int rc = vmsrs_init_profile(NULL);
    if (rc) die("vmsrs_init_profile", rc);
    rc = vmsrs_profile(table, bytes, "bench_floor");
    if (rc) die("vmsrs_profile", rc);
    if (minrec_profile(table, bytes) != 0) die("minrec_profile", -1);

    bench_print_machine();
    printf("method    %d rounds of %ld stores per side, the order of plain/minrec/libvmsrs rotating "
           "each round; thread CPU time; medians\n", rounds, ops);
    printf("\n%-42s %8s %8s %9s %10s %10s %10s  %s\n", "case (ns/op)", "plain", "minrec", "libvmsrs",
           "vmsrs/min", "vmsrs/pl", "min/plain", "target (DESIGN §8)");
    for (int kind = 0; kind < KINDS; kind++) {
        double ns[SIDES][MAXR], r_vm[MAXR], r_vp[MAXR], r_mp[MAXR];
        for (int s = 0; s < SIDES; s++) run(kind, s); /* warm-up, not counted */
        for (int k = 0; k < rounds; k++) {
            for (int j = 0; j < SIDES; j++) {
                int s = (j + k) % SIDES;
                ns[s][k] = run(kind, s);
            }
            r_vm[k] = ns[VMSRS][k] / ns[MINREC][k];
            r_vp[k] = ns[VMSRS][k] / ns[PLAIN][k];
            r_mp[k] = ns[MINREC][k] / ns[PLAIN][k];
        }
        double m[SIDES];
        for (int s = 0; s < SIDES; s++) m[s] = median(ns[s], rounds);
        printf("%-42s %8.2f %8.2f %9.2f %9.2fx %9.2fx %9.2fx  %s\n", kind_name[kind], m[PLAIN],
               m[MINREC], m[VMSRS], median(r_vm, rounds), median(r_vp, rounds),
               median(r_mp, rounds), target[kind]);
        for (int s = 0; s < SIDES; s++)
            printf("INFO floor %s %s: %.2f ns\n", kind_name[kind], side_name[s], m[s]);
        fflush(stdout);
    }
    return 0;
}
