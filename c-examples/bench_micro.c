/*
 * bench_micro.c -- micro-benchmarks of libvmsrs's hot paths (DESIGN §8 "Performance bars").
 *
 * Every monitored figure is printed beside a plain access measured in the same run: rounds
 * alternate plain, monitored, plain, monitored ..., and the table reports medians over the
 * rounds, the median of the per-round ratio monitored/plain and of the per-round difference.
 * Each kernel runs twice: over a working set of 4096 granules of a profiled table (visited
 * with a stride, so neither the prefetcher nor one cache line helps) and on one hot granule.
 *
 * The harness reports; it never asserts. It exits 0 whatever the bars say.
 *
 * Build: gcc -O2 -pthread -Iinclude c-examples/bench_micro.c -o bench_micro \
 *            -Ltarget/release -lvmsrs -Wl,-rpath,$PWD/target/release
 * Usage: bench_micro [-r ROUNDS] [-n OPS_PER_ROUND] [-f] [-s SECTIONS]   (-h for help)
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include "bench_common.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define NG 4096u              /* granules in the working set */
#define STRIDE 1021u          /* odd: visits all NG granules before repeating */
#define NPARK 64u             /* granules polluted by the parked user of (c) */
#define TABLE_GRANULES (2u * NG)
/* Table layout, in granules: [0, NG) the working set read and written by the normal user;
 * [NG, 2 NG) the area the faulty users of (c) and (d) pollute. */

#define NOINLINE __attribute__((noinline))

static uint64_t *table;       /* profiled */
static uint64_t *unmon;       /* never profiled: the (e) reference */
static uint64_t orig_xor_d;   /* xor of the pollution area's profiled values */
static volatile uint64_t sink;
static int rounds = 21;
static long ops = 1L << 20;
static int real_fault;

/* The machine is shared and noisy (2 CPUs, other jobs): rounds are timed on the calling
 * thread's CPU clock, which excludes time the thread was preempted; the wall clock of the
 * monitored rounds is kept beside it. */
static uint64_t clock_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static uint64_t now_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }
static uint64_t wall_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_micro: %s failed: %d (%s)\n", what, rc, vmsrs_strerror(rc));
    exit(2);
}

/* The end of a faulted user returns VMSRS_FAULTED (0 when libvmsrs is compiled out). */
static void expect_faulted(const char *what, int rc) {
#ifdef VMSRS_DISABLE
    if (rc == 0) return;
#endif
    if (rc != VMSRS_FAULTED) die(what, rc);
}

/* ----- statistics ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *v, int n, double q) {
    double tmp[256];
    if (n <= 0) return 0.0;
    if (n > 256) n = 256;
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    double pos = q * (n - 1);
    int lo = (int)pos;
    int hi = lo + 1 < n ? lo + 1 : lo;
    return tmp[lo] + (tmp[hi] - tmp[lo]) * (pos - lo);
}

static double median(const double *v, int n) { return quantile(v, n, 0.5); }

/* One row of the table; has_plain is 0 for costs with no plain twin (user begin/end, ...). */
struct row {
    const char *name;
    double plain[256], mon[256], wall[256];
    int n;
    int has_plain;
    double med_plain, med_mon, p90_mon, ratio, diff, med_wall;
};

static void finish(struct row *r) {
    double ratio[256], diff[256];
    for (int i = 0; i < r->n; i++) {
        ratio[i] = r->plain[i] > 0 ? r->mon[i] / r->plain[i] : 0;
        diff[i] = r->mon[i] - r->plain[i];
    }
    r->med_plain = median(r->plain, r->n);
    r->med_mon = median(r->mon, r->n);
    r->p90_mon = quantile(r->mon, r->n, 0.9);
    r->ratio = median(ratio, r->n);
    r->diff = median(diff, r->n);
    r->med_wall = median(r->wall, r->n);
}

static void print_head(const char *title) {
    printf("\n%s\n", title);
    printf("  %-46s %9s %10s %9s %8s %9s %9s\n", "case", "plain", "monitored", "mon p90", "ratio",
           "diff", "mon wall");
    printf("  %-46s %9s %10s %9s %8s %9s %9s\n", "", "ns/op", "ns/op", "ns/op", "mon/pl", "ns",
           "ns/op");
}

