/*
 * api_fuzz.c -- a deterministic fuzzer of libvmsrs's argument checks (DESIGN.md sections 3
 * and 9: "Fuzz ... the API's argument checks").
 *
 * Usage: api_fuzz <seed> <iterations>      (API_FUZZ_TRACE=1 prints every call)
 *
 * Random calls from the whole C API, with arguments drawn from NULL, pointers into profiled
 * tables, into unprofiled heap, just past a range, into vmsrs_malloc'd blocks, wild and
 * unmapped pointers, zero, small and huge lengths (huge ones only where the call judges the
 * length instead of dereferencing it: vmsrs_profile, vmsrs_ptr_check, vmsrs_ptr_add,
 * vmsrs_calloc). They are interleaved with valid begin / store / fault / end cycles of users
 * on the main thread.
 *
 * A byte-exact model predicts every result: which ranges are profiled, which allocations
 * are known, the committed value of every byte, the current user's own stores and whether
 * it faulted. Checked invariants: no crash; every returned code is a documented one and the
 * predicted one; loads return the user's own view (G3/G4); after every user's end a normal
 * reader (and raw memory) holds exactly the committed values; while a user is live another
 * thread sees the normal view; vmsrs_stats counters are monotone and agree with the model.
 * Ranges are placed at any byte offset, so adjacent ranges often share an 8-byte granule.
 *
 * Exit 0 prints "ok api_fuzz seed=<seed> ..."; the first failed check prints "FAIL ..." and
 * exits 1.
 */
#define _GNU_SOURCE
#include "vmsrs.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ----- PRNG (splitmix64) and reporting --------------------------------------------------- */

static uint64_t rng_state;
static unsigned long long seed, iteration, iterations;
static const char *cur_op = "setup";

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static int chance(unsigned num, unsigned den)
{
    return below(den) < num;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    printf("FAIL seed=%llu iter=%llu op=%s: ", seed, iteration, cur_op);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

static int documented_code(int c)
{
    return c == VMSRS_OK || c == VMSRS_FAULTED || (c <= VMSRS_ENULL && c >= VMSRS_EBADRANGE);
}

/* ----- calls per entry point (every one must be exercised) ------------------------------- */

enum fn_id {
    F_LOAD, F_STORE, F_ASSIGN, F_LOAD8, F_LOAD16, F_LOAD32, F_LOAD64, F_STORE8, F_STORE16,
    F_STORE32, F_STORE64, F_MEMSET, F_MEMCPY, F_MEMMOVE, F_PROFILE, F_UNPROFILE, F_PTR_ADD,
    F_PTR_CHECK, F_CRASH, F_STATS, F_EXPOSURES, F_LAST_FAULT, F_DEBUG_AREA, F_STRERROR,
    F_LAST_ERROR, F_INIT, F_BEGIN, F_BEGIN_MACRO, F_END, F_CURRENT, F_SUPPRESSED, F_MALLOC,
    F_CALLOC, F_REALLOC, F_FREE, F_PRINTF, F_FPRINTF, F_VPRINTF, F_VFPRINTF, F_COUNT
};
static const char *const fn_names[F_COUNT] = {
    "vmsrs_load", "vmsrs_store", "vmsrs_assign", "vmsrs_load8", "vmsrs_load16", "vmsrs_load32",
    "vmsrs_load64", "vmsrs_store8", "vmsrs_store16", "vmsrs_store32", "vmsrs_store64",
    "vmsrs_memset", "vmsrs_memcpy", "vmsrs_memmove", "vmsrs_profile", "vmsrs_unprofile",
    "vmsrs_ptr_add", "vmsrs_ptr_check", "vmsrs_crash_suppression", "vmsrs_stats",
    "vmsrs_exposures", "vmsrs_last_fault", "vmsrs_debug_recovery_area", "vmsrs_strerror",
    "vmsrs_last_error", "vmsrs_init_profile", "vmsrs_user_begin", "VMSRS_USER_BEGIN",
    "vmsrs_user_end", "vmsrs_user_current", "vmsrs_user_suppressed", "vmsrs_malloc",
    "vmsrs_calloc", "vmsrs_realloc", "vmsrs_free", "vmsrs_printf", "vmsrs_fprintf",
    "vmsrs_vprintf", "vmsrs_vfprintf",
};
static unsigned long long calls[F_COUNT];
static int trace; /* API_FUZZ_TRACE=1: print every call, check the counters after each */

#define CALL(id) (calls[id]++, cur_op = fn_names[id], trace ? (void)printf("  %llu %s\n", iteration, cur_op) : (void)0)

/* ----- the universe of addresses the model tracks byte by byte --------------------------- */

#define ARENA_LEN 2048
#define HEAP_LEN 1024
#define PLAIN_LEN 256
#define U_LEN (ARENA_LEN + HEAP_LEN + PLAIN_LEN)

static uint8_t arena[ARENA_LEN] __attribute__((aligned(4096)));

struct region {
    uint8_t *base;
    size_t len;
    size_t off;     /* index of base in the model arrays */
    int profilable; /* the plain region is never profiled */
};
static struct region regions[3];

static uint8_t committed[U_LEN]; /* the value every normal user must see once users end */
static uint8_t mon[U_LEN];       /* byte lies in a profiled range */
static uint8_t pend[U_LEN];      /* the main thread's user's own stores */
static uint8_t has_pend[U_LEN];

static long uidx(uintptr_t a)
{
    for (int r = 0; r < 3; r++) {
        uintptr_t b = (uintptr_t)regions[r].base;
        if (a >= b && a < b + regions[r].len)
            return (long)(regions[r].off + (a - b));
    }
    return -1;
}

static const struct region *region_of(uintptr_t a)
{
    for (int r = 0; r < 3; r++) {
        uintptr_t b = (uintptr_t)regions[r].base;
        if (a >= b && a < b + regions[r].len)
            return &regions[r];
    }
    return NULL;
}

/* ----- model: ranges, allocations, the main thread's user -------------------------------- */

struct range {
    uintptr_t a;
    size_t len;
};
static struct range ranges[256];
static int nranges;

struct alloc {
    uintptr_t a;
    size_t n;
    int owned; /* 0: leaked by a withheld free; its bounds stay known */
};
#define MAX_ALLOCS 512
static struct alloc allocs[MAX_ALLOCS];
static int nallocs;

enum { K_NONE, K_IMPLICIT, K_EXPLICIT };
static int ukind, ufaulted, real_fault_done;
static uint64_t ucur_id;
static uint64_t fault_count, bounds_count, users_faulted_count, withheld_count, cycles, cycles_faulted;

static uint8_t own_view(size_t i)
{
    return has_pend[i] ? pend[i] : committed[i];
}

static uint8_t normal_view(size_t i)
{
    return has_pend[i] && !ufaulted ? pend[i] : committed[i];
}

static void model_store(uintptr_t a, const uint8_t *v, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        long i = uidx(a + k);
        if (i < 0)
            fail("model: store outside the universe at %#lx", (unsigned long)(a + k));
        if (!mon[i]) {
            committed[i] = v[k]; /* unmonitored: a plain store, never withdrawn */
        } else {
            if (ukind == K_NONE) {
                ukind = K_IMPLICIT;
                ufaulted = 0;
            }
            pend[i] = v[k];
            has_pend[i] = 1;
        }
    }
}

