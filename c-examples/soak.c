/*
 * soak.c -- fault-injection soak of libvmsrs with an exact ledger oracle (DESIGN §9).
 *
 * A bank of accounts lives in monitored memory: an array of 32-byte `struct account` and,
 * beside it, an array of 21-byte packed records (`struct prec`, 3/5/6-byte fields at odd
 * offsets, so records and fields straddle 8-byte granules and neighbouring accounts' records
 * share granules). Worker threads (64 by default) run transactions, one libvmsrs user each,
 * under strict two-phase locking (one mutex per account, taken in index order, released after
 * the user's end point), so every run is serialisable and the oracle is exact:
 *
 *   normal   transfer between 2-4 accounts (the total balance is invariant), bump each
 *            account's sequence counters, XOR a transaction hash in, and rewrite the packed
 *            record; commits (vmsrs_user_end() == 0).
 *   fault    read 1-4 accounts, write poison (0xBD bytes, whole fields or single bytes) into
 *            them, then fault with one of the kinds below. Under VMSRS_POLICY=oblivious the
 *            fault is skipped and the user runs on suppressed: it writes more poison (into its
 *            shadow), sometimes faults a second time, and must read back exactly its own
 *            view (G4); its end point must report
 *            VMSRS_FAULTED. Under unwind (and for ud2 always) it comes back to
 *            VMSRS_USER_BEGIN() with VMSRS_FAULTED. Still holding the locks, a fresh user
 *            then reads the accounts: they must hold exactly the pre-transaction values (G1,
 *            G3, G7).
 *
 * Oracles: (1) `truth`, a plain copy of the bank updated after each commit under the same
 * locks: every monitored read of every transaction must equal it byte for byte, so a poison
 * byte, a lost update or a stale restore is caught at once; (2) each thread's ledger of its
 * committed effects: after the join the bank (read through monitored loads, and raw) must be
 * exactly initial + the sum of all ledgers; (3) the total balance, checked by audits of the
 * whole bank while the workers run; (4) vmsrs_stats (one contained fault per injected one,
 * every faulted user collected, no live user, no history, no exposure: under two-phase locking
 * nobody reads a live user's writes) and exactly one "contained" report per fault -- so a ud2
 * that the oblivious policy skips (DESIGN §5 says it must unwind) is a failure; (5) RSS growth
 * over the run below --rss-limit-mib (64).
 *
 * Fault kinds (each injected --faults times, spread over the threads):
 *   null_load   load of 1/2/4/8/16 bytes in the NULL page
 *   null_store  store of 1/2/4/8 bytes in the NULL page
 *   wild_store  store to never-mapped memory: a PROT_NONE reservation, the kernel half,
 *               a non-canonical address
 *   fpe         integer division by zero / INT_MIN / -1 (32 and 64 bit) through volatiles
 *   ud2         __builtin_trap()
 *   bus         load/store in a page of a memfd mapping truncated to 0 bytes (SIGBUS)
 *   explicit    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, ...)
 *   bounds      vmsrs_ptr_check / vmsrs_ptr_add leaving a profiled range
 * and, only when named in --kinds (library-side bad pointers, each the user's contained fault):
 *   lib_memcpy_src  vmsrs_memcpy(profiled, (void *)16, 8)
 *   lib_memcpy_dst  vmsrs_memcpy((void *)16, profiled, 8)
 *   lib_store_src   vmsrs_store(profiled, (void *)16, 8)
 *   lib_assign_src  vmsrs_assign(profiled, (void *)16, 8)
 *   lib_load_dst    vmsrs_load((void *)16, profiled, 8) by a normal user
 *   lib_load_dst_s  the same by a user already suppressed (explicitly)
 *   lib_memset_dst  vmsrs_memset((void *)16, 0, 8)
 *
 * Built with -DVMSRS_DISABLE no fault can be contained, so nothing is injected: fault
 * transactions read, do not write, and end (the timing baseline of the same workload).
 *
 * Usage: soak [--threads N] [--accounts N] [--faults N] [--normal N] [--kinds LIST]
 *             [--seed N] [--rss-limit-mib N] [--raw-stderr] [--quiet]
 *   --faults N   faults of each kind (default 10000)  --normal N  normal transactions (2000000)
 *   --kinds LIST comma list of kinds; "default" (the 8 above), "lib" (the lib_* ones), "all"
 *   --raw-stderr leave libvmsrs's fault reports on stderr (default: counted and dropped)
 * Exit 0 and "soak: PASS" when every check held; 1 on any violation; 2 on bad usage.
 */
#define _GNU_SOURCE
#include "vmsrs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- the bank ---------------------------------------------------------------------------- */

struct account {      /* 32 bytes, 8-aligned: one account never shares a granule */
    uint64_t balance; /* < 2^39, so a poisoned (0xBD...) balance is never a real one */
    uint64_t seq;     /* commits that touched the account */
    uint64_t xh;      /* XOR of the hashes of those commits */
    uint32_t sum32;   /* sum of the amounts moved in or out, mod 2^32 */
    uint16_t cnt16;   /* seq mod 2^16 */
    uint8_t tag;      /* account index mod 256, constant */
    uint8_t flags;    /* constant */
};

struct __attribute__((packed)) prec { /* 21 bytes: records start at every offset mod 8 */
    uint8_t tag;                      /* index mod 256 */
    uint8_t cnt[3];                   /* seq mod 2^24 */
    uint8_t bal[5];                   /* balance mod 2^40 */
    uint8_t hash[6];                  /* (xh >> 16) mod 2^48 */
    uint16_t sum16;                   /* sum32 mod 2^16 */
    uint32_t chk;                     /* FNV-1a of the 17 bytes above */
};
_Static_assert(sizeof(struct account) == 32, "account layout");
_Static_assert(sizeof(struct prec) == 21, "prec layout");

struct field {
    unsigned off, len;
};
static const struct field ACC_F[] = {{0, 8}, {8, 8}, {16, 8}, {24, 4}, {28, 2}, {30, 1}, {31, 1}};
static const struct field PREC_F[] = {{0, 1}, {1, 3}, {4, 5}, {9, 6}, {15, 2}, {17, 4}};
static const char *const ACC_FN[] = {"balance", "seq", "xh", "sum32", "cnt16", "tag", "flags"};
static const char *const PREC_FN[] = {"p.tag", "p.cnt", "p.bal", "p.hash", "p.sum16", "p.chk"};
#define N_ACC_F 7
#define N_PREC_F 6

#define MAX_ACCOUNTS 4096
#define POISON 0xBD

static struct account bank[MAX_ACCOUNTS] __attribute__((aligned(64)));
/* The packed records start 3 bytes into a granule (the 3 lead bytes are not profiled). */
static struct __attribute__((packed, aligned(64))) {
    uint8_t lead[3];
    struct prec r[MAX_ACCOUNTS];
} precs_area;
#define precs (precs_area.r)

/* Oracle state, plain memory (never profiled). */
static struct account truth[MAX_ACCOUNTS];
static struct prec truth_p[MAX_ACCOUNTS];
static struct account init_acc[MAX_ACCOUNTS];
static pthread_mutex_t locks[MAX_ACCOUNTS];

