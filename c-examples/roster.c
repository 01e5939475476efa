/*
 * roster.c -- the roster server of the paper's §5.1.1 and §5.1.2 (VMSRS, SHI Yi et al.,
 * J. Software 2015): a multi-user server whose shared data set is the company roster of
 * roster_table.h. Each user is a thread that runs one request through the monitored API;
 * one user writes data, prints it, and then crashes on an out-of-bounds access into the
 * guard page behind the roster (a real SIGSEGV).
 *
 * Modes (argv[1]):
 *   fig8    Fig. 8, the general server program: build with -DVMSRS_DISABLE and the whole
 *           process dies with SIGSEGV when the faulty user crashes.
 *   fig9    Fig. 9, VMSRS recovery: built with libvmsrs the server keeps running; normal
 *           users before, during and after the faulty user's suppression see correct data;
 *           the faulty user is told it failed (VMSRS_USER_BEGIN() or vmsrs_user_end()
 *           return VMSRS_FAULTED) and its output is marked. Works under VMSRS_POLICY=oblivious
 *           (the faulting load is skipped; the user runs on suppressed) and unwind (the user
 *           returns to its recovery point).
 *           (fig8 and fig9 run the same server; they differ in the build and the banner.)
 *   fig10   Fig. 10(b), isolation: the faulty user writes monitored data, then overwrites the
 *           recovery area of those granules (vmsrs_debug_recovery_area) with garbage (0xEE
 *           bytes), then crashes. libvmsrs must detect and report the corruption and never
 *           restore the garbage into the roster.
 *   fig10a  Fig. 10(a), contrast: an "ordinary recovery" implemented here, in the program,
 *           with its recovery copy in ordinary memory and its own SIGSEGV handler. The same
 *           faulty user overwrites that copy; the blind restore writes the garbage back.
 *           Does not use libvmsrs at all (the test runs it from the -DVMSRS_DISABLE build).
 *
 * Exit status: 0 when the mode's expected outcome happened, 1 (with "FAIL: why" on stderr)
 * when an internal check failed, 2 on bad usage.
 */
#define _GNU_SOURCE
#include "roster_table.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <time.h>

/* The byte pattern the faulty user of Fig. 10 writes over recovery data. */
#define GARBAGE_BYTE 0xEE
#define GARBAGE_INT ((int32_t)0xEEEEEEEEu)

/* The out-of-range employee number in the faulty user's request. */
#define BAD_EMPLOYEE 7

static struct employee *roster;

/* Phase hand-off between the faulty user and the main thread:
 * fault_seen: the faulty user has crashed (and was contained);
 * may_end:    the faulty user (still suppressed under the oblivious policy) may end. */
static sem_t fault_seen, may_end;

enum outcome { OUT_RUNNING, OUT_COMMITTED, OUT_FAULTED };

struct user {
    int id;                          /* the paper's user number */
    void (*request)(struct user *u); /* what this user does */
    const struct employee *expect;   /* readers: the table they must see */
    uint64_t vmsrs_id;               /* the id libvmsrs gave this user */
    enum outcome outcome;
};

static void wait_sem(sem_t *s, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    while (sem_timedwait(s, &ts) != 0) {
        if (errno == EINTR) continue;
        fail("timed out waiting for %s", what);
    }
}

/* ---- users --------------------------------------------------------------------------- */

/* A user thread: one request between VMSRS_USER_BEGIN() (its recovery point) and
 * vmsrs_user_end() (its end point). */