static void model_fault(void)
{
    if (ukind == K_NONE) {
        ukind = K_IMPLICIT;
        ufaulted = 0;
    }
    if (!ufaulted) {
        ufaulted = 1;
        users_faulted_count++;
    }
    fault_count++;
}

/* The user ends (explicitly, or an implicit one at the next begin): commit or withdraw. */
static void model_end_user(void)
{
    for (size_t i = 0; i < U_LEN; i++) {
        if (has_pend[i]) {
            if (!ufaulted)
                committed[i] = pend[i];
            has_pend[i] = 0;
        }
    }
    ukind = K_NONE;
    ufaulted = 0;
}

static int range_at(uintptr_t p)
{
    for (int r = 0; r < nranges; r++)
        if (p >= ranges[r].a && p - ranges[r].a < ranges[r].len)
            return r;
    return -1;
}

static int range_starting_at(uintptr_t p)
{
    for (int r = 0; r < nranges; r++)
        if (ranges[r].a == p)
            return r;
    return -1;
}

static int overlaps_range(uintptr_t a, size_t len)
{
    for (int r = 0; r < nranges; r++)
        if (a < ranges[r].a + ranges[r].len && ranges[r].a < a + len)
            return 1;
    return 0;
}

static void model_profile(uintptr_t a, size_t len)
{
    ranges[nranges].a = a;
    ranges[nranges].len = len;
    nranges++;
    for (size_t k = 0; k < len; k++)
        mon[uidx(a + k)] = 1;
}

/* Unprofile restores polluted bytes first: the range keeps the normal view, for good. */
static void model_unprofile(int r)
{
    for (size_t k = 0; k < ranges[r].len; k++) {
        long i = uidx(ranges[r].a + k);
        if (has_pend[i]) {
            if (!ufaulted)
                committed[i] = pend[i];
            has_pend[i] = 0;
        }
        mon[i] = 0;
    }
    ranges[r] = ranges[--nranges];
}

static int alloc_at(uintptr_t p)
{
    for (int k = 0; k < nallocs; k++)
        if (p >= allocs[k].a && p - allocs[k].a < allocs[k].n)
            return k;
    return -1;
}

static int lib_suppressed(void)
{
    return ukind != K_NONE && ufaulted;
}

/* ----- argument pools -------------------------------------------------------------------- */

static volatile uintptr_t bad_addr = 16; /* never mapped: a real SIGSEGV */

/* A random dereferenceable span of `n` bytes (1 <= n <= max) inside the universe. */
static uintptr_t pick_span(size_t *n_io, int only_region)
{
    size_t want = *n_io;
    for (;;) {
        uintptr_t p;
        unsigned k = (unsigned)below(10);
        if (k < 2 && nranges > 0) {
            const struct range *r = &ranges[below((uint64_t)nranges)];
            p = k == 0 ? r->a + below(r->len) : r->a + r->len; /* inside, or just past it */
        } else {
            int ri = only_region >= 0 ? only_region : (k < 6 ? 0 : k < 9 ? 1 : 2);
            p = (uintptr_t)regions[ri].base + below(regions[ri].len);
        }
        const struct region *rg = region_of(p);
        if (!rg || (only_region >= 0 && rg != &regions[only_region]))
            continue;
        size_t room = (size_t)((uintptr_t)rg->base + rg->len - p);
        if (room == 0)
            continue;
        *n_io = want < room ? want : room;
        return p;
    }
}

static size_t small_len(void)
{
    switch (below(4)) {
    case 0: return 1 + below(8);
    case 1: return 1 << below(4);
    default: return 1 + below(64);
    }
}

static void *fresh_unmapped_page(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap failed");
    munmap(p, 4096);
    return p;
}

/* Any pointer, for the calls that judge but never dereference it. */
static uintptr_t pick_any_ptr(void)
{
    switch (below(12)) {
    case 0: return 0;
    case 1: return nranges ? ranges[below((uint64_t)nranges)].a : (uintptr_t)arena;
    case 2: {
        if (!nranges)
            return (uintptr_t)arena + ARENA_LEN;
        const struct range *r = &ranges[below((uint64_t)nranges)];
        return r->a + r->len;
    }
    case 3: {
        if (!nranges)
            return (uintptr_t)arena + 1;
        const struct range *r = &ranges[below((uint64_t)nranges)];
        return r->a + below(r->len);
    }
    case 4: return (uintptr_t)regions[0].base + below(ARENA_LEN);
    case 5: return (uintptr_t)regions[1].base + below(HEAP_LEN);
    case 6: return (uintptr_t)regions[2].base + below(PLAIN_LEN);
    case 7: {
        if (!nallocs)
            return (uintptr_t)regions[2].base;
        const struct alloc *al = &allocs[below((uint64_t)nallocs)];
        return al->a + below(al->n + 1);
    }
    case 8: return UINTPTR_MAX - below(64);
    case 9: return 0x800000000000ull + below(1 << 20); /* non-canonical */
    case 10: return 1 + below(4095);                   /* the never-mapped low page */
    default: return (uintptr_t)regions[0].base + below(ARENA_LEN);
    }
}