static void print_row(const struct row *r) {
    if (r->has_plain)
        printf("  %-46s %9.2f %10.2f %9.2f %7.2fx %+9.2f %9.2f\n", r->name, r->med_plain,
               r->med_mon, r->p90_mon, r->ratio, r->diff, r->med_wall);
    else
        printf("  %-46s %9s %10.2f %9.2f %8s %9s %9.2f\n", r->name, "-", r->med_mon, r->p90_mon,
               "-", "-", r->med_wall);
    fflush(stdout);
}

/* ----- kernels: one access per iteration, working set (stride walk) or one hot granule ---- */

static NOINLINE uint64_t plain_load_ws(uint64_t *t, long n) {
    uint64_t s = 0;
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        s += *(volatile uint64_t *)(t + i);
        i = (i + STRIDE) & (NG - 1);
    }
    return s;
}

static NOINLINE uint64_t mon_load_ws(uint64_t *t, long n) {
    uint64_t s = 0;
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        s += vmsrs_load64(t + i);
        i = (i + STRIDE) & (NG - 1);
    }
    return s;
}

static NOINLINE uint64_t plain_load_hot(uint64_t *t, long n) {
    uint64_t s = 0;
    for (long k = 0; k < n; k++) s += *(volatile uint64_t *)t;
    return s;
}

static NOINLINE uint64_t mon_load_hot(uint64_t *t, long n) {
    uint64_t s = 0;
    for (long k = 0; k < n; k++) s += vmsrs_load64(t);
    return s;
}

static NOINLINE uint64_t plain_store_ws(uint64_t *t, long n) {
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        *(volatile uint64_t *)(t + i) = (uint64_t)k;
        i = (i + STRIDE) & (NG - 1);
    }
    return 0;
}

static NOINLINE uint64_t mon_store_ws(uint64_t *t, long n) {
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        vmsrs_store64(t + i, (uint64_t)k);
        i = (i + STRIDE) & (NG - 1);
    }
    return 0;
}

static NOINLINE uint64_t plain_store_hot(uint64_t *t, long n) {
    for (long k = 0; k < n; k++) *(volatile uint64_t *)t = (uint64_t)k;
    return 0;
}

static NOINLINE uint64_t mon_store_hot(uint64_t *t, long n) {
    for (long k = 0; k < n; k++) vmsrs_store64(t, (uint64_t)k);
    return 0;
}

/* 16-byte assignments and stores (a small struct, as VMSRS_SET of one would): working set,
 * 16 aligned bytes to 16 aligned bytes NG/2 granules away. */
static NOINLINE uint64_t plain_assign_ws(uint64_t *t, long n) {
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        memmove(t + i, t + ((i + NG / 2) & (NG - 2)), 16);
        __asm__ volatile("" ::: "memory");
        i = (i + 2 * STRIDE) & (NG - 2);
    }
    return 0;
}

static NOINLINE uint64_t mon_assign_ws(uint64_t *t, long n) {
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        (void)vmsrs_assign(t + i, t + ((i + NG / 2) & (NG - 2)), 16);
        i = (i + 2 * STRIDE) & (NG - 2);
    }
    return 0;
}

static NOINLINE uint64_t plain_store16_ws(uint64_t *t, long n) {
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        uint64_t v[2] = {(uint64_t)k, (uint64_t)i};
        memcpy(t + i, v, 16);
        __asm__ volatile("" ::: "memory");
        i = (i + 2 * STRIDE) & (NG - 2);
    }
    return 0;
}

static NOINLINE uint64_t mon_store16_ws(uint64_t *t, long n) {
    unsigned i = 0;
    for (long k = 0; k < n; k++) {
        uint64_t v[2] = {(uint64_t)k, (uint64_t)i};
        (void)vmsrs_store(t + i, v, 16);
        i = (i + 2 * STRIDE) & (NG - 2);
    }
    return 0;
}

typedef uint64_t (*kernel)(uint64_t *, long);

/* Alternate plain and monitored rounds (after one discarded warm-up pair). */
static void run_pair(struct row *r, const char *name, kernel plain, kernel mon, uint64_t *t) {
    memset(r, 0, sizeof *r);
    r->name = name;
    r->has_plain = 1;
    sink += plain(t, ops / 4);
    sink += mon(t, ops / 4);
    for (int k = 0; k < rounds; k++) {
        uint64_t t0 = now_ns();
        sink += plain(t, ops);
        uint64_t t1 = now_ns(), w1 = wall_ns();
        sink += mon(t, ops);
        uint64_t t2 = now_ns(), w2 = wall_ns();
        r->plain[k] = (double)(t1 - t0) / (double)ops;
        r->mon[k] = (double)(t2 - t1) / (double)ops;
        r->wall[k] = (double)(w2 - w1) / (double)ops;
    }
    r->n = rounds;
    finish(r);
    print_row(r);
}