/* ---- configuration ----------------------------------------------------------------------- */

enum kind {
    K_NULL_LOAD,
    K_NULL_STORE,
    K_WILD_STORE,
    K_FPE,
    K_UD2,
    K_BUS,
    K_EXPLICIT,
    K_BOUNDS,
    K_LIB_MEMCPY_SRC,
    K_LIB_MEMCPY_DST,
    K_LIB_STORE_SRC,
    K_LIB_ASSIGN_SRC,
    K_LIB_LOAD_DST,
    K_LIB_LOAD_DST_S,
    K_LIB_MEMSET_DST,
    N_KINDS
};
static const char *const KIND_NAME[N_KINDS] = {
    "null_load",      "null_store",    "wild_store",     "fpe",          "ud2",
    "bus",            "explicit",      "bounds",         "lib_memcpy_src", "lib_memcpy_dst",
    "lib_store_src",  "lib_assign_src", "lib_load_dst",  "lib_load_dst_s", "lib_memset_dst",
};
/* The signal libvmsrs reports for each kind (0: an explicit entry, "contained explicit"). */
static const int KIND_SIG[N_KINDS] = {SIGSEGV, SIGSEGV, SIGSEGV, SIGFPE, SIGILL,  SIGBUS,
                                      0,       0,       SIGSEGV, SIGSEGV, SIGSEGV, SIGSEGV,
                                      SIGSEGV, SIGSEGV, SIGSEGV};
#define FIRST_LIB_KIND K_LIB_MEMCPY_SRC

static int n_threads = 64;
static int n_accounts = 192;
static long faults_per_kind = 10000;
static long n_normal = 2000000;
static uint64_t seed = 0x50a4;
static long rss_limit_mib = 64;
static int raw_stderr;
static int quiet;
static int enabled_kind[N_KINDS];
static int oblivious = 1; /* from VMSRS_POLICY; -1 in the disabled build */
#define POLICY_NAME (oblivious < 0 ? "none" : oblivious ? "oblivious" : "unwind")

/* ---- violations -------------------------------------------------------------------------- */

static atomic_long violations;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static void violation(const char *fmt, ...) {
    long n = atomic_fetch_add(&violations, 1);
    if (n >= 40) return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&print_lock);
    printf("soak: VIOLATION: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&print_lock);
    va_end(ap);
}

__attribute__((format(printf, 1, 2), noreturn)) static void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("soak: FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    exit(1);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t mix64(uint64_t x) {
    uint64_t s = x;
    return splitmix(&s);
}

