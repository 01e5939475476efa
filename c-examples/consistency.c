/*
 * consistency.c -- the consistency experiments of the paper's §5.1.3 (VMSRS, SHI Yi et al.,
 * J. Software 2015) on the roster of roster_table.h, with libvmsrs.
 *
 * Scenario 1 (Fig. 11): user 0 modifies five fields and crashes while other users read the
 *   same fields concurrently, i.e. while suppression mode is being entered. Every read that
 *   begins after the fault linearized (vmsrs_stats().users_faulted counts it) must see ALL
 *   the original values of Fig. 11(a) (7500, 3, 12500, 1, 30), never a mix with user 0's.
 *   Repeated many times to stress the race. Reads that overlap user 0's writes before its
 *   fault may see its values (they happened before the fault); they are counted, not checked.
 * Scenario 2 (Fig. 12): with user 0 crashed (suppressed), normal user 4 writes Jim Green's
 *   salary 50000, Steven Jackson's service 9 and zhang FY's salary 60000; user 3 then reads
 *   the whole roster and must print exactly the table of Fig. 12. After user 0's end point the
 *   table is unchanged (no rollback of user 4's writes).
 * Scenario 3 (Fig. 13): data/metadata atomicity. In each round a new user 0 writes three
 *   fields and crashes (so restoration of those granules is active), then user 4 stores new
 *   values while user 3 reads the same fields (monitored loads, and raw memory) in a tight
 *   loop. Once user 4's store has returned, user 3 never reads the previous value again, and
 *   raw memory is never re-restored to it. The last round writes the values of Fig. 13.
 * Scenario 3, phase A ("atomic"): with no user faulted, a monitored store and a concurrent
 *   monitored load of the same field are atomic: never a mix of the old and new value's bytes.
 *
 * Usage: consistency scenario1 [rounds] | scenario2 | scenario3 [rounds] | atomic | all
 * Works under VMSRS_POLICY=oblivious (the crashed user runs on, suppressed, until released)
 * and unwind (it is back at its recovery point at once). Exit 0 when every check held, 1 with
 * "FAIL: why" on stderr otherwise, 2 on bad usage.
 */
#define _GNU_SOURCE
#include "roster_table.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>

#define BAD_EMPLOYEE 7

static struct employee *roster;

static void wait_sem(sem_t *s, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    while (sem_timedwait(s, &ts) != 0) {
        if (errno == EINTR) continue;
        fail("timed out waiting for %s", what);
    }
}

static struct vmsrs_stats stats(void) {
    struct vmsrs_stats s;
    int rc = vmsrs_stats(&s);
    if (rc != 0) fail("vmsrs_stats: %s", vmsrs_strerror(rc));
    return s;
}

static void begin_user(const char *who) {
    int rc = vmsrs_user_begin();
    if (rc != 0) fail("%s: vmsrs_user_begin: %s", who, vmsrs_strerror(rc));
}

static void end_user(const char *who) {
    int rc = vmsrs_user_end();
    if (rc != 0) fail("%s: vmsrs_user_end returned %d (%s), expected a commit", who, rc, vmsrs_strerror(rc));
}

/* ---- the faulty user 0 ----------------------------------------------------------------- */

/* User 0 runs `writes`, then crashes on the guard page behind the roster. Under the oblivious
 * policy it then lingers, suppressed, until released; under unwind it is unwound (and ended)
 * at once. */
struct faulty {
    void (*writes)(struct faulty *f);
    long round;
    sem_t crashed, release;
    int told_failed; /* VMSRS_FAULTED came back from VMSRS_USER_BEGIN or vmsrs_user_end */
    pthread_t thread;
};