/* (a') the first store of a user to each granule (allocates a history entry and a log slot):
 * a fresh user per batch of NG stores; only the stores are timed. */
static void run_first_store(struct row *r) {
    memset(r, 0, sizeof *r);
    r->name = "store64, first store of a fresh user / granule";
    r->has_plain = 1;
    long batches = (ops + NG - 1) / NG;
    for (int k = -1; k < rounds; k++) {
        uint64_t tp = 0, tm = 0, wm = 0;
        for (long b = 0; b < batches; b++) {
            uint64_t t0 = now_ns();
            plain_store_ws(table, NG);
            tp += now_ns() - t0;
            int rc = vmsrs_user_begin();
            if (rc) die("vmsrs_user_begin", rc);
            t0 = now_ns();
            uint64_t w0 = wall_ns();
            mon_store_ws(table, NG);
            wm += wall_ns() - w0;
            tm += now_ns() - t0;
            rc = vmsrs_user_end();
            if (rc) die("vmsrs_user_end", rc);
        }
        if (k < 0) continue;
        r->plain[k] = (double)tp / (double)(batches * NG);
        r->mon[k] = (double)tm / (double)(batches * NG);
        r->wall[k] = (double)wm / (double)(batches * NG);
    }
    r->n = rounds;
    finish(r);
    print_row(r);
}

/* ----- the faulty users' thread ------------------------------------------------------- */

enum cmd { C_NONE, C_POLLUTE_FAULT, C_END, C_POLLUTE_FAULT_END, C_PARK, C_QUIT };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum cmd cmd;
    int done;
    uint64_t seq;      /* pollution pattern */
    int rc;
    uint64_t ns, wall; /* timed part of the command: thread CPU time, wall time */
} w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, C_NONE, 0, 0, 0, 0, 0 };

static uint64_t *volatile null_target; /* NULL, hidden from the compiler */

/* This thread's user stores to the NG granules of the pollution area, then faults. */
static void pollute_and_fault(unsigned n, uint64_t seq) {
    int rc = vmsrs_user_begin();
    if (rc) die("vmsrs_user_begin (faulty)", rc);
    uint64_t *d = table + NG;
    for (unsigned i = 0; i < n; i++) vmsrs_store64(d + i, ~(uint64_t)i ^ (seq << 20));
    if (real_fault) {
        *null_target = 1; /* SIGSEGV, contained: the user is suppressed, the store skipped */
        if (!vmsrs_user_suppressed()) die("real fault did not suppress the user", -1);
    } else {
        rc = vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, d);
        if (rc) die("vmsrs_crash_suppression", rc);
    }
}

static void *faulty_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&w.mu);
    for (;;) {
        while (w.cmd == C_NONE) pthread_cond_wait(&w.cv, &w.mu);
        enum cmd c = w.cmd;
        pthread_mutex_unlock(&w.mu);
        int rc = 0;
        uint64_t ns = 0, wall = 0;
        if (c == C_POLLUTE_FAULT || c == C_POLLUTE_FAULT_END) pollute_and_fault(NG, w.seq);
        if (c == C_PARK) pollute_and_fault(NPARK, w.seq);
        if (c == C_END || c == C_POLLUTE_FAULT_END) {
            uint64_t t0 = now_ns(), w0 = wall_ns();
            rc = vmsrs_user_end();
            wall = wall_ns() - w0;
            ns = now_ns() - t0;
        }
        pthread_mutex_lock(&w.mu);
        w.rc = rc;
        w.ns = ns;
        w.wall = wall;
        w.cmd = C_NONE;
        w.done = 1;
        pthread_cond_broadcast(&w.cv);
        if (c == C_QUIT) break;
    }
    pthread_mutex_unlock(&w.mu);
    return NULL;
}

/* Run one command on the faulty thread and wait for it. Returns the timed CPU ns. */
static uint64_t faulty(enum cmd c, uint64_t seq, int *rc, uint64_t *wall) {
    pthread_mutex_lock(&w.mu);
    w.cmd = c;
    w.seq = seq;
    w.done = 0;
    pthread_cond_broadcast(&w.cv);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    if (rc) *rc = w.rc;
    if (wall) *wall += w.wall;
    uint64_t ns = w.ns;
    pthread_mutex_unlock(&w.mu);
    return ns;
}

/* ----- (d) restoration and eager cleanup ---------------------------------------------- */