static void put_le(uint8_t *p, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The packed record an account's fields determine. */
static struct prec derive_prec(unsigned i, const struct account *a) {
    struct prec p;
    memset(&p, 0, sizeof p);
    p.tag = (uint8_t)i;
    put_le(p.cnt, a->seq, 3);
    put_le(p.bal, a->balance, 5);
    put_le(p.hash, a->xh >> 16, 6);
    p.sum16 = (uint16_t)a->sum32;
    p.chk = fnv1a((const uint8_t *)&p, 17);
    return p;
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static long hwm_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define BARRIER() __asm__ volatile("" ::: "memory")

/* ---- workers ----------------------------------------------------------------------------- */

struct ledger {
    int64_t dbal;
    uint64_t commits;
    uint64_t xh;
    uint32_t sum32;
};

struct worker {
    int id;
    pthread_t thread;
    uint64_t rng;
    long todo_normal;
    long todo_fault[N_KINDS];
    /* Transaction state. Written between VMSRS_USER_BEGIN() and a fault that may unwind to
     * it, so it lives here (memory reached through a pointer), never in clobberable locals. */
    unsigned acc[4];
    int k;
    volatile int nheld;
    struct account view[4]; /* this user's own view (for the G4 check after an oblivious skip) */
    struct prec view_p[4];
    struct account next[4];
    struct prec next_p[4];
    int64_t moved[4];
    uint64_t txn_hash;
    /* Results. */
    long committed, aborted_baseline, reads_checked;
    long faulted[N_KINDS];
    long via_skip[N_KINDS], via_unwind[N_KINDS];
    long lib_not_faulted[N_KINDS];
    long second[N_KINDS]; /* second faults of an already suppressed user (oblivious) */
    struct ledger *ledger;
};

static struct worker *workers;
static atomic_long progress;
static atomic_int workers_done;

static uint64_t rnd(struct worker *w) { return splitmix(&w->rng); }

/* Pick k distinct accounts, sorted. */
static void pick(struct worker *w, int k) {
    w->k = 0;
    while (w->k < k) {
        unsigned a = (unsigned)(rnd(w) % (unsigned)n_accounts);
        /* Favour neighbours of an account already chosen: their packed records share granules. */
        if (w->k > 0 && rnd(w) % 3 == 0) a = (w->acc[0] + 1 + (unsigned)(rnd(w) % 2)) % (unsigned)n_accounts;
        int dup = 0;
        for (int j = 0; j < w->k; j++) dup |= w->acc[j] == a;
        if (dup) continue;
        int j = w->k++;
        while (j > 0 && w->acc[j - 1] > a) {
            w->acc[j] = w->acc[j - 1];
            j--;
        }
        w->acc[j] = a;
    }
}

static void lock_all(struct worker *w) {
    for (int j = 0; j < w->k; j++) {
        pthread_mutex_lock(&locks[w->acc[j]]);
        w->nheld = j + 1;
    }
}

static void unlock_all(struct worker *w) {
    for (int j = w->nheld - 1; j >= 0; j--) pthread_mutex_unlock(&locks[w->acc[j]]);
    w->nheld = 0;
}

/* Monitored read of n bytes of the bank into a plain buffer, by one of many routes. */
static void rd(struct worker *w, void *dst, const void *src, unsigned n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    switch (rnd(w) % 6) {
    case 0:
        if (vmsrs_load(d, s, n) != 0) violation("vmsrs_load failed");
        break;
    case 1:
        if (vmsrs_memcpy(d, s, n) != d) violation("vmsrs_memcpy (read) failed");
        break;
    case 2:
        if (vmsrs_assign(d, s, n) != 0) violation("vmsrs_assign (read) failed");
        break;
    case 3:
        if (vmsrs_memmove(d, s, n) != d) violation("vmsrs_memmove (read) failed");
        break;
    case 4: /* scalar loads of the widest size that fits, any alignment */
        for (unsigned o = 0; o < n;) {
            unsigned left = n - o;
            if (left >= 8) {
                uint64_t v = vmsrs_load64((const uint64_t *)(const void *)(s + o));
                memcpy(d + o, &v, 8);
                o += 8;
            } else if (left >= 4) {
                uint32_t v = vmsrs_load32((const uint32_t *)(const void *)(s + o));
                memcpy(d + o, &v, 4);
                o += 4;
            } else if (left >= 2) {
                uint16_t v = vmsrs_load16((const uint16_t *)(const void *)(s + o));
                memcpy(d + o, &v, 2);
                o += 2;
            } else {
                d[o] = vmsrs_load8(s + o);
                o += 1;
            }
        }
        break;
    default:
        for (unsigned o = 0; o < n; o++) d[o] = vmsrs_load8(s + o);
        break;
    }
}

/* Monitored write of n bytes from a plain buffer into the bank, by one of many routes. */
static void wr(struct worker *w, void *dst, const void *src, unsigned n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    int same = 1;
    for (unsigned o = 1; o < n; o++) same &= s[o] == s[0];
    switch (rnd(w) % 7) {
    case 0:
        if (vmsrs_store(d, s, n) != 0) violation("vmsrs_store failed");
        break;
    case 1:
        if (vmsrs_memcpy(d, s, n) != d) violation("vmsrs_memcpy (write) failed");
        break;
    case 2:
        if (vmsrs_assign(d, s, n) != 0) violation("vmsrs_assign (write) failed");
        break;
    case 3:
        if (vmsrs_memmove(d, s, n) != d) violation("vmsrs_memmove (write) failed");
        break;
    case 4: /* scalar stores, widest first, or narrowest first */
        for (unsigned o = 0; o < n;) {
            unsigned left = n - o;
            if (left >= 8) {
                uint64_t v;
                memcpy(&v, s + o, 8);
                vmsrs_store64((uint64_t *)(void *)(d + o), v);
                o += 8;
            } else if (left >= 4) {
                uint32_t v;
                memcpy(&v, s + o, 4);
                vmsrs_store32((uint32_t *)(void *)(d + o), v);
                o += 4;
            } else if (left >= 2) {
                uint16_t v;
                memcpy(&v, s + o, 2);
                vmsrs_store16((uint16_t *)(void *)(d + o), v);
                o += 2;
            } else {
                vmsrs_store8(d + o, s[o]);
                o += 1;
            }
        }
        break;
    case 5:
        if (same) {
            if (vmsrs_memset(d, s[0], n) != d) violation("vmsrs_memset failed");
            break;
        }
        /* fall through */
    default:
        for (unsigned o = n; o-- > 0;) vmsrs_store8(d + o, s[o]);
        break;
    }
}

static void read_account(struct worker *w, unsigned i, struct account *a, struct prec *p) {
    switch (rnd(w) % 4) {
    case 0:
        *a = VMSRS_GET(bank[i]);
        break;
    case 1:
        rd(w, a, &bank[i], sizeof *a);
        break;
    case 2:
        a->balance = VMSRS_GET(bank[i].balance);
        a->seq = vmsrs_load64(&bank[i].seq);
        a->xh = VMSRS_GET(bank[i].xh);
        a->sum32 = vmsrs_load32(&bank[i].sum32);
        a->cnt16 = vmsrs_load16(&bank[i].cnt16);
        a->tag = VMSRS_GET(bank[i].tag);
        a->flags = vmsrs_load8(&bank[i].flags);
        break;
    default:
        for (int f = 0; f < N_ACC_F; f++)
            rd(w, (uint8_t *)a + ACC_F[f].off, (uint8_t *)&bank[i] + ACC_F[f].off, ACC_F[f].len);
        break;
    }
    if (rnd(w) % 2) {
        rd(w, p, &precs[i], sizeof *p);
    } else {
        for (int f = 0; f < N_PREC_F; f++)
            rd(w, (uint8_t *)p + PREC_F[f].off, (uint8_t *)&precs[i] + PREC_F[f].off, PREC_F[f].len);
    }
}

/* Write the fields of account i selected by the masks (bit f: field f). */
static void write_account(struct worker *w, unsigned i, const struct account *a, const struct prec *p,
                          unsigned amask, unsigned pmask) {
    if (amask == (1u << N_ACC_F) - 1 && rnd(w) % 3 == 0) {
        if (rnd(w) % 2)
            VMSRS_SET(bank[i], *a);
        else
            wr(w, &bank[i], a, sizeof *a);
    } else {
        for (int f = 0; f < N_ACC_F; f++)
            if (amask & (1u << f))
                wr(w, (uint8_t *)&bank[i] + ACC_F[f].off, (const uint8_t *)a + ACC_F[f].off, ACC_F[f].len);
    }
    if (pmask == (1u << N_PREC_F) - 1 && rnd(w) % 3 == 0) {
        wr(w, &precs[i], p, sizeof *p);
    } else {
        for (int f = N_PREC_F; f-- > 0;)
            if (pmask & (1u << f))
                wr(w, (uint8_t *)&precs[i] + PREC_F[f].off, (const uint8_t *)p + PREC_F[f].off, PREC_F[f].len);
    }
}

static int all_poison(const uint8_t *p, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        if (p[i] != POISON) return 0;
    return 1;
}

/* Compare what a user read with what it must see; report each differing field. */
static int compare(const char *when, unsigned i, const struct account *got, const struct prec *gotp,
                   const struct account *want, const struct prec *wantp) {
    int bad = 0;
    for (int f = 0; f < N_ACC_F; f++) {
        const uint8_t *g = (const uint8_t *)got + ACC_F[f].off, *e = (const uint8_t *)want + ACC_F[f].off;
        if (memcmp(g, e, ACC_F[f].len) != 0) {
            bad = 1;
            violation("%s: account %u %s = %#llx, expected %#llx%s", when, i, ACC_FN[f],
                      (unsigned long long)get_le(g, ACC_F[f].len), (unsigned long long)get_le(e, ACC_F[f].len),
                      all_poison(g, ACC_F[f].len) ? " (POISON of a faulted user)" : "");
        }
    }
    for (int f = 0; f < N_PREC_F; f++) {
        const uint8_t *g = (const uint8_t *)gotp + PREC_F[f].off, *e = (const uint8_t *)wantp + PREC_F[f].off;
        if (memcmp(g, e, PREC_F[f].len) != 0) {
            bad = 1;
            int some_poison = 0;
            for (unsigned b = 0; b < PREC_F[f].len; b++) some_poison |= g[b] == POISON && e[b] != POISON;
            violation("%s: account %u %s = %#llx, expected %#llx%s", when, i, PREC_FN[f],
                      (unsigned long long)get_le(g, PREC_F[f].len), (unsigned long long)get_le(e, PREC_F[f].len),
                      some_poison ? " (a POISON byte of a faulted user)" : "");
        }
    }
    return bad;
}

/* Read the transaction's accounts and check them against the truth (caller holds the locks). */
static void read_and_check(struct worker *w, const char *when) {
    for (int j = 0; j < w->k; j++) {
        unsigned i = w->acc[j];
        struct account a;
        struct prec p;
        read_account(w, i, &a, &p);
        w->reads_checked++;
        compare(when, i, &a, &p, &truth[i], &truth_p[i]);
        w->view[j] = truth[i];
        w->view_p[j] = truth_p[i];
    }
}

/* ---- normal transactions ----------------------------------------------------------------- */

static void txn_normal(struct worker *w) {
    pick(w, 2 + (int)(rnd(w) % 3));
    lock_all(w);
    w->txn_hash = mix64(((uint64_t)w->id << 40) ^ (uint64_t)w->committed ^ (rnd(w) << 20));
    int rc = VMSRS_USER_BEGIN();
    if (rc == VMSRS_FAULTED) {
        violation("thread %d: a normal transaction was unwound (it never faulted)", w->id);
        unlock_all(w);
        return;
    }
    if (rc != 0) fatal("VMSRS_USER_BEGIN: %s", vmsrs_strerror(rc));
    read_and_check(w, "normal user read");

    /* Move money from the first chosen account (or a random one) to the others. */
    int src = (int)(rnd(w) % (unsigned)w->k);
    uint64_t avail = w->view[src].balance;
    for (int j = 0; j < w->k; j++) w->moved[j] = 0;
    for (int j = 0; j < w->k; j++) {
        if (j == src) continue;
        uint64_t amt = avail == 0 ? 0 : rnd(w) % (avail / (unsigned)w->k + 1);
        if (amt > 5000) amt %= 5000;
        avail -= amt;
        w->moved[j] += (int64_t)amt;
        w->moved[src] -= (int64_t)amt;
    }
    for (int j = 0; j < w->k; j++) {
        unsigned i = w->acc[j];
        struct account n = w->view[j];
        n.balance = (uint64_t)((int64_t)n.balance + w->moved[j]);
        n.seq += 1;
        n.xh ^= w->txn_hash;
        n.sum32 += (uint32_t)(w->moved[j] < 0 ? -w->moved[j] : w->moved[j]);
        n.cnt16 = (uint16_t)n.seq;
        w->next[j] = n;
        w->next_p[j] = derive_prec(i, &n);
        /* Every field that changes, plus (sometimes) the constant ones, rewritten. */
        unsigned amask = 0x1F | (rnd(w) % 4 == 0 ? 0x60 : 0);
        unsigned pmask = 0x3E | (rnd(w) % 4 == 0 ? 0x01 : 0);
        write_account(w, i, &w->next[j], &w->next_p[j], amask, pmask);
    }
    if (rnd(w) % 4 == 0) { /* a user reads its own writes */
        for (int j = 0; j < w->k; j++) {
            struct account a;
            struct prec p;
            read_account(w, w->acc[j], &a, &p);
            compare("normal user reading its own writes", w->acc[j], &a, &p, &w->next[j], &w->next_p[j]);
        }
    }
    rc = vmsrs_user_end();
    if (rc != 0) {
        violation("thread %d: a normal transaction's end point returned %d (%s)", w->id, rc, vmsrs_strerror(rc));
    } else {
        for (int j = 0; j < w->k; j++) {
            unsigned i = w->acc[j];
            truth[i] = w->next[j];
            truth_p[i] = w->next_p[j];
            struct ledger *l = &w->ledger[i];
            l->dbal += w->moved[j];
            l->commits += 1;
            l->xh ^= w->txn_hash;
            l->sum32 += (uint32_t)(w->moved[j] < 0 ? -w->moved[j] : w->moved[j]);
        }
        w->committed++;
    }
    unlock_all(w);
}

/* ---- fault injection --------------------------------------------------------------------- */

static volatile uintptr_t v_null = 0;
static volatile int32_t v_zero32 = 0;
static volatile int64_t v_zero64 = 0;
static volatile int32_t v_m1_32 = -1;
static volatile int64_t v_m1_64 = -1;
static volatile int32_t v_min32 = INT32_MIN;
static volatile int64_t v_min64 = INT64_MIN;
static volatile uint64_t sink;
static uint8_t *prot_none;     /* a 1 MiB PROT_NONE reservation */
static uint8_t *bus_page;      /* a page of a memfd truncated to 0 bytes */
static void *volatile bad_ptr; /* (void *)16 for the library-side kinds */

__attribute__((noinline)) static void do_null_load(uint64_t r) {
    uintptr_t p = v_null + (r >> 8) % 4000;
    switch (r % 5) {
    case 0: sink = *(volatile uint8_t *)p; break;
    case 1: sink = *(volatile uint16_t *)p; break;
    case 2: sink = *(volatile uint32_t *)p; break;
    case 3: sink = *(volatile uint64_t *)p; break;
    default: {
        uint64_t lo;
        __asm__ volatile("movdqu (%1), %%xmm1\n\tmovq %%xmm1, %0" : "=r"(lo) : "r"(p) : "xmm1", "memory");
        sink = lo;
        break;
    }
    }
}

__attribute__((noinline)) static void do_null_store(uint64_t r) {
    uintptr_t p = v_null + (r >> 8) % 4000;
    switch (r % 4) {
    case 0: *(volatile uint8_t *)p = (uint8_t)r; break;
    case 1: *(volatile uint16_t *)p = (uint16_t)r; break;
    case 2: *(volatile uint32_t *)p = (uint32_t)r; break;
    default: *(volatile uint64_t *)p = r; break;
    }
}

__attribute__((noinline)) static void do_wild_store(uint64_t r) {
    uintptr_t p;
    switch (r % 3) {
    case 0: p = (uintptr_t)prot_none + (r >> 8) % ((1u << 20) - 8); break;
    case 1: p = 0xffff900000000000ull + ((r >> 8) & 0xffffff8ull); break; /* kernel half */
    default: p = 0x0000900000000000ull + ((r >> 8) & 0xffffff8ull) + (v_null << 1); break;
    }
    if (r % 3 == 2) p ^= 0x8000000000000000ull; /* non-canonical: #GP */
    switch ((r >> 4) % 4) {
    case 0: *(volatile uint8_t *)p = (uint8_t)r; break;
    case 1: *(volatile uint16_t *)p = (uint16_t)r; break;
    case 2: *(volatile uint32_t *)p = (uint32_t)r; break;
    default: *(volatile uint64_t *)p = r; break;
    }
}

__attribute__((noinline)) static void do_fpe(uint64_t r) {
    switch (r % 4) {
    case 0: sink = (uint64_t)(int64_t)((int32_t)r / v_zero32); break;
    case 1: sink = (uint64_t)((int64_t)r / v_zero64); break;
    case 2: sink = (uint64_t)(int64_t)(v_min32 / v_m1_32); break;
    default: sink = (uint64_t)(v_min64 / v_m1_64); break;
    }
}

__attribute__((noinline)) static void do_ud2(void) { __builtin_trap(); }

__attribute__((noinline)) static void do_bus(uint64_t r) {
    volatile uint8_t *p = bus_page + (r >> 8) % 4088;
    if (r % 2)
        sink = *(volatile uint64_t *)p;
    else
        *(volatile uint32_t *)p = (uint32_t)r;
}

/* Inject the fault; returns only if the user runs on (oblivious skip, explicit entry). */
static void inject(struct worker *w, int kind) {
    uint64_t r = rnd(w);
    unsigned i = w->acc[0];
    BARRIER();
    switch (kind) {
    case K_NULL_LOAD: do_null_load(r); break;
    case K_NULL_STORE: do_null_store(r); break;
    case K_WILD_STORE: do_wild_store(r); break;
    case K_FPE: do_fpe(r); break;
    case K_UD2: do_ud2(); break;
    case K_BUS: do_bus(r); break;
    case K_EXPLICIT: {
        int rc = vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, &bank[i]);
        if (rc != 0) violation("vmsrs_crash_suppression: %s", vmsrs_strerror(rc));
        break;
    }
    case K_BOUNDS:
        if (r % 2) {
            int rc = vmsrs_ptr_check(&bank[n_accounts - 1], 2 * sizeof(struct account));
            if (rc != VMSRS_ERANGE) violation("vmsrs_ptr_check past the range returned %d", rc);
        } else {
            void *p = vmsrs_ptr_add(&precs[0], -(ptrdiff_t)(1 + r % 8));
            if (p != NULL || vmsrs_last_error() != VMSRS_ERANGE)
                violation("vmsrs_ptr_add before the range returned %p (%d)", p, vmsrs_last_error());
        }
        break;
    case K_LIB_MEMCPY_SRC: (void)vmsrs_memcpy(&bank[i].xh, bad_ptr, 8); break;
    case K_LIB_MEMCPY_DST: (void)vmsrs_memcpy(bad_ptr, &bank[i].xh, 8); break;
    case K_LIB_STORE_SRC: (void)vmsrs_store(&bank[i].xh, bad_ptr, 8); break;
    case K_LIB_ASSIGN_SRC: (void)vmsrs_assign(&bank[i].xh, bad_ptr, 8); break;
    case K_LIB_LOAD_DST: (void)vmsrs_load(bad_ptr, &bank[i].xh, 8); break;
    case K_LIB_LOAD_DST_S:
        (void)vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
        (void)vmsrs_load(bad_ptr, &bank[i].xh, 8);
        break;
    case K_LIB_MEMSET_DST: (void)vmsrs_memset(bad_ptr, 0, 8); break;
    default: break;
    }
    BARRIER();
}

/* Poison: write 0xBD into a random selection of the fields (or single bytes) of each of the
 * transaction's accounts, and keep this user's view of them. */
static void write_poison(struct worker *w) {
    for (int j = 0; j < w->k; j++) {
        unsigned i = w->acc[j];
        struct account pa;
        struct prec pp;
        memset(&pa, POISON, sizeof pa);
        memset(&pp, POISON, sizeof pp);
        uint64_t r = rnd(w);
        if (r % 5 == 0) { /* one byte of a packed record (byte-precise restore) */
            unsigned b = (unsigned)((r >> 8) % sizeof(struct prec));
            vmsrs_store8((uint8_t *)&precs[i] + b, POISON);
            ((uint8_t *)&w->view_p[j])[b] = POISON;
            continue;
        }
        unsigned amask = (unsigned)(r >> 8) & 0x7F, pmask = (unsigned)(r >> 16) & 0x3F;
        if (amask == 0 && pmask == 0) amask = 1;
        if (r % 7 == 0) amask = 0x7F, pmask = 0x3F;
        write_account(w, i, &pa, &pp, amask, pmask);
        for (int f = 0; f < N_ACC_F; f++)
            if (amask & (1u << f)) memset((uint8_t *)&w->view[j] + ACC_F[f].off, POISON, ACC_F[f].len);
        for (int f = 0; f < N_PREC_F; f++)
            if (pmask & (1u << f)) memset((uint8_t *)&w->view_p[j] + PREC_F[f].off, POISON, PREC_F[f].len);
    }
}

/* After the fault: a new user, still under the locks, must see exactly the truth. */
static void verify_after_fault(struct worker *w, const char *how) {
    int rc = vmsrs_user_begin();
    if (rc != 0) fatal("vmsrs_user_begin: %s", vmsrs_strerror(rc));
    for (int j = 0; j < w->k; j++) {
        unsigned i = w->acc[j];
        struct account a;
        struct prec p;
        read_account(w, i, &a, &p);
        w->reads_checked++;
        compare(how, i, &a, &p, &truth[i], &truth_p[i]);
    }
    rc = vmsrs_user_end();
    if (rc != 0) violation("the verifying user's end point returned %d", rc);
}

static void txn_fault(struct worker *w, int kind) {
    pick(w, 1 + (int)(rnd(w) % 4));
    lock_all(w);
    int rc = VMSRS_USER_BEGIN();
    if (rc == VMSRS_FAULTED) goto unwound;
    if (rc != 0) fatal("VMSRS_USER_BEGIN: %s", vmsrs_strerror(rc));
    read_and_check(w, "faulty user read before its fault");
#ifdef VMSRS_DISABLE
    (void)kind;
    (void)write_poison;
    (void)inject;
    rc = vmsrs_user_end();
    verify_after_fault(w, "baseline re-read");
    w->aborted_baseline++;
    unlock_all(w);
    return;
#else
    write_poison(w);
    inject(w, kind);
    /* Still here: the fault was skipped (oblivious) or entered explicitly. */
    if (!vmsrs_user_suppressed()) {
        if (kind >= FIRST_LIB_KIND) {
            /* The library refused the bad pointer without faulting the user: withdraw the
             * poison explicitly and count it. */
            w->lib_not_faulted[kind]++;
            (void)vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
        } else {
            violation("thread %d: %s ran on and the user is not suppressed", w->id, KIND_NAME[kind]);
        }
    }
    if (kind < FIRST_LIB_KIND) {
        /* Suppressed: more poison goes to this user's shadow, and it reads its own view (G4). */
        if (rnd(w) % 2) write_poison(w);
        /* Sometimes a suppressed user faults again (a signal kind, so only oblivious gets here). */
        if (KIND_SIG[kind] && kind != K_UD2 && rnd(w) % 4 == 0) {
            w->second[kind]++;
            inject(w, kind);
            if (!vmsrs_user_suppressed()) violation("a second %s fault left the user not suppressed", KIND_NAME[kind]);
        }
        for (int j = 0; j < w->k; j++) {
            struct account a;
            struct prec p;
            read_account(w, w->acc[j], &a, &p);
            compare("suppressed user reading its own view (G4)", w->acc[j], &a, &p, &w->view[j], &w->view_p[j]);
        }
    }
    rc = vmsrs_user_end();
    if (rc != VMSRS_FAULTED)
        violation("thread %d: %s: the end point returned %d, not VMSRS_FAULTED", w->id, KIND_NAME[kind], rc);
    w->via_skip[kind]++;
    w->faulted[kind]++;
    verify_after_fault(w, "normal user read after a fault (G1/G3/G7)");
    unlock_all(w);
    return;
#endif
unwound:
    w->via_unwind[kind]++;
    w->faulted[kind]++;
    verify_after_fault(w, "normal user read after an unwound fault (G1/G3/G7)");
    unlock_all(w);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    long left = w->todo_normal;
    for (int k = 0; k < N_KINDS; k++) left += w->todo_fault[k];
    while (left > 0) {
        uint64_t r = rnd(w) % (uint64_t)left;
        if (r < (uint64_t)w->todo_normal) {
            w->todo_normal--;
            txn_normal(w);
        } else {
            r -= (uint64_t)w->todo_normal;
            int k = 0;
            while (r >= (uint64_t)w->todo_fault[k]) r -= (uint64_t)w->todo_fault[k++];
            w->todo_fault[k]--;
            txn_fault(w, k);
        }
        left--;
        atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

/* ---- audits (main thread, while the workers run) ----------------------------------------- */

static uint64_t total_balance;
static long audits;

static void audit(void) {
    for (int i = 0; i < n_accounts; i++) pthread_mutex_lock(&locks[i]);
    int rc = vmsrs_user_begin();
    if (rc != 0) fatal("audit: vmsrs_user_begin: %s", vmsrs_strerror(rc));
    uint64_t sum = 0;
    for (int i = 0; i < n_accounts; i++) {
        struct account a = VMSRS_GET(bank[i]);
        struct prec p;
        if (vmsrs_load(&p, &precs[i], sizeof p) != 0) violation("audit: vmsrs_load failed");
        compare("audit", (unsigned)i, &a, &p, &truth[i], &truth_p[i]);
        sum += a.balance;
    }
    rc = vmsrs_user_end();
    for (int i = n_accounts; i-- > 0;) pthread_mutex_unlock(&locks[i]);
    if (rc != 0) violation("audit: end point returned %d", rc);
    if (sum != total_balance)
        violation("audit: total balance %llu, expected %llu", (unsigned long long)sum,
                  (unsigned long long)total_balance);
    audits++;
}

/* ---- fault reports on stderr -------------------------------------------------------------- */

/* libvmsrs writes each report line with one write(2) to fd 2. Unless --raw-stderr, fd 2 is a
 * pipe read here: "contained SIG..." lines are counted by signal; every other line goes on to
 * the real stderr. */
static int real_stderr = -1, pipe_r = -1, pipe_w = -1;
static pthread_t reader;
static long reports[5]; /* SEGV, BUS, FPE, ILL, explicit */
static long reports_other;
static char pid_prefix[64];

static void count_line(const char *line, size_t n) {
    size_t pl = strlen(pid_prefix);
    if (n >= pl && memcmp(line, pid_prefix, pl) == 0) {
        const char *rest = line + pl;
        size_t rn = n - pl;
        static const char *const names[5] = {"contained SIGSEGV ", "contained SIGBUS ", "contained SIGFPE ",
                                             "contained SIGILL ", "contained explicit "};
        for (int s = 0; s < 5; s++) {
            size_t l = strlen(names[s]);
            if (rn >= l && memcmp(rest, names[s], l) == 0) {
                reports[s]++;
                return;
            }
        }
        if ((rn >= 15 && memcmp(rest, "policy applied:", 15) == 0) || (rn >= 5 && memcmp(rest, "    #", 5) == 0) ||
            (rn >= 8 && memcmp(rest, "SUMMARY:", 8) == 0))
            return;
        if (rn >= 10 && memcmp(rest, "contained ", 10) == 0) reports_other++;
    }
    ssize_t wn = write(real_stderr, line, n);
    (void)wn;
}

static void *reader_main(void *arg) {
    (void)arg;
    static char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(pipe_r, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] == '\n') {
                count_line(buf + start, i + 1 - start);
                start = i + 1;
            }
        }
        if (start == 0 && have == sizeof buf) { /* an overlong line: pass it on */
            count_line(buf, have);
            have = 0;
        } else {
            memmove(buf, buf + start, have - start);
            have -= start;
        }
    }
    if (have) count_line(buf, have);
    return NULL;
}