static void *user_thread(void *arg) {
    struct user *u = arg;
    int rc = VMSRS_USER_BEGIN();
    if (rc == VMSRS_FAULTED) {
        /* Unwind policy: the crash brought the user back here, already ended. */
        u->outcome = OUT_FAULTED;
        printf("user %d failed: its request crashed and was contained; VMSRS_USER_BEGIN() "
               "returned VMSRS_FAULTED (unwound to its recovery point)\n",
               u->id);
        sem_post(&fault_seen);
        return NULL;
    }
    if (rc < 0) fail("user %d: VMSRS_USER_BEGIN: %s", u->id, vmsrs_strerror(rc));
    u->vmsrs_id = vmsrs_user_current();
#ifdef VMSRS_DISABLE
    vmsrs_printf("new user %d start...\n", u->id);
#else
    vmsrs_printf("new user %d start... (vmsrs user %llu)\n", u->id, (unsigned long long)u->vmsrs_id);
#endif
    u->request(u);
    vmsrs_printf("user %d is end\n", u->id);
    rc = vmsrs_user_end();
    if (rc == VMSRS_FAULTED) {
        u->outcome = OUT_FAULTED;
        printf("user %d failed: its request crashed and was contained; vmsrs_user_end() "
               "returned VMSRS_FAULTED\n",
               u->id);
    } else if (rc == 0) {
        u->outcome = OUT_COMMITTED;
    } else {
        fail("user %d: vmsrs_user_end: %s", u->id, vmsrs_strerror(rc));
    }
    return NULL;
}

static void run_user(struct user *u) {
    pthread_t t;
    if (pthread_create(&t, NULL, user_thread, u) != 0) fail("pthread_create");
    if (pthread_join(t, NULL) != 0) fail("pthread_join");
}

/* A normal user that reads and prints the whole roster and checks it. */
static void read_request(struct user *u) {
    struct employee rows[N_EMPLOYEES];
    roster_snapshot(roster, rows);
    roster_print(rows);
    if (u->expect && roster_diff("reader", rows, u->expect) != 0)
        fail("user %d read wrong data from the roster", u->id);
}

/* A normal user that gives Howard a raise while the faulty user is suppressed. */
static void raise_request(struct user *u) {
    VMSRS_SET(roster[HOWARD].salary, 11000);
    int32_t v = VMSRS_GET(roster[HOWARD].salary);
    vmsrs_printf("Howard's salary:%d\n", v);
    if (v != 11000) fail("user %d reads back Howard's salary %d, wrote 11000", u->id, v);
}

/* The faulty user of Fig. 8/9: writes data, prints it, then indexes the roster with an
 * out-of-range employee number (no bounds check) and reads the guard page. */
static void faulty_request(struct user *u) {
    VMSRS_SET(roster[JIM].salary, 20000);
    VMSRS_SET(roster[STEVEN].service, 6);
    VMSRS_SET(roster[ZHANG].salary, 30000);
    vmsrs_printf("Jim Green's salary:%d\n", VMSRS_GET(roster[JIM].salary));
    vmsrs_printf("steven jackson's length of service:%d\n", VMSRS_GET(roster[STEVEN].service));
    vmsrs_printf("zhang FY's salary:%d\n", VMSRS_GET(roster[ZHANG].salary));
    vmsrs_printf("looking up employee #%d ...\n", BAD_EMPLOYEE);

    int32_t s = roster_unchecked_salary(roster, BAD_EMPLOYEE); /* SIGSEGV */

    /* Reached only when the faulting load was skipped (oblivious policy): this user is now
     * suppressed. Its output is marked, its further writes stay private to it. */
    vmsrs_printf("employee #%d's salary:%d\n", BAD_EMPLOYEE, s);
    VMSRS_SET(roster[HOWARD].age, 99);
    vmsrs_printf("Howard's age:%d (only the faulty user sees this)\n", VMSRS_GET(roster[HOWARD].age));
    if (!vmsrs_user_suppressed()) fail("user %d: not suppressed after its crash", u->id);
    sem_post(&fault_seen);
    wait_sem(&may_end, "the end of the normal users"); /* linger, suppressed */
}

/* ---- fig8 / fig9 --------------------------------------------------------------------- */