static void *faulty_thread(void *arg) {
    struct faulty *f = arg;
    int rc = VMSRS_USER_BEGIN();
    if (rc == VMSRS_FAULTED) { /* unwind policy */
        f->told_failed = 1;
        sem_post(&f->crashed);
        return NULL;
    }
    if (rc < 0) fail("user 0: VMSRS_USER_BEGIN: %s", vmsrs_strerror(rc));
    f->writes(f);
    int32_t s = roster_unchecked_salary(roster, BAD_EMPLOYEE); /* SIGSEGV */
    /* oblivious policy: the load was skipped */
    if (s != 0 || !vmsrs_user_suppressed()) fail("user 0 ran on after its crash without suppression");
    sem_post(&f->crashed);
    wait_sem(&f->release, "the release of user 0");
    rc = vmsrs_user_end();
    if (rc != VMSRS_FAULTED) fail("user 0: vmsrs_user_end returned %d, expected VMSRS_FAULTED", rc);
    f->told_failed = 1;
    return NULL;
}

/* Start user 0 and return once it has crashed (its fault is linearized by then). */
static void faulty_start(struct faulty *f) {
    f->told_failed = 0;
    if (sem_init(&f->crashed, 0, 0) != 0 || sem_init(&f->release, 0, 0) != 0) fail("sem_init");
    if (pthread_create(&f->thread, NULL, faulty_thread, f) != 0) fail("pthread_create");
    wait_sem(&f->crashed, "user 0's crash");
}

/* Let user 0 reach its end point and wait for it. */
static void faulty_finish(struct faulty *f) {
    sem_post(&f->release);
    if (pthread_join(f->thread, NULL) != 0) fail("pthread_join");
    if (!f->told_failed) fail("user 0 crashed but was not told it failed");
    sem_destroy(&f->crashed);
    sem_destroy(&f->release);
}

/* ---- scenario 1 (Fig. 11) -------------------------------------------------------------- */

/* The five fields of Fig. 11, their original values, and what user 0 writes there. */
#define S1_FIELDS 5
static int32_t *s1_field(int i) {
    switch (i) {
    case 0: return &roster[JIM].salary;
    case 1: return &roster[STEVEN].service;
    case 2: return &roster[ZHANG].salary;
    case 3: return &roster[DIM].apartment;
    default: return &roster[HOWARD].age;
    }
}
static const int32_t S1_ORIGINAL[S1_FIELDS] = {7500, 3, 12500, 1, 30};
static const int32_t S1_FAULTY[S1_FIELDS] = {20000, 6, 25000, 9, 99};
static const char *const S1_LABEL[S1_FIELDS] = {
    "Jim Green's salary", "steven jackson's length of service", "zhang FY's salary",
    "Dim White's NO. of apartment", "Howard's age"};

static atomic_long s1_round = -1; /* the round whose user 0 may be writing */
static atomic_int s1_stop;
static atomic_long s1_checked, s1_mixed_before_fault, s1_skipped;

static void s1_writes(struct faulty *f) {
    (void)f;
    for (int i = 0; i < S1_FIELDS; i++) VMSRS_SET(*s1_field(i), S1_FAULTY[i]);
}

/* A normal user reading the five fields, again and again. */
static void *s1_reader(void *arg) {
    (void)arg;
    begin_user("scenario 1 reader");
    while (!atomic_load(&s1_stop)) {
        long r1 = atomic_load(&s1_round);
        uint64_t faulted = stats().users_faulted;
        int32_t v[S1_FIELDS];
        for (int i = 0; i < S1_FIELDS; i++) v[i] = VMSRS_GET(*s1_field(i));
        long r2 = atomic_load(&s1_round);
        if (r1 != r2 || r1 < 0) { /* a round boundary fell inside the read */
            atomic_fetch_add(&s1_skipped, 1);
            continue;
        }
        /* Round r1's user 0 is the (r1+1)-th user to fault. */
        int after_fault = faulted >= (uint64_t)r1 + 1;
        int originals = 0;
        for (int i = 0; i < S1_FIELDS; i++) {
            if (v[i] == S1_ORIGINAL[i]) originals++;
            else if (v[i] != S1_FAULTY[i])
                fail("scenario 1: %s read as %d, neither original %d nor user 0's %d", S1_LABEL[i], v[i],
                     S1_ORIGINAL[i], S1_FAULTY[i]);
        }
        if (after_fault) {
            if (originals != S1_FIELDS)
                fail("scenario 1, round %ld: a read that began after user 0's fault saw %d of user 0's "
                     "values: %d %d %d %d %d",
                     r1, S1_FIELDS - originals, v[0], v[1], v[2], v[3], v[4]);
            atomic_fetch_add(&s1_checked, 1);
        } else if (originals != S1_FIELDS) {
            atomic_fetch_add(&s1_mixed_before_fault, 1);
        }
    }
    end_user("scenario 1 reader");
    return NULL;
}