static long wrong_restores;

static NOINLINE uint64_t mon_load_area(uint64_t *d, unsigned n) {
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++) x ^= vmsrs_load64(d + i);
    return x;
}

static NOINLINE uint64_t plain_load_area(uint64_t *d, unsigned n) {
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++) x ^= *(volatile uint64_t *)(d + i);
    return x;
}

static void run_restore(struct row *restore, struct row *eager, struct row *end_after) {
    memset(restore, 0, sizeof *restore);
    memset(eager, 0, sizeof *eager);
    memset(end_after, 0, sizeof *end_after);
    restore->name = "first normal load of a polluted granule";
    restore->has_plain = 1;
    eager->name = "vmsrs_user_end of faulted user, per granule";
    end_after->name = "  same, all granules already restored";
    long batches = (ops + NG - 1) / NG;
    uint64_t seq = 1;
    uint64_t *d = table + NG;
    for (int k = -1; k < rounds; k++) {
        uint64_t tp = 0, tm = 0, te = 0, ta = 0, wm = 0, we = 0, wa = 0;
        int rc;
        for (long b = 0; b < batches; b++) {
            faulty(C_POLLUTE_FAULT, seq++, NULL, NULL);
            /* plain first: the same lines, just written by the other thread */
            uint64_t t0 = now_ns();
            sink += plain_load_area(d, NG);
            uint64_t t1 = now_ns(), w1 = wall_ns();
            uint64_t x = mon_load_area(d, NG);
            uint64_t t2 = now_ns(), w2 = wall_ns();
            if (x != orig_xor_d) wrong_restores++;
            tp += t1 - t0;
            tm += t2 - t1;
            wm += w2 - w1;
            ta += faulty(C_END, 0, &rc, &wa);
            expect_faulted("vmsrs_user_end of the faulted user", rc);
            te += faulty(C_POLLUTE_FAULT_END, seq++, &rc, &we);
            expect_faulted("vmsrs_user_end of the faulted user", rc);
            if (plain_load_area(d, NG) != orig_xor_d) wrong_restores++;
        }
        if (k < 0) continue;
        double g = (double)(batches * NG);
        restore->plain[k] = (double)tp / g;
        restore->mon[k] = (double)tm / g;
        eager->mon[k] = (double)te / g;
        end_after->mon[k] = (double)ta / g;
        restore->wall[k] = (double)wm / g;
        eager->wall[k] = (double)we / g;
        end_after->wall[k] = (double)wa / g;
    }
    restore->n = eager->n = end_after->n = rounds;
    finish(restore);
    finish(eager);
    finish(end_after);
    print_row(restore);
    print_row(eager);
    print_row(end_after);
}

/* ----- (e) user begin + end ------------------------------------------------------------ */

static void run_user_pair(struct row *r, const char *name, int stores) {
    memset(r, 0, sizeof *r);
    r->name = name;
    long n = ops;
    for (int k = -1; k < rounds; k++) {
        uint64_t t0 = now_ns(), w0 = wall_ns();
        for (long i = 0; i < n; i++) {
            int rc = vmsrs_user_begin();
            if (rc) die("vmsrs_user_begin", rc);
            for (int s = 0; s < stores; s++) vmsrs_store64(table + ((i * 7 + s) & (NG - 1)), i);
            rc = vmsrs_user_end();
            if (rc) die("vmsrs_user_end", rc);
        }
        if (k >= 0) {
            r->wall[k] = (double)(wall_ns() - w0) / (double)n;
            r->mon[k] = (double)(now_ns() - t0) / (double)n;
        }
    }
    r->n = rounds;
    finish(r);
    print_row(r);
}

/* ----- header and summary ------------------------------------------------------------- */

static void header(void) {
    struct utsname u;
    uname(&u);
    printf("== libvmsrs micro-benchmarks (bench_micro) ==\n");
    bench_print_machine();
    printf("kernel    %s %s\n", u.sysname, u.release);
#ifdef VMSRS_DISABLE
    printf("build     VMSRS_DISABLE (every call is the plain access)\n");
#else
    printf("build     libvmsrs, in-process host\n");
#endif
    printf("method    %d rounds x %ld ops, plain and monitored rounds interleaved; medians;\n"
           "          ratio and diff are medians of the per-round values; working set = %u\n"
           "          granules (32 KiB) walked with stride %u, hot = one granule; times are\n"
           "          thread CPU time (CLOCK_THREAD_CPUTIME_ID: preemption by other jobs on\n"
           "          this shared machine excluded), 'mon wall' is the monotonic clock\n",
           rounds, ops, NG, STRIDE);
}