static void print_stats(void) {
    struct vmsrs_stats s;
    if (vmsrs_stats(&s) != 0) return;
    printf("vmsrs stats: users_faulted=%llu users_collected=%llu faults_contained=%llu "
           "restorations=%llu instructions_skipped=%llu unwinds=%llu corruptions=%llu\n",
           (unsigned long long)s.users_faulted, (unsigned long long)s.users_collected,
           (unsigned long long)s.faults_contained, (unsigned long long)s.restorations,
           (unsigned long long)s.instructions_skipped, (unsigned long long)s.unwinds,
           (unsigned long long)s.corruptions);
}

static int fig9(const char *figure) {
    if (strcmp(figure, "fig8") == 0)
        printf("== Fig. 8: roster server, a user crashes (build: %s) ==\n",
#ifdef VMSRS_DISABLE
               "plain, without libvmsrs"
#else
               "with libvmsrs"
#endif
        );
    else
        printf("== Fig. 9: roster server with VMSRS recovery, a user crashes ==\n");

    roster = roster_map();
    roster_profile(roster);

    struct employee raised[N_EMPLOYEES];
    memcpy(raised, ROSTER_INITIAL, sizeof raised);
    raised[HOWARD].salary = 11000;

    struct user u1 = {.id = 1, .request = read_request, .expect = ROSTER_INITIAL};
    struct user u0 = {.id = 0, .request = faulty_request};
    struct user u2 = {.id = 2, .request = read_request, .expect = ROSTER_INITIAL};
    struct user u3 = {.id = 3, .request = raise_request};
    struct user u4 = {.id = 4, .request = read_request, .expect = raised};

    run_user(&u1); /* before the fault */

    pthread_t faulty;
    if (pthread_create(&faulty, NULL, user_thread, &u0) != 0) fail("pthread_create");
    wait_sem(&fault_seen, "the faulty user's crash");

    run_user(&u2); /* the faulty user is suppressed (oblivious) or already unwound (unwind) */
    run_user(&u3);
    sem_post(&may_end);
    if (pthread_join(faulty, NULL) != 0) fail("pthread_join");
    run_user(&u4); /* after the faulty user's end point */

    if (u0.outcome != OUT_FAULTED) fail("user 0 crashed but was not told it failed");
    struct user *normal[] = {&u1, &u2, &u3, &u4};
    for (int i = 0; i < 4; i++)
        if (normal[i]->outcome != OUT_COMMITTED) fail("normal user %d did not commit", normal[i]->id);
    /* G7: after the faulty user's end point no byte it wrote is left in raw memory. */
    if (roster_diff("raw memory", roster, raised) != 0) fail("raw memory holds the faulty user's data");

    print_stats();
    printf("roster server still running: users 1-4 served with correct data, user 0 contained\n");
    return 0;
}

/* ---- fig10: the faulty user overwrites the recovery area (VMSRS) --------------------- */

static void overwrite_recovery_area(const void *field, const char *what) {
    void *area = NULL;
    size_t len = 0;
    int rc = vmsrs_debug_recovery_area(field, &area, &len);
    if (rc != 0) fail("vmsrs_debug_recovery_area(%s): %s", what, vmsrs_strerror(rc));
    memset(area, GARBAGE_BYTE, len); /* the wild write: plain memory, no API */
    vmsrs_printf("overwrote the recovery area of %s: %zu bytes at %p with 0x%02X\n", what, len, area,
                 GARBAGE_BYTE);
}