static void scenario1(long rounds) {
    printf("== scenario 1 (Fig. 11): user 0 crashes while others read; %ld rounds ==\n", rounds);
    uint64_t faulted0 = stats().users_faulted;
    if (faulted0 != 0) fail("scenario 1 must run first (users_faulted=%llu)", (unsigned long long)faulted0);
    enum { READERS = 2 };
    pthread_t readers[READERS];
    for (int i = 0; i < READERS; i++)
        if (pthread_create(&readers[i], NULL, s1_reader, NULL) != 0) fail("pthread_create");

    for (long r = 0; r < rounds; r++) {
        struct faulty f = {.writes = s1_writes, .round = r};
        atomic_store(&s1_round, r);
        faulty_start(&f);
        if (r == 0) {
            /* The paper's user 1 of Fig. 11(a), while user 0 is suppressed (oblivious) or just
             * unwound (unwind). */
            begin_user("user 1");
            printf("new user 1 start...\n");
            for (int i = 0; i < S1_FIELDS; i++) {
                int32_t v = VMSRS_GET(*s1_field(i));
                printf("%s:%d\n", S1_LABEL[i], v);
                if (v != S1_ORIGINAL[i]) fail("user 1 read %s as %d, expected %d", S1_LABEL[i], v, S1_ORIGINAL[i]);
            }
            printf("user 1 is end\n");
            end_user("user 1");
        }
        faulty_finish(&f);
        for (int i = 0; i < S1_FIELDS; i++) /* G7: raw memory after user 0's end point */
            if (*s1_field(i) != S1_ORIGINAL[i]) fail("scenario 1: raw %s is %d after cleanup", S1_LABEL[i], *s1_field(i));
    }
    atomic_store(&s1_stop, 1);
    for (int i = 0; i < READERS; i++) pthread_join(readers[i], NULL);
    uint64_t faulted = stats().users_faulted;
    if (faulted != (uint64_t)rounds) fail("scenario 1: users_faulted=%llu, expected %ld", (unsigned long long)faulted, rounds);
    if (atomic_load(&s1_checked) == 0) fail("scenario 1: no read happened after a fault; nothing was checked");
    printf("scenario 1: PASS: %ld rounds; %ld reads after the fault all saw the original values; "
           "%ld reads before the fault saw user 0's writes in progress; %ld reads spanned a round "
           "boundary\n",
           rounds, atomic_load(&s1_checked), atomic_load(&s1_mixed_before_fault), atomic_load(&s1_skipped));
}

/* ---- scenario 2 (Fig. 12) -------------------------------------------------------------- */

static void s2_writes(struct faulty *f) {
    (void)f;
    VMSRS_SET(roster[JIM].salary, 20000);
    VMSRS_SET(roster[STEVEN].service, 6);
    VMSRS_SET(roster[DIM].salary, 99999);
}

/* The table of Fig. 12 (and Fig. 13). */
static void fig12_table(struct employee out[N_EMPLOYEES]) {
    memcpy(out, ROSTER_INITIAL, sizeof ROSTER_INITIAL);
    out[JIM].salary = 50000;
    out[STEVEN].service = 9;
    out[ZHANG].salary = 60000;
}