static void bar(const char *name, double v, double limit, const char *note) {
    printf("BAR %-28s median=%.2f bar=%.2f %s%s%s\n", name, v, limit, v <= limit ? "PASS" : "FAIL",
           note ? "  " : "", note ? note : "");
}

static void begin_main_user(void) {
    int rc = vmsrs_user_begin();
    if (rc) die("vmsrs_user_begin", rc);
}

static void end_main_user(void) {
    int rc = vmsrs_user_end();
    if (rc) die("vmsrs_user_end", rc);
}

int main(int argc, char **argv) {
    const char *sections = "abcde";
    int opt;
    while ((opt = getopt(argc, argv, "r:n:fs:")) != -1) {
        switch (opt) {
        case 'r': rounds = atoi(optarg); break;
        case 'n': ops = atol(optarg); break;
        case 'f': real_fault = 1; break;
        case 's': sections = optarg; break;
        default:
            fprintf(stderr,
                    "usage: %s [-r ROUNDS] [-n OPS] [-f] [-s SECTIONS]\n"
                    "  -r rounds (default 21), -n ops per round (default 1048576),\n"
                    "  -f the parked user of (c) and the faulty users of (d) fault with a real\n"
                    "     SIGSEGV instead of vmsrs_crash_suppression,\n"
                    "  -s run only these sections (letters of abcde; for profiling)\n",
                    argv[0]);
            return 2;
        }
    }
    if (rounds < 1) rounds = 1;
    if (rounds > 256) rounds = 256;
    if (ops < (long)NG) ops = NG;
    int sa = strchr(sections, 'a') != NULL, sb = strchr(sections, 'b') != NULL,
        sc = strchr(sections, 'c') != NULL, sd = strchr(sections, 'd') != NULL,
        se = strchr(sections, 'e') != NULL;
    header();

    size_t tbytes = TABLE_GRANULES * sizeof(uint64_t);
    table = mmap(NULL, tbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unmon = mmap(NULL, NG * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED || unmon == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    for (unsigned i = 0; i < TABLE_GRANULES; i++) table[i] = 0x5151000000000000ull + i;
    for (unsigned i = NG; i < 2 * NG; i++) orig_xor_d ^= table[i];

    int rc = vmsrs_init_profile(NULL);
    if (rc) die("vmsrs_init_profile", rc);
    rc = vmsrs_profile(table, tbytes, "bench_table");
    if (rc) die("vmsrs_profile", rc);

    pthread_t th;
    if (pthread_create(&th, NULL, faulty_thread, NULL) != 0) die("pthread_create", -errno);

    static struct row st_ws, st_hot, st_as16, st_st16, st_first, ld_ws, ld_hot, cl_ws, cl_hot, rs, eg, ea, um_st,
        um_ld, pair0, pair1;

    if (sa) { /* (a) stores: no user faulted; the main thread runs one normal user */
        print_head("(a) monitored 8-byte store, normal user, no user faulted");
        begin_main_user();
        run_pair(&st_ws, "store64, working set (same user rewrites)", plain_store_ws,
                 mon_store_ws, table);
        run_pair(&st_hot, "store64, hot granule", plain_store_hot, mon_store_hot, table + 3);
        run_pair(&st_as16, "assign 16 bytes (vmsrs_assign), working set", plain_assign_ws,
                 mon_assign_ws, table);
        run_pair(&st_st16, "store 16 bytes (vmsrs_store), working set", plain_store16_ws,
                 mon_store16_ws, table);
        end_main_user();
        run_first_store(&st_first);
    }

    if (sb) {
        print_head("(b) monitored 8-byte load, no user faulted");
        begin_main_user();
        run_pair(&ld_ws, "load64, working set", plain_load_ws, mon_load_ws, table);
        run_pair(&ld_hot, "load64, hot granule", plain_load_hot, mon_load_hot, table + 3);
        end_main_user();
    }

    if (sc) { /* another user is faulted and parked (not ended) while we load clean granules */
        print_head(real_fault
                       ? "(c) load of a clean granule while another user is faulted (real SIGSEGV)"
                       : "(c) load of a clean granule while another user is faulted");
        begin_main_user();
        faulty(C_PARK, 0, NULL, NULL);
        struct vmsrs_stats s0;
        if (vmsrs_stats(&s0) == 0 && s0.users_suppressed_now != 1)
            printf("  warning: %llu users suppressed, expected 1\n",
                   (unsigned long long)s0.users_suppressed_now);
        run_pair(&cl_ws, "load64 clean, working set", plain_load_ws, mon_load_ws, table);
        run_pair(&cl_hot, "load64 clean, hot granule", plain_load_hot, mon_load_hot, table + 3);
        faulty(C_END, 0, &rc, NULL);
        expect_faulted("vmsrs_user_end of the parked user", rc);
        end_main_user();
    }

    if (sd) { /* a fresh faulty user per batch pollutes NG granules and faults */
        printf("\n(d) restoration, %u granules polluted per faulted user, %ld users per round\n",
               NG, (ops + NG - 1) / NG);
        print_head("    (plain = plain load of the same polluted granules, same batch)");
        begin_main_user();
        run_restore(&rs, &eg, &ea);
        end_main_user();
        if (wrong_restores)
            printf("  WARNING: %ld batches read a value other than the profiled one (G3)\n",
                   wrong_restores);
    }

    if (se) {
        print_head("(e) references");
        begin_main_user();
        run_pair(&um_st, "store64 on an unmonitored address, working set", plain_store_ws,
                 mon_store_ws, unmon);
        run_pair(&um_ld, "load64 on an unmonitored address, working set", plain_load_ws,
                 mon_load_ws, unmon);
        end_main_user();
        run_user_pair(&pair0, "vmsrs_user_begin + vmsrs_user_end", 0);
        run_user_pair(&pair1, "  begin + 1 monitored store + end (commit)", 1);
    }

    faulty(C_QUIT, 0, NULL, NULL);
    pthread_join(th, NULL);

    struct vmsrs_stats s;
    if (vmsrs_stats(&s) == 0)
        printf("\nlibvmsrs stats: users begun %llu, faulted %llu, collected %llu, restorations %llu,\n"
               "  history entries now %llu, unrecorded stores %llu, corruptions %llu\n",
               (unsigned long long)s.users_begun, (unsigned long long)s.users_faulted,
               (unsigned long long)s.users_collected, (unsigned long long)s.restorations,
               (unsigned long long)s.history_entries, (unsigned long long)s.unrecorded_stores,
               (unsigned long long)s.corruptions);
    double load[3] = { 0, 0, 0 };
    getloadavg(load, 3);
    printf("loadavg   %.2f %.2f %.2f at end\n", load[0], load[1], load[2]);

    char note[160];
    printf("\n== summary: bench_micro (medians of thread CPU ns/op; bars from DESIGN.md §8) ==\n");
    if (sa) {
        bar("store_ns", st_ws.med_mon, 20, "working set, same user");
        bar("store_hot_ns", st_hot.med_mon, 20, "hot granule");
        bar("store_first_ns", st_first.med_mon, 20, "first store of a fresh user");
    }
    if (sb) {
        snprintf(note, sizeof note, "= 1.1 x plain %.2f + 2; working set", ld_ws.med_plain);
        bar("load_ns", ld_ws.med_mon, 1.1 * ld_ws.med_plain + 2, note);
        snprintf(note, sizeof note, "= 1.1 x plain %.2f + 2; hot granule", ld_hot.med_plain);
        bar("load_hot_ns", ld_hot.med_mon, 1.1 * ld_hot.med_plain + 2, note);
    }
    if (sc) {
        bar("load_clean_faulted_ns", cl_ws.med_mon, 25, "working set, one user parked");
        bar("load_clean_faulted_hot_ns", cl_hot.med_mon, 25, "hot granule, one user parked");
    }
    if (sd) {
        bar("restore_ns_per_granule", rs.med_mon, 300,
            wrong_restores ? "WRONG VALUES SEEN" : "values checked against G3");
        printf("INFO %-27s median=%.2f\n", "eager_cleanup_ns_per_granule", eg.med_mon);
        printf("INFO %-27s median=%.2f\n", "end_after_restore_ns_per_g", ea.med_mon);
    }
    if (se) {
        printf("INFO %-27s median=%.2f plain=%.2f\n", "unmonitored_store_ns", um_st.med_mon,
               um_st.med_plain);
        printf("INFO %-27s median=%.2f plain=%.2f\n", "unmonitored_load_ns", um_ld.med_mon,
               um_ld.med_plain);
        printf("INFO %-27s median=%.2f\n", "user_begin_end_ns", pair0.med_mon);
        printf("INFO %-27s median=%.2f\n", "user_begin_store_end_ns", pair1.med_mon);
    }
    return 0;
}