static void corrupting_request(struct user *u) {
    (void)u;
    VMSRS_SET(roster[JIM].salary, 20000);
    VMSRS_SET(roster[STEVEN].service, 6);
    VMSRS_SET(roster[ZHANG].salary, 30000);
    vmsrs_printf("Jim Green's salary:%d\n", VMSRS_GET(roster[JIM].salary));
    vmsrs_printf("steven jackson's length of service:%d\n", VMSRS_GET(roster[STEVEN].service));
    vmsrs_printf("zhang FY's salary:%d\n", VMSRS_GET(roster[ZHANG].salary));
    overwrite_recovery_area(&roster[JIM].salary, "Jim Green's salary");
    overwrite_recovery_area(&roster[STEVEN].service, "steven jackson's length of service");
    overwrite_recovery_area(&roster[ZHANG].salary, "zhang FY's salary");
    vmsrs_printf("looking up employee #%d ...\n", BAD_EMPLOYEE);
    int32_t s = roster_unchecked_salary(roster, BAD_EMPLOYEE); /* SIGSEGV */
    vmsrs_printf("employee #%d's salary:%d\n", BAD_EMPLOYEE, s);
    sem_post(&fault_seen);
    wait_sem(&may_end, "the end of the normal users");
}

static uint64_t corruptions(void) {
    struct vmsrs_stats s;
    int rc = vmsrs_stats(&s);
    if (rc != 0) fail("vmsrs_stats: %s", vmsrs_strerror(rc));
    return s.corruptions;
}

/* What a normal user reads after the faulty user crashed: never a garbage byte; and any of
 * the faulty user's fields that is not back to its original value must have been reported
 * as corrupt (no silent failure). Returns how many of the 3 fields hold the original. */
static int check_after_corruption(const char *when, const struct employee rows[N_EMPLOYEES]) {
    const unsigned char *b = (const unsigned char *)rows;
    for (size_t i = 0; i + 4 <= sizeof(struct employee) * N_EMPLOYEES; i++)
        if (b[i] == GARBAGE_BYTE && b[i + 1] == GARBAGE_BYTE && b[i + 2] == GARBAGE_BYTE &&
            b[i + 3] == GARBAGE_BYTE)
            fail("%s: garbage from the recovery area was restored into the roster (offset %zu)", when, i);
    int restored = (rows[JIM].salary == ROSTER_INITIAL[JIM].salary) +
                   (rows[STEVEN].service == ROSTER_INITIAL[STEVEN].service) +
                   (rows[ZHANG].salary == ROSTER_INITIAL[ZHANG].salary);
    uint64_t c = corruptions();
    if (restored < 3 && c == 0)
        fail("%s: %d of the faulty user's 3 writes are still visible and no corruption was reported",
             when, 3 - restored);
    for (int i = 0; i < N_EMPLOYEES; i++)
        if (i != JIM && i != STEVEN && i != ZHANG && memcmp(&rows[i], &ROSTER_INITIAL[i], sizeof rows[i]))
            fail("%s: row %d changed although nobody wrote it", when, i);
    printf("%s: no garbage in the roster; %d of 3 fields the faulty user wrote hold their original "
           "value; corruptions reported: %llu\n",
           when, restored, (unsigned long long)c);
    return restored;
}

static int fig10(void) {
    printf("== Fig. 10(b): VMSRS recovery when the faulty user overwrites the recovery area ==\n");
    roster = roster_map();
    roster_profile(roster);

    struct user u0 = {.id = 0, .request = corrupting_request};
    struct user u1 = {.id = 1, .request = read_request};
    struct user u2 = {.id = 2, .request = read_request};
    struct employee rows[N_EMPLOYEES];

    pthread_t faulty;
    if (pthread_create(&faulty, NULL, user_thread, &u0) != 0) fail("pthread_create");
    wait_sem(&fault_seen, "the faulty user's crash");

    run_user(&u1); /* while the faulty user is suppressed (oblivious) */
    roster_snapshot(roster, rows);
    check_after_corruption("after the crash", rows);

    sem_post(&may_end);
    if (pthread_join(faulty, NULL) != 0) fail("pthread_join");
    if (u0.outcome != OUT_FAULTED) fail("user 0 crashed but was not told it failed");

    run_user(&u2); /* after the faulty user's end point */
    roster_snapshot(roster, rows);
    int restored = check_after_corruption("after the faulty user's end", rows);
    check_after_corruption("raw memory", roster);

    uint64_t c = corruptions();
    if (c == 0) fail("the overwritten recovery area was not detected (vmsrs_stats.corruptions == 0)");
    print_stats();
    printf("VMSRS: recovery-area corruption detected and reported (corruptions=%llu); garbage never "
           "restored; %d of 3 fields back to their original value\n",
           (unsigned long long)c, restored);
    return 0;
}