/* User 4 of Fig. 12: sets the three new values. */
static void user4_writes(int32_t jim_salary, int32_t steven_service, int32_t zhang_salary, int verbose) {
    begin_user("user 4");
    if (verbose) printf("new user 4 start...\nplease input the new value:\n");
    VMSRS_SET(roster[JIM].salary, jim_salary);
    VMSRS_SET(roster[STEVEN].service, steven_service);
    VMSRS_SET(roster[ZHANG].salary, zhang_salary);
    if (verbose) {
        printf("Jim Green's salary:%d\n", VMSRS_GET(roster[JIM].salary));
        printf("steven jackson's length of service:%d\n", VMSRS_GET(roster[STEVEN].service));
        printf("zhang FY's salary:%d\n", VMSRS_GET(roster[ZHANG].salary));
        printf("user 4 is end\n");
    }
    end_user("user 4");
}

/* User 3 of Fig. 12: reads and prints the whole roster; it must equal `want`. */
static void user3_reads(const char *when, const struct employee want[N_EMPLOYEES]) {
    struct employee rows[N_EMPLOYEES];
    begin_user("user 3");
    printf("new user 3 start...\n");
    roster_snapshot(roster, rows);
    roster_print(rows);
    printf("user 3 is end\n");
    end_user("user 3");
    if (roster_diff(when, rows, want) != 0) fail("user 3 read a wrong table %s", when);
}

static void scenario2(void) {
    printf("== scenario 2 (Fig. 12): user 4 writes, then user 3 reads, while user 0 is suppressed ==\n");
    struct employee want[N_EMPLOYEES];
    fig12_table(want);
    struct faulty f = {.writes = s2_writes};
    faulty_start(&f);
    user4_writes(50000, 9, 60000, 1);
    user3_reads("while user 0 is suppressed", want);
    faulty_finish(&f);
    printf("after user 0's end point:\n");
    user3_reads("after user 0's end point", want);
    if (roster_diff("raw memory", roster, want) != 0) fail("scenario 2: raw memory differs from Fig. 12");
    printf("scenario 2: PASS: user 3 read user 4's new values and the original rest (Fig. 12)\n");
}

/* ---- scenario 3 (Fig. 13) -------------------------------------------------------------- */

static long s3_rounds;
/* User 4's value of field i in round k; the last round writes Fig. 13's 50000, 9, 60000. */
static int32_t s3_value(int i, long k) {
    static const int32_t final[3] = {50000, 9, 60000};
    if (k < 0) { /* before the first round: the values scenario 2 left */
        static const int32_t before[3] = {50000, 9, 60000};
        return before[i] - 1;
    }
    return final[i] + (int32_t)(s3_rounds - 1 - k);
}
static int32_t s3_faulty_value(int i, long k) { return 900000 + 10 * (int32_t)k + i; }
static int32_t *s3_field(int i) {
    return i == 0 ? &roster[JIM].salary : i == 1 ? &roster[STEVEN].service : &roster[ZHANG].salary;
}
static const char *const S3_LABEL[3] = {"Jim Green's salary", "steven jackson's length of service",
                                        "zhang FY's salary"};

static atomic_long s3_phase;        /* 2k+1 while round k's user 0 writes; 2k+2 once it crashed */
static atomic_long s3_published = -1; /* the last round whose user 4 stores have returned */
static atomic_int s3_stop;
static atomic_long s3_checked, s3_skipped;

static void s3_writes(struct faulty *f) {
    for (int i = 0; i < 3; i++) VMSRS_SET(*s3_field(i), s3_faulty_value(i, f->round));
}