static ptrdiff_t pick_delta(void)
{
    switch (below(8)) {
    case 0: return 0;
    case 1: return PTRDIFF_MAX;
    case 2: return PTRDIFF_MIN;
    case 3: return (ptrdiff_t)(rnd() >> 1) * (chance(1, 2) ? 1 : -1);
    case 4: return -(ptrdiff_t)below(300);
    default: return (ptrdiff_t)below(300);
    }
}

/* ----- checks ---------------------------------------------------------------------------- */

static void expect_code(int got, int want, const char *what)
{
    if (!documented_code(got))
        fail("%s returned %d, not a vmsrs_error value", what, got);
    if (got != want)
        fail("%s: expected %d (%s), got %d (%s)", what, want, vmsrs_strerror(want), got, vmsrs_strerror(got));
}

static void expect_null_err(const void *got, int want, const char *what)
{
    int le = vmsrs_last_error();
    calls[F_LAST_ERROR]++;
    if (got != NULL || le != want)
        fail("%s: expected NULL with last_error %d, got %p with last_error %d", what, want, got, le);
}

static void check_own_view(uintptr_t p, const uint8_t *got, size_t n, const char *what)
{
    for (size_t k = 0; k < n; k++) {
        long i = uidx(p + k);
        if (got[k] != own_view((size_t)i))
            fail("%s: byte %zu at %#lx: expected 0x%02x (own view; committed 0x%02x, pending %d/0x%02x, "
                 "monitored %d, user kind %d faulted %d), got 0x%02x",
                 what, k, (unsigned long)(p + k), own_view((size_t)i), committed[i], has_pend[i], pend[i],
                 mon[i], ukind, ufaulted, got[k]);
    }
}

static struct vmsrs_stats last_stats;