/* ---- fig10a: an ordinary recovery system inside the program ------------------------- */

/* The naive recovery system: a checkpoint of the roster in ordinary program memory, and a
 * SIGSEGV handler that jumps back to the request's recovery point, where the roster is
 * restored blindly from the checkpoint. Nothing protects the checkpoint from the program. */
static struct employee ordinary_recovery_copy[N_EMPLOYEES];
static sigjmp_buf ordinary_recovery_point;

static void ordinary_on_segv(int sig) {
    (void)sig;
    siglongjmp(ordinary_recovery_point, 1);
}

static void *ordinary_faulty_user(void *arg) {
    (void)arg;
    printf("new user 0 start...\n");
    memcpy(ordinary_recovery_copy, roster, sizeof ordinary_recovery_copy); /* checkpoint */
    if (sigsetjmp(ordinary_recovery_point, 1) != 0) {
        memcpy(roster, ordinary_recovery_copy, sizeof ordinary_recovery_copy); /* blind restore */
        printf("ordinary recovery: user 0 crashed; roster restored from its recovery copy\n");
        return NULL;
    }
    roster[JIM].salary = 20000;
    roster[STEVEN].service = 6;
    roster[ZHANG].salary = 30000;
    printf("Jim Green's salary:%d\n", roster[JIM].salary);
    printf("steven jackson's length of service:%d\n", roster[STEVEN].service);
    printf("zhang FY's salary:%d\n", roster[ZHANG].salary);
    memset(ordinary_recovery_copy, GARBAGE_BYTE, sizeof ordinary_recovery_copy); /* the wild write */
    printf("overwrote the recovery copy: %zu bytes at %p with 0x%02X\n", sizeof ordinary_recovery_copy,
           (void *)ordinary_recovery_copy, GARBAGE_BYTE);
    printf("looking up employee #%d ...\n", BAD_EMPLOYEE);
    int32_t s = roster_unchecked_salary(roster, BAD_EMPLOYEE); /* SIGSEGV */
    fail("employee #%d's salary %d: the out-of-bounds load did not fault", BAD_EMPLOYEE, s);
}

static int fig10a(void) {
    printf("== Fig. 10(a): ordinary recovery when the faulty user overwrites the recovery area ==\n");
    roster = roster_map();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ordinary_on_segv;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0) fail("sigaction");

    pthread_t t;
    if (pthread_create(&t, NULL, ordinary_faulty_user, NULL) != 0) fail("pthread_create");
    if (pthread_join(t, NULL) != 0) fail("pthread_join");

    printf("new user 1 start...\n");
    roster_print(roster);
    printf("user 1 is end\n");
    for (int i = 0; i < N_EMPLOYEES; i++)
        if (roster[i].salary != GARBAGE_INT)
            fail("expected the ordinary recovery to restore garbage, row %d salary is %d", i,
                 roster[i].salary);
    printf("ordinary recovery restored the overwritten copy: every row is garbage (salary %d)\n",
           GARBAGE_INT);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the transcript when the process dies (Fig. 8) */
    if (sem_init(&fault_seen, 0, 0) != 0 || sem_init(&may_end, 0, 0) != 0) fail("sem_init");
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "fig8") == 0 || strcmp(mode, "fig9") == 0) return fig9(mode);
    if (strcmp(mode, "fig10") == 0) return fig10(); /* needs libvmsrs */
    if (strcmp(mode, "fig10a") == 0) return fig10a();
    fprintf(stderr, "usage: %s fig8|fig9|fig10|fig10a\n", argv[0]);
    return 2;
}