/* User 3: reads the three fields in a tight loop, through the API and in raw memory. */
static void *s3_reader(void *arg) {
    (void)arg;
    begin_user("scenario 3 user 3");
    while (!atomic_load(&s3_stop)) {
        long p1 = atomic_load(&s3_phase);
        long s = atomic_load(&s3_published);
        int32_t v[3], raw[3];
        for (int i = 0; i < 3; i++) v[i] = VMSRS_GET(*s3_field(i));
        for (int i = 0; i < 3; i++) raw[i] = *(volatile int32_t *)s3_field(i);
        long p2 = atomic_load(&s3_phase);
        if (p1 != p2 || (p1 & 1)) { /* round k's user 0 was writing: not a well-defined read */
            atomic_fetch_add(&s3_skipped, 1);
            continue;
        }
        /* Round k = p1/2 - 1 has crashed its user 0 (k = -1: before the first round). User 4's
         * store of round k has returned if s == k; else s == k-1 and it may be in progress. */
        long k = p1 / 2 - 1;
        if (s != k && s != k - 1) fail("scenario 3: inconsistent phase %ld / published %ld", p1, s);
        for (int i = 0; i < 3; i++) {
            int32_t now = s3_value(i, s);
            int ok = v[i] == now || (s == k - 1 && v[i] == s3_value(i, k));
            if (!ok)
                fail("scenario 3: user 3 read %s = %d in round %ld; user 4's last returned store was %d",
                     S3_LABEL[i], v[i], k, now);
            if (s == k && raw[i] != now)
                fail("scenario 3: raw %s = %d in round %ld after user 4's store of %d had returned: "
                     "re-restored to an old value",
                     S3_LABEL[i], raw[i], k, now);
        }
        atomic_fetch_add(&s3_checked, 1);
    }
    end_user("scenario 3 user 3");
    return NULL;
}

/* Phase A of scenario 3: no user faulted. User 4 stores two values alternately into Jim
 * Green's salary (4 bytes sharing a granule with his apartment number) while user 3 reads it
 * in a tight loop: every read must return one of the two values, never a mix of their bytes.
 * The two threads are pinned to different CPUs (when there are two) so they really overlap. */
#define S3A_SECONDS 1.5 /* how long user 3 reads */
#define S3A_V0 65535 /* 0x0000FFFF */
#define S3A_V1 65536 /* 0x00010000 */
static atomic_int s3a_done;
static atomic_long s3a_stores, s3a_reads;

static void pin_to_cpu(int cpu) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
}

static void *s3a_writer(void *arg) {
    (void)arg;
    pin_to_cpu(1);
    begin_user("scenario 3 user 4");
    long i = 0;
    for (; !atomic_load(&s3a_done); i++) VMSRS_SET(roster[JIM].salary, (i & 1) ? S3A_V1 : S3A_V0);
    end_user("scenario 3 user 4");
    atomic_store(&s3a_stores, i);
    return NULL;
}

static void *s3a_reader(void *arg) {
    (void)arg;
    pin_to_cpu(0);
    begin_user("scenario 3 user 3");
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = 0;
    for (;; n++) {
        if ((n & 0xFFFF) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 >= S3A_SECONDS) break;
        }
        int32_t v = VMSRS_GET(roster[JIM].salary);
        if (v != S3A_V0 && v != S3A_V1)
            fail("scenario 3: user 3 read Jim Green's salary = %d (0x%08x) while user 4 stored only %d and %d: "
                 "a torn (non-atomic) monitored store",
                 v, (unsigned)v, S3A_V0, S3A_V1);
    }
    end_user("scenario 3 user 3");
    atomic_store(&s3a_reads, n);
    atomic_store(&s3a_done, 1);
    return NULL;
}

static void scenario3_atomic(void) {
    printf("== scenario 3, phase A (Fig. 13): atomicity of a monitored store, no user faulted ==\n");
    begin_user("scenario 3 user 4");
    VMSRS_SET(roster[JIM].salary, S3A_V0);
    end_user("scenario 3 user 4");
    pthread_t w, r;
    if (pthread_create(&w, NULL, s3a_writer, NULL) != 0 || pthread_create(&r, NULL, s3a_reader, NULL) != 0)
        fail("pthread_create");
    pthread_join(r, NULL);
    pthread_join(w, NULL);
    if (atomic_load(&s3a_stores) < 2) fail("scenario 3, phase A: user 4 made no store");
    printf("scenario 3, phase A: PASS: %ld reads during %ld stores, every one a stored value (no torn store)\n",
           atomic_load(&s3a_reads), atomic_load(&s3a_stores));
}