static void capture_stderr(void) {
    int fds[2];
    snprintf(pid_prefix, sizeof pid_prefix, "==%d==vmsrs: ", (int)getpid());
    if (pipe(fds) != 0) fatal("pipe: %s", strerror(errno));
    (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    pipe_r = fds[0];
    pipe_w = fds[1];
    fflush(stderr);
    real_stderr = dup(2);
    if (real_stderr < 0 || dup2(pipe_w, 2) < 0) fatal("dup: %s", strerror(errno));
    close(pipe_w);
    if (pthread_create(&reader, NULL, reader_main, NULL) != 0) fatal("pthread_create (reader)");
}

static void release_stderr(void) {
    fflush(stderr);
    dup2(real_stderr, 2); /* closes the last write end of the pipe: the reader sees EOF */
    pthread_join(reader, NULL);
}

/* ---- setup, final checks ----------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: soak [--threads N] [--accounts N] [--faults N] [--normal N] [--kinds LIST] "
                    "[--seed N] [--rss-limit-mib N] [--raw-stderr] [--quiet]\n");
    exit(2);
}

static void parse_kinds(const char *list) {
    memset(enabled_kind, 0, sizeof enabled_kind);
    char *dup = strdup(list), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        if (!strcmp(t, "default") || !strcmp(t, "all")) {
            for (int k = 0; k < FIRST_LIB_KIND; k++) enabled_kind[k] = 1;
            found = 1;
        }
        if (!strcmp(t, "lib") || !strcmp(t, "all")) {
            for (int k = FIRST_LIB_KIND; k < N_KINDS; k++) enabled_kind[k] = 1;
            found = 1;
        }
        for (int k = 0; k < N_KINDS; k++)
            if (!strcmp(t, KIND_NAME[k])) enabled_kind[k] = found = 1;
        if (!found) {
            fprintf(stderr, "soak: unknown fault kind '%s'\n", t);
            usage();
        }
    }
    free(dup);
}

static long num_arg(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) usage();
    char *end;
    long v = strtol(argv[++*i], &end, 0);
    if (*end || v < 0) usage();
    return v;
}

static void setup_fault_targets(void) {
    prot_none = mmap(NULL, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (prot_none == MAP_FAILED) fatal("mmap PROT_NONE: %s", strerror(errno));
    int fd = memfd_create("soak-bus", 0);
    if (fd < 0) fatal("memfd_create: %s", strerror(errno));
    if (ftruncate(fd, 4096) != 0) fatal("ftruncate: %s", strerror(errno));
    bus_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (bus_page == MAP_FAILED) fatal("mmap memfd: %s", strerror(errno));
    if (ftruncate(fd, 0) != 0) fatal("ftruncate 0: %s", strerror(errno));
    close(fd);
    bad_ptr = (void *)16;
}

int main(int argc, char **argv) {
    parse_kinds("default");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads")) n_threads = (int)num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--accounts")) n_accounts = (int)num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--faults")) faults_per_kind = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--normal")) n_normal = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--seed")) seed = (uint64_t)num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--rss-limit-mib")) rss_limit_mib = num_arg(argc, argv, &i);
        else if (!strcmp(argv[i], "--kinds") && i + 1 < argc) parse_kinds(argv[++i]);
        else if (!strcmp(argv[i], "--raw-stderr")) raw_stderr = 1;
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else usage();
    }
    if (n_threads < 1 || n_threads > 1024 || n_accounts < 8 || n_accounts > MAX_ACCOUNTS) usage();
    const char *pol = getenv("VMSRS_POLICY");
    oblivious = !(pol && !strcmp(pol, "unwind"));
#ifdef VMSRS_DISABLE
    const char *build = "disabled";
    raw_stderr = 1;
    oblivious = -1;
#else
    const char *build = "libvmsrs";
#endif
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* The bank: random balances (< 2^20 each, so every balance stays < 2^39). */
    uint64_t s = seed;
    for (int i = 0; i < n_accounts; i++) {
        struct account a;
        a.balance = 1000 + splitmix(&s) % 1000000;
        a.seq = splitmix(&s) % 100000;
        a.xh = splitmix(&s);
        a.sum32 = (uint32_t)splitmix(&s);
        a.cnt16 = (uint16_t)a.seq;
        a.tag = (uint8_t)i;
        a.flags = (uint8_t)(0x40 | (i % 7));
        bank[i] = truth[i] = init_acc[i] = a;
        precs[i] = truth_p[i] = derive_prec((unsigned)i, &a);
        total_balance += a.balance;
        pthread_mutex_init(&locks[i], NULL);
    }
    memset(precs_area.lead, 0x11, sizeof precs_area.lead);
    setup_fault_targets();

    if (!raw_stderr) capture_stderr();
    int rc = vmsrs_init_profile(NULL);
    if (rc != 0) fatal("vmsrs_init_profile: %s", vmsrs_strerror(rc));
    rc = vmsrs_profile(bank, (size_t)n_accounts * sizeof(struct account), "soak.bank");
    if (rc != 0) fatal("vmsrs_profile(bank): %s", vmsrs_strerror(rc));
    rc = vmsrs_profile(precs, (size_t)n_accounts * sizeof(struct prec), "soak.precs");
    if (rc != 0) fatal("vmsrs_profile(precs): %s", vmsrs_strerror(rc));

    workers = calloc((size_t)n_threads, sizeof *workers);
    if (!workers) fatal("calloc");
    long n_faults_total = 0;
    for (int k = 0; k < N_KINDS; k++) n_faults_total += enabled_kind[k] ? faults_per_kind : 0;
    for (int t = 0; t < n_threads; t++) {
        struct worker *w = &workers[t];
        w->id = t;
        w->rng = seed * 0x100000001B3ull + (uint64_t)t * 0x9E3779B97F4A7C15ull + 1;
        w->todo_normal = n_normal / n_threads + (t < n_normal % n_threads);
        for (int k = 0; k < N_KINDS; k++)
            if (enabled_kind[k]) w->todo_fault[k] = faults_per_kind / n_threads + (t < faults_per_kind % n_threads);
        w->ledger = calloc((size_t)n_accounts, sizeof *w->ledger);
        if (!w->ledger) fatal("calloc");
    }
    long total_txns = n_normal + n_faults_total;

    printf("soak: build=%s policy=%s threads=%d accounts=%d faults/kind=%ld normal=%ld seed=%llu\n", build,
           POLICY_NAME, n_threads, n_accounts, faults_per_kind, n_normal,
           (unsigned long long)seed);
    long rss_start = rss_kib();
    double t0 = now_s();
    for (int t = 0; t < n_threads; t++)
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) fatal("pthread_create");

    long rss_warm = -1;
    double last_print = t0;
    while (atomic_load(&workers_done) < n_threads) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        audit();
        long p = atomic_load(&progress);
        if (rss_warm < 0 && p >= total_txns / 10) rss_warm = rss_kib();
        if (!quiet && now_s() - last_print >= 5.0) {
            last_print = now_s();
            printf("soak: progress %ld/%ld transactions, %.1f s, rss %ld KiB\n", p, total_txns, last_print - t0,
                   rss_kib());
        }
    }
    for (int t = 0; t < n_threads; t++) pthread_join(workers[t].thread, NULL);
    double elapsed = now_s() - t0;
    if (rss_warm < 0) rss_warm = rss_kib();
    audit();

    /* Totals. */
    long committed = 0, faulted = 0, reads = 0, baseline_aborts = 0, by_kind[N_KINDS] = {0}, skip[N_KINDS] = {0},
         unw[N_KINDS] = {0}, notf[N_KINDS] = {0}, second[N_KINDS] = {0};
    for (int t = 0; t < n_threads; t++) {
        struct worker *w = &workers[t];
        committed += w->committed;
        reads += w->reads_checked;
        baseline_aborts += w->aborted_baseline;
        for (int k = 0; k < N_KINDS; k++) {
            by_kind[k] += w->faulted[k];
            skip[k] += w->via_skip[k];
            unw[k] += w->via_unwind[k];
            notf[k] += w->lib_not_faulted[k];
            second[k] += w->second[k];
            faulted += w->faulted[k];
        }
    }

    /* The exact ledger: initial + every thread's committed effects. */
    uint64_t sum = 0;
    rc = vmsrs_user_begin();
    if (rc != 0) fatal("final: vmsrs_user_begin: %s", vmsrs_strerror(rc));
    for (int i = 0; i < n_accounts; i++) {
        struct account e = init_acc[i];
        for (int t = 0; t < n_threads; t++) {
            const struct ledger *l = &workers[t].ledger[i];
            e.balance = (uint64_t)((int64_t)e.balance + l->dbal);
            e.seq += l->commits;
            e.xh ^= l->xh;
            e.sum32 += l->sum32;
        }
        e.cnt16 = (uint16_t)e.seq;
        struct prec ep = derive_prec((unsigned)i, &e);
        sum += e.balance;
        compare("final ledger vs truth", (unsigned)i, &truth[i], &truth_p[i], &e, &ep);
        struct account a = VMSRS_GET(bank[i]);
        struct prec p;
        vmsrs_load(&p, &precs[i], sizeof p);
        compare("final ledger vs monitored load", (unsigned)i, &a, &p, &e, &ep);
        struct account raw = bank[i];
        struct prec rawp;
        memcpy(&rawp, &precs[i], sizeof rawp);
        compare("final ledger vs raw memory", (unsigned)i, &raw, &rawp, &e, &ep);
    }
    rc = vmsrs_user_end();
    if (rc != 0) violation("final: end point returned %d", rc);
    if (sum != total_balance)
        violation("final: ledger total %llu, expected %llu", (unsigned long long)sum, (unsigned long long)total_balance);
    for (int k = 0; k < 3; k++)
        if (precs_area.lead[k] != 0x11) violation("a byte before the profiled records changed");

    /* One report per injected fault; a library-side bad pointer may fault more than once
     * inside one call (its count is a lower bound). */
    long n_signal = 0, n_explicit = 0, want_rep[5] = {0};
    int lib_kinds = 0;
    for (int k = 0; k < N_KINDS; k++) {
        if (KIND_SIG[k]) n_signal += by_kind[k] + second[k]; else n_explicit += by_kind[k];
        int slot = KIND_SIG[k] == SIGSEGV ? 0 : KIND_SIG[k] == SIGBUS ? 1 : KIND_SIG[k] == SIGFPE ? 2
                 : KIND_SIG[k] == SIGILL  ? 3 : 4;
        want_rep[slot] += by_kind[k] + second[k] - notf[k];
        if (k == K_LIB_LOAD_DST_S) want_rep[4] += by_kind[k]; /* its explicit entry first */
        if (k >= FIRST_LIB_KIND && enabled_kind[k]) lib_kinds = 1;
    }
    long injected = 0;
    for (int k = 0; k < N_KINDS; k++) injected += enabled_kind[k] ? faults_per_kind : 0;