static void check_stats(const struct vmsrs_stats *s, int at_rest)
{
#define MONO(f)                                                                                          \
    do {                                                                                                 \
        if (s->f < last_stats.f)                                                                         \
            fail("stats." #f " went down: %llu -> %llu", (unsigned long long)last_stats.f,               \
                 (unsigned long long)s->f);                                                              \
    } while (0)
#define EQ(f, v)                                                                                         \
    do {                                                                                                 \
        if (s->f != (uint64_t)(v))                                                                       \
            fail("stats." #f " = %llu, model says %llu", (unsigned long long)s->f, (unsigned long long)(v)); \
    } while (0)
    MONO(users_begun);
    MONO(users_committed);
    MONO(users_faulted);
    MONO(users_collected);
    MONO(restorations);
    MONO(shadow_stores);
    MONO(exposures);
    MONO(exposures_dropped);
    MONO(faults_contained);
    MONO(instructions_skipped);
    MONO(frees_withheld);
    MONO(suppressed_outputs);
    MONO(bounds_faults);
    EQ(ranges, nranges);
    EQ(corruptions, 0);
    EQ(unrecorded_stores, 0);
    EQ(faults_chained, 0);
    EQ(unwinds, 0);
    EQ(threads_ended, 0);
    EQ(users_faulted, users_faulted_count);
    EQ(users_suppressed_now, lib_suppressed());
    EQ(faults_contained, fault_count);
    EQ(bounds_faults, bounds_count);
    EQ(frees_withheld, withheld_count);
    if (at_rest) {
        /* History per granule is bounded by the active users that wrote it: none now. */
        EQ(history_entries, 0);
        EQ(users_live, 0);
        EQ(users_begun, s->users_committed + s->users_collected);
    } else if (s->users_begun != s->users_committed + s->users_collected + s->users_live) {
        fail("stats: users_begun %llu != committed %llu + collected %llu + live %llu",
             (unsigned long long)s->users_begun, (unsigned long long)s->users_committed,
             (unsigned long long)s->users_collected, (unsigned long long)s->users_live);
    }
    last_stats = *s;
#undef MONO
#undef EQ
}

/* ----- another thread reads as a normal user --------------------------------------------- */

struct reader_job {
    uint8_t want[U_LEN];
    long bad; /* first mismatching index, or -1 */
    uint8_t got;
};
static struct reader_job reader_job;

static void *reader_main(void *arg)
{
    struct reader_job *j = arg;
    uint8_t buf[ARENA_LEN];
    j->bad = -1;
    for (int r = 0; r < 3 && j->bad < 0; r++) {
        if (vmsrs_load(buf, regions[r].base, regions[r].len) != 0) {
            j->bad = (long)regions[r].off;
            break;
        }
        for (size_t k = 0; k < regions[r].len; k++)
            if (buf[k] != j->want[regions[r].off + k]) {
                j->bad = (long)(regions[r].off + k);
                j->got = buf[k];
                break;
            }
    }
    return NULL;
}

static void check_normal_reader(const char *when)
{
    for (size_t i = 0; i < U_LEN; i++)
        reader_job.want[i] = normal_view(i);
    pthread_t t;
    if (pthread_create(&t, NULL, reader_main, &reader_job) != 0)
        fail("pthread_create");
    pthread_join(t, NULL);
    if (reader_job.bad >= 0)
        fail("normal reader (%s): index %ld: expected 0x%02x (committed 0x%02x, pending %d/0x%02x, monitored %d, "
             "user kind %d faulted %d), got 0x%02x",
             when, reader_job.bad, reader_job.want[reader_job.bad], committed[reader_job.bad],
             has_pend[reader_job.bad], pend[reader_job.bad], mon[reader_job.bad], ukind, ufaulted,
             reader_job.got);
}

/* After a user's end nobody is live: a normal load and raw memory both give `committed`. */
static void verify_at_rest(void)
{
    uint8_t buf[ARENA_LEN];
    cur_op = "verify_at_rest";
    if (vmsrs_user_current() != 0)
        fail("a user is still current after vmsrs_user_end");
    for (int r = 0; r < 3; r++) {
        if (vmsrs_load(buf, regions[r].base, regions[r].len) != 0)
            fail("vmsrs_load of region %d failed", r);
        for (size_t k = 0; k < regions[r].len; k++) {
            size_t i = regions[r].off + k;
            if (buf[k] != committed[i])
                fail("normal load after end: region %d byte %zu: expected 0x%02x, got 0x%02x (monitored %d)", r,
                     k, committed[i], buf[k], mon[i]);
            if (regions[r].base[k] != committed[i])
                fail("raw memory after end: region %d byte %zu: expected 0x%02x, got 0x%02x (monitored %d)", r,
                     k, committed[i], regions[r].base[k], mon[i]);
        }
    }
    struct vmsrs_stats s;
    if (vmsrs_stats(&s) != 0)
        fail("vmsrs_stats failed");
    check_stats(&s, 1);
}

/* ----- the operations -------------------------------------------------------------------- */

static void op_load_block(void)
{
    uint8_t buf[64], before[64];
    size_t n = small_len();
    uintptr_t p = pick_span(&n, -1);
    int null_dst = chance(1, 12), null_src = chance(1, 12), zero = chance(1, 12);
    if (zero)
        n = 0;
    for (size_t k = 0; k < sizeof buf; k++)
        buf[k] = before[k] = (uint8_t)rnd();
    CALL(F_LOAD);
    int r = vmsrs_load(null_dst ? NULL : buf, null_src ? NULL : (void *)p, n);
    if (null_dst || null_src) {
        expect_code(r, VMSRS_ENULL, "vmsrs_load with NULL");
        if (memcmp(buf, before, sizeof buf) != 0)
            fail("failed vmsrs_load wrote its destination");
    } else if (zero) {
        expect_code(r, VMSRS_EZEROLEN, "vmsrs_load n=0");
    } else {
        expect_code(r, 0, "vmsrs_load");
        check_own_view(p, buf, n, "vmsrs_load");
    }
}

static void op_store_block(void)
{
    uint8_t src[64];
    size_t n = small_len();
    uintptr_t p = pick_span(&n, -1);
    int null_dst = chance(1, 12), null_src = chance(1, 12), zero = chance(1, 12);
    if (zero)
        n = 0;
    for (size_t k = 0; k < sizeof src; k++)
        src[k] = (uint8_t)rnd();
    CALL(F_STORE);
    int r = vmsrs_store(null_dst ? NULL : (void *)p, null_src ? NULL : src, n);
    if (null_dst || null_src)
        expect_code(r, VMSRS_ENULL, "vmsrs_store with NULL");
    else if (zero)
        expect_code(r, VMSRS_EZEROLEN, "vmsrs_store n=0");
    else {
        expect_code(r, 0, "vmsrs_store");
        model_store(p, src, n);
    }
}

/* dst = src through the monitored view (memmove semantics): the model reads first. */
static void model_copy(uintptr_t dst, uintptr_t src, size_t n)
{
    uint8_t tmp[64];
    for (size_t k = 0; k < n; k++)
        tmp[k] = own_view((size_t)uidx(src + k));
    model_store(dst, tmp, n);
}

static void op_assign(void)
{
    size_t n = small_len(), n2;
    uintptr_t d = pick_span(&n, -1);
    n2 = n;
    uintptr_t s = pick_span(&n2, -1);
    n = n < n2 ? n : n2;
    int null_dst = chance(1, 12), null_src = chance(1, 12), zero = chance(1, 12);
    if (zero)
        n = 0;
    CALL(F_ASSIGN);
    int r = vmsrs_assign(null_dst ? NULL : (void *)d, null_src ? NULL : (void *)s, n);
    if (null_dst || null_src)
        expect_code(r, VMSRS_ENULL, "vmsrs_assign with NULL");
    else if (zero)
        expect_code(r, VMSRS_EZEROLEN, "vmsrs_assign n=0");
    else {
        expect_code(r, 0, "vmsrs_assign");
        model_copy(d, s, n);
    }
}

static void op_scalar(void)
{
    static const size_t sizes[4] = { 1, 2, 4, 8 };
    int si = (int)below(4);
    size_t n = sizes[si];
    uintptr_t p;
    do {
        n = sizes[si];
        p = pick_span(&n, -1);
    } while (n != sizes[si]);
    uint64_t v = rnd();
    uint8_t bytes[8];
    if (chance(1, 2)) {
        uint64_t got = 0;
        switch (si) {
        case 0: CALL(F_LOAD8); got = vmsrs_load8((const uint8_t *)p); break;
        case 1: CALL(F_LOAD16); got = vmsrs_load16((const uint16_t *)p); break;
        case 2: CALL(F_LOAD32); got = vmsrs_load32((const uint32_t *)p); break;
        default: CALL(F_LOAD64); got = vmsrs_load64((const uint64_t *)p); break;
        }
        memcpy(bytes, &got, 8);
        check_own_view(p, bytes, n, cur_op);
    } else {
        switch (si) {
        case 0: CALL(F_STORE8); vmsrs_store8((uint8_t *)p, (uint8_t)v); break;
        case 1: CALL(F_STORE16); vmsrs_store16((uint16_t *)p, (uint16_t)v); break;
        case 2: CALL(F_STORE32); vmsrs_store32((uint32_t *)p, (uint32_t)v); break;
        default: CALL(F_STORE64); vmsrs_store64((uint64_t *)p, v); break;
        }
        memcpy(bytes, &v, 8);
        model_store(p, bytes, n);
    }
}

static void op_mem(void)
{
    size_t n = small_len(), n2;
    uintptr_t d = pick_span(&n, -1);
    n2 = n;
    uintptr_t s = pick_span(&n2, -1);
    n = n < n2 ? n : n2;
    int null_dst = chance(1, 10), null_src = chance(1, 10), zero = chance(1, 10);
    if (zero)
        n = 0;
    void *dp = null_dst ? NULL : (void *)d, *sp = null_src ? NULL : (void *)s;
    void *r;
    unsigned which = (unsigned)below(3);
    if (which == 1 && d < s + n && s < d + n)
        which = 2; /* memcpy of overlapping buffers is undefined: use memmove */
    if (which == 0) {
        int c = (int)below(256);
        CALL(F_MEMSET);
        r = vmsrs_memset(dp, c, n);
        if (zero) {
            if (r != dp)
                fail("vmsrs_memset n=0 returned %p, not dst %p", r, dp);
        } else if (null_dst) {
            expect_null_err(r, VMSRS_ENULL, "vmsrs_memset(NULL)");
        } else {
            if (r != dp)
                fail("vmsrs_memset returned %p, not dst", r);
            uint8_t tmp[64];
            memset(tmp, c, n);
            model_store(d, tmp, n);
        }
        return;
    }
    if (which == 1) {
        CALL(F_MEMCPY);
        r = vmsrs_memcpy(dp, sp, n);
    } else {
        CALL(F_MEMMOVE);
        r = vmsrs_memmove(dp, sp, n);
    }
    if (zero) {
        if (r != dp)
            fail("n=0 returned %p, not dst %p", r, dp);
    } else if (null_dst || null_src) {
        expect_null_err(r, VMSRS_ENULL, "NULL with n > 0");
    } else {
        if (r != dp)
            fail("returned %p, not dst", r);
        model_copy(d, s, n);
    }
}

static const char *pick_name(void)
{
    switch (below(4)) {
    case 0: return NULL;
    case 1: return "t";
    case 2: return "";
    default: return "a-rather-long-range-name-that-is-cut-at-31-bytes-by-libvmsrs";
    }
}

static void op_profile(void)
{
    uintptr_t p;
    size_t len;
    int known_unmapped = 0, predictable = 1;
    unsigned how = (unsigned)below(10);
    if (how < 5) {
        /* A candidate inside a profilable region: succeeds unless it overlaps. */
        const struct region *rg = &regions[below(2)];
        size_t off = below(rg->len);
        p = (uintptr_t)rg->base + off;
        len = 1 + below(how < 3 ? 48 : 200);
        if (len > rg->len - off)
            len = rg->len - off;
        if (nranges >= 40 && !overlaps_range(p, len))
            return; /* keep the table small */
    } else {
        p = how == 5 ? (uintptr_t)fresh_unmapped_page() + below(4096) : pick_any_ptr();
        known_unmapped = how == 5;
        switch (below(6)) {
        case 0: len = 0; break;
        case 1: len = SIZE_MAX; break;
        case 2: len = (size_t)(0 - p); break; /* ends exactly at 2^64 */
        case 3: len = (size_t)1 << (40 + below(20)); break;
        case 4: len = SIZE_MAX / 2 + below(1000); break;
        default: len = 1 + below(64); break;
        }
        const struct region *rg = region_of(p);
        if (len >= ((size_t)1 << 40) || p >= 0x800000000000ull || (p != 0 && p < 4096))
            known_unmapped = 1;
        if (len > 0 && p != 0 && !known_unmapped && len <= UINTPTR_MAX - p) {
            /* small length at an ordinary pointer: only inside a profilable region */
            if (!rg || !rg->profilable || len > (uintptr_t)rg->base + rg->len - p)
                predictable = 0;
        }
        if (!predictable)
            return;
    }
    /* Every error that applies; the call must return one of them, or 0 if none does. */
    int errs[8], ne = 0;
    if (p == 0)
        errs[ne++] = VMSRS_ENULL;
    if (len == 0)
        errs[ne++] = VMSRS_EZEROLEN;
    if (p != 0 && len > UINTPTR_MAX - p)
        errs[ne++] = VMSRS_EINVAL;
    if (p != 0 && len != 0 && (known_unmapped || (p >= 0x800000000000ull)))
        errs[ne++] = VMSRS_EBADRANGE;
    if (p != 0 && len != 0 && len <= UINTPTR_MAX - p && overlaps_range(p, len))
        errs[ne++] = VMSRS_EOVERLAP;
    if (nranges == 256)
        errs[ne++] = VMSRS_ETOOMANY;
    CALL(F_PROFILE);
    int r = vmsrs_profile((void *)p, len, pick_name());
    if (!documented_code(r))
        fail("vmsrs_profile returned %d, not a vmsrs_error value", r);
    if (ne == 0) {
        if (r != 0)
            fail("vmsrs_profile(%#lx, %zu) expected 0, got %d (%s)", (unsigned long)p, len, r,
                 vmsrs_strerror(r));
        model_profile(p, len);
        return;
    }
    for (int k = 0; k < ne; k++)
        if (r == errs[k])
            return;
    fail("vmsrs_profile(%#lx, %zu) returned %d (%s); expected one of %d%s%d%s%d", (unsigned long)p, len, r,
         vmsrs_strerror(r), errs[0], ne > 1 ? "," : "", ne > 1 ? errs[1] : 0, ne > 2 ? "," : "",
         ne > 2 ? errs[2] : 0);
}

static void op_unprofile(void)
{
    uintptr_t p;
    switch (below(5)) {
    case 0:
    case 1: p = nranges ? ranges[below((uint64_t)nranges)].a : pick_any_ptr(); break;
    default: p = pick_any_ptr(); break;
    }
    CALL(F_UNPROFILE);
    int r = vmsrs_unprofile((void *)p);
    int k = range_starting_at(p);
    if (p == 0)
        expect_code(r, VMSRS_ENULL, "vmsrs_unprofile(NULL)");
    else if (k < 0)
        expect_code(r, VMSRS_ENOTPROFILED, "vmsrs_unprofile(not a range start)");
    else {
        expect_code(r, 0, "vmsrs_unprofile(range start)");
        model_unprofile(k);
    }
}

static void model_bounds_fault(void)
{
    model_fault();
    bounds_count++;
}

static int object_of(uintptr_t p, uintptr_t *s, size_t *n)
{
    int k = alloc_at(p);
    if (k >= 0) {
        *s = allocs[k].a;
        *n = allocs[k].n;
        return 1;
    }
    k = range_at(p);
    if (k >= 0) {
        *s = ranges[k].a;
        *n = ranges[k].len;
        return 1;
    }
    return 0;
}

static void op_ptr_add(void)
{
    uintptr_t p = pick_any_ptr(), s;
    ptrdiff_t d = pick_delta();
    size_t n;
    CALL(F_PTR_ADD);
    void *r = vmsrs_ptr_add((void *)p, d);
    if (p == 0) {
        expect_null_err(r, VMSRS_ENULL, "vmsrs_ptr_add(NULL)");
        return;
    }
    uintptr_t want = p + (uintptr_t)d;
    if (object_of(p, &s, &n) && (want < s || want > s + n)) {
        expect_null_err(r, VMSRS_ERANGE, "vmsrs_ptr_add leaving its object");
        model_bounds_fault();
    } else if ((uintptr_t)r != want) {
        fail("vmsrs_ptr_add(%#lx, %td) = %p, expected %#lx", (unsigned long)p, d, r, (unsigned long)want);
    }
}

static void op_ptr_check(void)
{
    uintptr_t p = pick_any_ptr(), s;
    size_t n, len;
    switch (below(6)) {
    case 0: len = 0; break;
    case 1: len = SIZE_MAX; break;
    case 2: len = (size_t)1 << (20 + below(40)); break;
    default: len = 1 + below(300); break;
    }
    CALL(F_PTR_CHECK);
    int r = vmsrs_ptr_check((void *)p, len);
    if (p == 0)
        expect_code(r, VMSRS_ENULL, "vmsrs_ptr_check(NULL)");
    else if (len == 0)
        expect_code(r, VMSRS_EZEROLEN, "vmsrs_ptr_check(n=0)");
    else if (object_of(p, &s, &n) && (len > UINTPTR_MAX - p || p + len > s + n)) {
        expect_code(r, VMSRS_ERANGE, "vmsrs_ptr_check leaving its object");
        model_bounds_fault();
    } else
        expect_code(r, 0, "vmsrs_ptr_check");
}

static void op_crash(void)
{
    static const int valid[] = { 0, 1, 4, 6, 7, 8, 11 };
    static const int invalid[] = { -1, 2, 3, 5, 9, 10, 12, 99, INT_MIN, INT_MAX };
    int good = chance(1, 2);
    int kind = good ? valid[below(7)] : invalid[below(10)];
    CALL(F_CRASH);
    int r = vmsrs_crash_suppression(kind, (void *)pick_any_ptr());
    if (good) {
        expect_code(r, 0, "vmsrs_crash_suppression(valid kind)");
        model_fault();
    } else {
        expect_code(r, VMSRS_EINVAL, "vmsrs_crash_suppression(unknown kind)");
    }
}

static void op_info(void)
{
    switch (below(6)) {
    case 0: {
        CALL(F_STATS);
        if (chance(1, 6)) {
            expect_code(vmsrs_stats(NULL), VMSRS_ENULL, "vmsrs_stats(NULL)");
            return;
        }
        struct vmsrs_stats s;
        expect_code(vmsrs_stats(&s), 0, "vmsrs_stats");
        check_stats(&s, 0);
        return;
    }
    case 1: {
        struct vmsrs_exposure ex[8];
        size_t total = 12345;
        int null_out = chance(1, 3), null_total = chance(1, 3);
        size_t cap = below(3) == 0 ? 0 : 1 + below(8);
        CALL(F_EXPOSURES);
        int r = vmsrs_exposures(null_out ? NULL : ex, cap, null_total ? NULL : &total);
        if (null_out && cap > 0) {
            expect_code(r, VMSRS_ENULL, "vmsrs_exposures(NULL, cap > 0)");
        } else {
            if (r < 0 || (size_t)r > cap)
                fail("vmsrs_exposures returned %d with cap %zu", r, cap);
            if (!null_total && total < (size_t)r)
                fail("vmsrs_exposures: total %zu < copied %d", total, r);
        }
        return;
    }
    case 2: {
        struct vmsrs_fault_info fi;
        CALL(F_LAST_FAULT);
        if (chance(1, 4)) {
            expect_code(vmsrs_last_fault(NULL), VMSRS_ENULL, "vmsrs_last_fault(NULL)");
            return;
        }
        int r = vmsrs_last_fault(&fi);
        if (fault_count == 0) {
            expect_code(r, VMSRS_ENOFAULT, "vmsrs_last_fault before any fault");
        } else {
            expect_code(r, 0, "vmsrs_last_fault");
            if (fi.sequence != fault_count)
                fail("vmsrs_last_fault: sequence %llu, model counts %llu faults",
                     (unsigned long long)fi.sequence, (unsigned long long)fault_count);
            if (fi.action < VMSRS_ACTION_SKIPPED || fi.action > VMSRS_ACTION_SUPPRESSED)
                fail("vmsrs_last_fault: action %d is not a vmsrs_fault_action", fi.action);
        }
        return;
    }
    case 3: {
        uintptr_t p = pick_any_ptr();
        void *area = NULL;
        size_t len = 0;
        int null_area = chance(1, 6), null_len = chance(1, 6);
        CALL(F_DEBUG_AREA);
        int r = vmsrs_debug_recovery_area((void *)p, null_area ? NULL : &area, null_len ? NULL : &len);
        if (p == 0 || null_area || null_len)
            expect_code(r, VMSRS_ENULL, "vmsrs_debug_recovery_area with NULL");
        else if (range_at(p) < 0)
            expect_code(r, VMSRS_ENOTPROFILED, "vmsrs_debug_recovery_area(unprofiled)");
        else {
            expect_code(r, 0, "vmsrs_debug_recovery_area(profiled)");
            if (area == NULL || len == 0)
                fail("vmsrs_debug_recovery_area: area %p len %zu", area, len);
        }
        return;
    }
    case 4: {
        int c = chance(1, 2) ? (int)below(24) - 21 : (int)(uint32_t)rnd();
        CALL(F_STRERROR);
        const char *s = vmsrs_strerror(c);
        if (s == NULL || s[0] == '\0')
            fail("vmsrs_strerror(%d) is NULL or empty", c);
        return;
    }
    default: {
        static const char *const files[] = { NULL, "/nonexistent-vmsrs-fuzz.env", "/" };
        CALL(F_INIT);
        expect_code(vmsrs_init_profile(files[below(3)]), VMSRS_EALREADY, "vmsrs_init_profile again");
        return;
    }
    }
}

static void op_alloc(void)
{
    switch (below(6)) {
    case 0:
    case 1: {
        if (nallocs >= MAX_ALLOCS)
            return;
        size_t n = 1 + below(256);
        void *p;
        if (chance(1, 2)) {
            CALL(F_MALLOC);
            p = vmsrs_malloc(n);
        } else {
            size_t a = 1 + below(16);
            n = a * (1 + below(16));
            CALL(F_CALLOC);
            p = vmsrs_calloc(a, n / a);
            for (size_t k = 0; p && k < n; k++)
                if (((uint8_t *)p)[k] != 0)
                    fail("vmsrs_calloc memory not zeroed");
        }
        if (!p)
            fail("allocation of %zu bytes failed", n);
        allocs[nallocs++] = (struct alloc){ (uintptr_t)p, n, 1 };
        return;
    }
    case 2: {
        CALL(F_CALLOC);
        void *p = vmsrs_calloc(SIZE_MAX / (1 + below(4)), 2 + below(4));
        if (p)
            fail("vmsrs_calloc overflow returned %p", p);
        return;
    }
    case 3: {
        int k = nallocs ? (int)below((uint64_t)nallocs) : -1;
        if (k < 0 || !allocs[k].owned || nallocs >= MAX_ALLOCS)
            return;
        size_t n = 1 + below(256);
        CALL(F_REALLOC);
        void *q = vmsrs_realloc((void *)allocs[k].a, n);
        if (!q)
            fail("vmsrs_realloc to %zu bytes failed", n);
        if (lib_suppressed()) {
            allocs[k].owned = 0; /* the old block is kept (and its bounds) */
            withheld_count++;
            allocs[nallocs++] = (struct alloc){ (uintptr_t)q, n, 1 };
        } else {
            allocs[k] = (struct alloc){ (uintptr_t)q, n, 1 };
        }
        return;
    }
    default: {
        if (chance(1, 6)) {
            CALL(F_FREE);
            vmsrs_free(NULL);
            return;
        }
        int k = nallocs ? (int)below((uint64_t)nallocs) : -1;
        if (k < 0 || !allocs[k].owned)
            return;
        CALL(F_FREE);
        vmsrs_free((void *)allocs[k].a);
        if (lib_suppressed()) {
            allocs[k].owned = 0;
            withheld_count++;
        } else {
            allocs[k] = allocs[--nallocs];
        }
        return;
    }
    }
}

static FILE *devnull;

static int call_vprintf(int to_file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = to_file ? vmsrs_vfprintf(devnull, fmt, ap) : vmsrs_vprintf(fmt, ap);
    va_end(ap);
    return r;
}

static void op_output(void)
{
    int r;
    switch (below(5)) {
    case 0:
        CALL(F_FPRINTF);
        r = vmsrs_fprintf(devnull, "%d-%s", 42, "ab");
        if (lib_suppressed() ? r < 5 : r != 5)
            fail("vmsrs_fprintf returned %d", r);
        return;
    case 1: {
        int n = -3;
        CALL(F_FPRINTF);
        r = vmsrs_fprintf(devnull, "x%n", &n);
        if (r >= 0 || n != -3)
            fail("vmsrs_fprintf with %%n returned %d, n = %d", r, n);
        return;
    }
    case 2:
        CALL(F_VFPRINTF);
        r = call_vprintf(1, "%s%c", "abc", 'd');
        if (lib_suppressed() ? r < 4 : r != 4)
            fail("vmsrs_vfprintf returned %d", r);
        return;
    case 3:
        if (lib_suppressed())
            return; /* a suppressed user's output is marked: it would print */
        CALL(F_PRINTF);
        r = vmsrs_printf("%s", "");
        if (r != 0)
            fail("vmsrs_printf(\"\") returned %d", r);
        return;
    default:
        if (lib_suppressed())
            return;
        CALL(F_VPRINTF);
        r = call_vprintf(0, "%s", "");
        if (r != 0)
            fail("vmsrs_vprintf(\"\") returned %d", r);
        return;
    }
}

/* A real SIGSEGV in an explicit user (oblivious policy: the instruction is skipped). At most
 * one per user and only as its first fault, so the fault budget never turns it into unwind. */
static void op_real_fault(void)
{
    if (ukind != K_EXPLICIT || ufaulted || real_fault_done)
        return;
    cur_op = "real SIGSEGV";
    real_fault_done = 1;
    if (chance(1, 2)) {
        *(volatile int *)bad_addr = 5;
    } else {
        int v = *(volatile int *)bad_addr;
        if (v != 0)
            fail("skipped faulting load gave %d, not 0", v);
    }
    model_fault();
    struct vmsrs_fault_info fi;
    if (vmsrs_last_fault(&fi) != 0 || fi.signal != 11 || fi.action != VMSRS_ACTION_SKIPPED ||
        fi.user != ucur_id)
        fail("last fault after a real SIGSEGV: signal %d action %d user %llu (current %llu)", fi.signal,
             fi.action, (unsigned long long)fi.user, (unsigned long long)ucur_id);
}

static void op_end(void)
{
    CALL(F_END);
    int r = vmsrs_user_end();
    if (ukind != K_EXPLICIT) {
        expect_code(r, VMSRS_ENOUSER, "vmsrs_user_end without an explicit user");
        return;
    }
    expect_code(r, ufaulted ? VMSRS_FAULTED : 0, "vmsrs_user_end");
    cycles++;
    cycles_faulted += (unsigned long long)ufaulted;
    model_end_user();
    verify_at_rest();
}

/* After a begin attempt returned `r`. */
static void after_begin(int r, const char *what)
{
    if (ukind == K_EXPLICIT) {
        expect_code(r, VMSRS_EINUSER, what);
        if (vmsrs_user_current() != ucur_id)
            fail("a refused begin changed the current user");
        return;
    }
    expect_code(r, 0, what);
    if (ukind == K_IMPLICIT)
        model_end_user(); /* begin ends the thread's implicit user */
    ukind = K_EXPLICIT;
    ufaulted = 0;
    real_fault_done = 0;
    ucur_id = vmsrs_user_current();
    if (ucur_id == 0)
        fail("no current user after a successful begin");
}

static void check_user_state(void)
{
    calls[F_SUPPRESSED]++;
    calls[F_CURRENT]++;
    int s = vmsrs_user_suppressed();
    if (s != lib_suppressed())
        fail("vmsrs_user_suppressed() = %d, model says %d (kind %d)", s, lib_suppressed(), ukind);
    uint64_t u = vmsrs_user_current();
    if (ukind != K_NONE && u == 0)
        fail("vmsrs_user_current() = 0 while the model has a user (kind %d)", ukind);
    if (ukind == K_EXPLICIT && u != ucur_id)
        fail("vmsrs_user_current() = %llu, began as %llu", (unsigned long long)u, (unsigned long long)ucur_id);
}

/* ----- main loop ------------------------------------------------------------------------- */

static void fuzz(void)
{
    for (iteration = 0; iteration < iterations; iteration++) {
        unsigned w = (unsigned)below(1000);
        if (ukind != K_EXPLICIT && w < 60) {
            /* begin a user; sometimes with the recovery-point macro (this frame stays) */
            if (chance(1, 3)) {
                CALL(F_BEGIN_MACRO);
                int r = VMSRS_USER_BEGIN();
                if (r == VMSRS_FAULTED)
                    fail("unexpected unwind to VMSRS_USER_BEGIN() under the oblivious policy");
                after_begin(r, "VMSRS_USER_BEGIN()");
            } else {
                CALL(F_BEGIN);
                after_begin(vmsrs_user_begin(), "vmsrs_user_begin");
            }
        } else if (w < 70) {
            if (chance(1, 2)) {
                CALL(F_BEGIN);
                after_begin(vmsrs_user_begin(), "vmsrs_user_begin (maybe double)");
            } else {
                CALL(F_BEGIN_MACRO);
                int r = VMSRS_USER_BEGIN();
                if (r == VMSRS_FAULTED)
                    fail("unexpected unwind to VMSRS_USER_BEGIN() under the oblivious policy");
                after_begin(r, "VMSRS_USER_BEGIN() (maybe double)");
            }
        } else if (w < 110) {
            op_end();
        } else if (w < 330) {
            op_store_block();
        } else if (w < 480) {
            op_scalar();
        } else if (w < 560) {
            op_load_block();
        } else if (w < 610) {
            op_assign();
        } else if (w < 680) {
            op_mem();
        } else if (w < 740) {
            op_profile();
        } else if (w < 780) {
            op_unprofile();
        } else if (w < 820) {
            op_ptr_add();
        } else if (w < 850) {
            op_ptr_check();
        } else if (w < 875) {
            op_crash();
        } else if (w < 925) {
            op_info();
        } else if (w < 955) {
            op_alloc();
        } else if (w < 970) {
            op_output();
        } else if (w < 980) {
            op_real_fault();
        } else {
            if (ukind != K_NONE || chance(1, 8))
                check_normal_reader("random");
        }
        check_user_state();
        if (trace) {
            struct vmsrs_stats s;
            vmsrs_stats(&s);
            check_stats(&s, 0);
        }
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3) {
        fprintf(stderr, "usage: %s <seed> <iterations>\n", argv[0]);
        return 2;
    }
    seed = strtoull(argv[1], NULL, 0);
    iterations = strtoull(argv[2], NULL, 0);
    const char *tr = getenv("API_FUZZ_TRACE");
    trace = tr && *tr && strcmp(tr, "0") != 0;
    rng_state = seed * 0x2545f4914f6cdd1dull + 1;
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        fail("cannot open /dev/null");

    uint8_t *heap = malloc(HEAP_LEN), *plainbuf = malloc(PLAIN_LEN);
    regions[0] = (struct region){ arena, ARENA_LEN, 0, 1 };
    regions[1] = (struct region){ heap, HEAP_LEN, ARENA_LEN, 1 };
    regions[2] = (struct region){ plainbuf, PLAIN_LEN, ARENA_LEN + HEAP_LEN, 0 };
    for (int r = 0; r < 3; r++)
        for (size_t k = 0; k < regions[r].len; k++) {
            regions[r].base[k] = (uint8_t)rnd();
            committed[regions[r].off + k] = regions[r].base[k];
        }

    CALL(F_INIT);
    expect_code(vmsrs_init_profile(NULL), 0, "vmsrs_init_profile");
    /* Two tables to start with; the fuzzer profiles and unprofiles more. */
    CALL(F_PROFILE);
    expect_code(vmsrs_profile(arena + 64, 512, "table0"), 0, "vmsrs_profile(table0)");
    model_profile((uintptr_t)arena + 64, 512);
    CALL(F_PROFILE);
    expect_code(vmsrs_profile(heap + 128, 256, "table1"), 0, "vmsrs_profile(table1)");
    model_profile((uintptr_t)heap + 128, 256);

    fuzz();

    /* Wind down: end the user, check the rest state once more. */
    cur_op = "wind down";
    if (ukind == K_EXPLICIT)
        op_end();
    if (ukind == K_IMPLICIT) {
        CALL(F_BEGIN);
        after_begin(vmsrs_user_begin(), "final begin");
        op_end();
    }
    for (int f = 0; f < F_COUNT; f++)
        if (calls[f] == 0)
            fail("%s was never called: raise the iteration count", fn_names[f]);
    struct vmsrs_stats s;
    vmsrs_stats(&s);
    printf("ok api_fuzz seed=%llu iterations=%llu cycles=%llu faulted_cycles=%llu faults=%llu "
           "bounds_faults=%llu ranges=%d restorations=%llu shadow_stores=%llu history_entries=%llu\n",
           seed, iterations, (unsigned long long)cycles, (unsigned long long)cycles_faulted,
           (unsigned long long)fault_count, (unsigned long long)bounds_count, nranges,
           (unsigned long long)s.restorations, (unsigned long long)s.shadow_stores,
           (unsigned long long)s.history_entries);
    for (int f = 0; f < F_COUNT; f++)
        printf("calls %s %llu\n", fn_names[f], calls[f]);
    return 0;
}