static void scenario3(long rounds) {
    printf("== scenario 3 (Fig. 13): user 4 stores while user 3 reads, restoration active; %ld rounds ==\n",
           rounds);
    s3_rounds = rounds;
    /* Start from a known state: user 4's "round -1" values. */
    user4_writes(s3_value(0, -1), s3_value(1, -1), s3_value(2, -1), 0);
    atomic_store(&s3_phase, 0);
    pthread_t reader;
    if (pthread_create(&reader, NULL, s3_reader, NULL) != 0) fail("pthread_create");

    for (long k = 0; k < rounds; k++) {
        struct faulty f = {.writes = s3_writes, .round = k};
        atomic_store(&s3_phase, 2 * k + 1);
        faulty_start(&f);
        atomic_store(&s3_phase, 2 * k + 2);
        user4_writes(s3_value(0, k), s3_value(1, k), s3_value(2, k), 0);
        atomic_store(&s3_published, k);
        /* Let user 3 read a while after the store returned, user 0 still suppressed. */
        long seen = atomic_load(&s3_checked);
        for (int spin = 0; atomic_load(&s3_checked) < seen + 8; spin++) {
            if (spin > 2000000) fail("scenario 3: user 3 stopped reading");
            sched_yield();
        }
        for (int i = 0; i < 3; i++)
            if (*(volatile int32_t *)s3_field(i) != s3_value(i, k))
                fail("scenario 3, round %ld: raw %s = %d, user 4 stored %d", k, S3_LABEL[i], *s3_field(i),
                     s3_value(i, k));
        faulty_finish(&f);
        for (int i = 0; i < 3; i++) {
            int32_t v = VMSRS_GET(*s3_field(i)), raw = *(volatile int32_t *)s3_field(i);
            if (v != s3_value(i, k) || raw != s3_value(i, k))
                fail("scenario 3, round %ld: after user 0's end %s = %d (raw %d), user 4 stored %d", k,
                     S3_LABEL[i], v, raw, s3_value(i, k));
        }
    }
    atomic_store(&s3_stop, 1);
    pthread_join(reader, NULL);
    struct employee want[N_EMPLOYEES];
    fig12_table(want);
    user3_reads("at the end of scenario 3", want);
    if (atomic_load(&s3_checked) == 0) fail("scenario 3: user 3 made no checked read");
    printf("scenario 3: PASS: %ld rounds; %ld reads by user 3 never saw a value older than user 4's "
           "last returned store, and raw memory was never re-restored; %ld reads overlapped user 0's "
           "writes\n",
           rounds, atomic_load(&s3_checked), atomic_load(&s3_skipped));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    int s1 = strcmp(mode, "scenario1") == 0, s2 = strcmp(mode, "scenario2") == 0,
        s3 = strcmp(mode, "scenario3") == 0, atomic = strcmp(mode, "atomic") == 0, all = strcmp(mode, "all") == 0;
    if (!(s1 || s2 || s3 || atomic || all) || rounds < 0) {
        fprintf(stderr, "usage: %s scenario1 [rounds] | scenario2 | scenario3 [rounds] | atomic | all\n",
                argv[0]);
        return 2;
    }
    roster = roster_map();
    roster_profile(roster);
    if (s1 || all) scenario1(rounds ? rounds : 500);
    if (s2 || all) scenario2();
    if (atomic || all) scenario3_atomic();
    if (s3 || all) scenario3(rounds ? rounds : 300);
    struct vmsrs_stats st = stats();
    printf("vmsrs stats: users_faulted=%llu users_collected=%llu restorations=%llu corruptions=%llu\n",
           (unsigned long long)st.users_faulted, (unsigned long long)st.users_collected,
           (unsigned long long)st.restorations, (unsigned long long)st.corruptions);
    if (st.corruptions != 0) fail("libvmsrs reported %llu corruption(s); nothing corrupted recovery data",
                                  (unsigned long long)st.corruptions);
    printf("consistency: PASS\n");
    return 0;
}