#ifndef VMSRS_DISABLE
    if (faulted != injected) violation("%ld fault transactions ran, %ld planned", faulted, injected);
#endif

    /* libvmsrs's own counters. */
    struct vmsrs_stats st;
    memset(&st, 0, sizeof st);
    int have_stats = vmsrs_stats(&st) == 0;
    if (have_stats) {
        /* Every user: one per transaction, one verifier per fault, one per audit, the final one. */
        uint64_t begun = (uint64_t)(committed + 2 * faulted + audits + 1);
        uint64_t extra_faults = (uint64_t)by_kind[K_LIB_LOAD_DST_S];
        if (st.users_faulted != (uint64_t)faulted)
            violation("stats: users_faulted %llu, expected %ld", (unsigned long long)st.users_faulted, faulted);
        if (st.users_collected != (uint64_t)faulted)
            violation("stats: users_collected %llu, expected %ld", (unsigned long long)st.users_collected, faulted);
        uint64_t want_contained = (uint64_t)(n_signal + n_explicit) + extra_faults;
        if (lib_kinds ? st.faults_contained < want_contained : st.faults_contained != want_contained)
            violation("stats: faults_contained %llu, expected %s%llu (one per injected fault)",
                      (unsigned long long)st.faults_contained, lib_kinds ? ">= " : "",
                      (unsigned long long)want_contained);
        if (st.users_committed < begun - (uint64_t)faulted)
            violation("stats: users_committed %llu < %llu", (unsigned long long)st.users_committed,
                      (unsigned long long)(begun - (uint64_t)faulted));
        if (st.users_live != 0) violation("stats: users_live %llu at the end", (unsigned long long)st.users_live);
        if (st.users_suppressed_now != 0)
            violation("stats: users_suppressed_now %llu at the end", (unsigned long long)st.users_suppressed_now);
        if (st.history_entries != 0)
            violation("stats: history_entries %llu at the end", (unsigned long long)st.history_entries);
        if (st.corruptions != 0) violation("stats: corruptions %llu", (unsigned long long)st.corruptions);
        if (st.unrecorded_stores != 0)
            violation("stats: unrecorded_stores %llu", (unsigned long long)st.unrecorded_stores);
        if (st.faults_chained != 0) violation("stats: faults_chained %llu", (unsigned long long)st.faults_chained);
        if (st.threads_ended != 0) violation("stats: threads_ended %llu", (unsigned long long)st.threads_ended);
        /* Under two-phase locking no user ever loads a byte of a user that is still live, so
         * there is nothing to expose (G8; meaningful with VMSRS_EXPOSURE=1). */
        size_t exposed = 0;
        if (vmsrs_exposures(NULL, 0, &exposed) < 0 || exposed != 0 || st.exposures != 0)
            violation("exposures: %zu reported (%llu in stats), expected none under two-phase locking", exposed,
                      (unsigned long long)st.exposures);
    }

    if (!raw_stderr) {
        release_stderr();
        static const char *const sn[5] = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "explicit"};
        for (int s2 = 0; s2 < 5; s2++)
            if (lib_kinds && s2 == 0 ? reports[s2] < want_rep[s2] : reports[s2] != want_rep[s2])
                violation("fault reports: %ld 'contained %s' lines, expected %s%ld", reports[s2], sn[s2],
                          lib_kinds && s2 == 0 ? ">= " : "", want_rep[s2]);
        if (oblivious && enabled_kind[K_UD2] && reports[3] > by_kind[K_UD2])
            violation("ud2 was skipped under the oblivious policy: %ld SIGILL reports for %ld ud2 faults, so "
                      "execution ran on past the trap (DESIGN 5: trap-only instructions are never skipped, "
                      "they unwind)",
                      reports[3], by_kind[K_UD2]);
        if (reports_other) violation("fault reports: %ld lines for other signals", reports_other);
    }

    long rss_end = rss_kib();
    if (rss_end - rss_start > rss_limit_mib * 1024)
        violation("RSS grew by %ld KiB (limit %ld MiB)", rss_end - rss_start, rss_limit_mib);

    printf("soak: faults");
    for (int k = 0; k < N_KINDS; k++)
        if (enabled_kind[k]) printf(" %s=%ld", KIND_NAME[k], by_kind[k]);
    printf("\n");
    {
        long a = 0, b = 0;
        long c = 0;
        for (int k = 0; k < N_KINDS; k++) a += skip[k], b += unw[k], c += second[k];
        printf("soak: faults by path: ran-on-suppressed=%ld unwound=%ld second-fault-while-suppressed=%ld", a, b, c);
        for (int k = FIRST_LIB_KIND; k < N_KINDS; k++)
            if (enabled_kind[k] && notf[k]) printf(" %s-refused-without-fault=%ld", KIND_NAME[k], notf[k]);
        printf("\n");
    }
    if (have_stats)
        printf("soak: stats users_begun=%llu committed=%llu faulted=%llu collected=%llu live=%llu history=%llu "
               "faults_contained=%llu skipped=%llu unwinds=%llu restorations=%llu shadow_stores=%llu\n",
               (unsigned long long)st.users_begun, (unsigned long long)st.users_committed,
               (unsigned long long)st.users_faulted, (unsigned long long)st.users_collected,
               (unsigned long long)st.users_live, (unsigned long long)st.history_entries,
               (unsigned long long)st.faults_contained, (unsigned long long)st.instructions_skipped,
               (unsigned long long)st.unwinds, (unsigned long long)st.restorations,
               (unsigned long long)st.shadow_stores);
    if (!raw_stderr)
        printf("soak: reports SIGSEGV=%ld SIGBUS=%ld SIGFPE=%ld SIGILL=%ld explicit=%ld\n", reports[0], reports[1],
               reports[2], reports[3], reports[4]);
    printf("soak: summary build=%s policy=%s threads=%d faults=%ld committed=%ld baseline_aborted=%ld "
           "reads_checked=%ld audits=%ld violations=%ld rss_start_kib=%ld rss_warm_kib=%ld rss_end_kib=%ld "
           "rss_hwm_kib=%ld elapsed_ms=%.0f\n",
           build, POLICY_NAME, n_threads, faulted, committed, baseline_aborts, reads, audits,
           atomic_load(&violations), rss_start, rss_warm, rss_end, hwm_kib(), elapsed * 1000);
    if (atomic_load(&violations) != 0) {
        printf("soak: FAIL (%ld violations)\n", atomic_load(&violations));
        return 1;
    }
    printf("soak: PASS\n");
    return 0;
}
