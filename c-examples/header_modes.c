/*
 * header_modes.c -- vmsrs.h as C and C++ developers meet it.
 *
 * tests/header_modes.rs compiles this program in every supported language mode (C99, C11,
 * C17 strict with -pedantic and GNU; C++11 to C++20 through header_modes.cpp; GCC and
 * clang) with -Wall -Wextra -Werror, linked with libvmsrs and with -DVMSRS_DISABLE, and runs
 * it with VMSRS_POLICY=unwind. It uses only ISO C plus <pthread.h>, so strict modes see
 * no POSIX declarations unless the test defines _POSIX_C_SOURCE.
 *
 * Exercised: VMSRS_USER_BEGIN() (begin, and the return after a fault under the unwind
 * policy), VMSRS_GET/VMSRS_SET on profiled globals (scalars, a struct, through a pointer to
 * const and to volatile), the vmsrs_load* inline fast path (asserted present) and its call
 * path while another user is faulted, and a second inclusion of vmsrs.h.
 *
 * Prints "header_modes: PASS <language> <version> <build>" and exits 0, or names every
 * failed check on stderr and exits 1.
 */
#include <signal.h> /* glibc's sigcontext macros must not collide with vmsrs.h */
#ifdef HEADER_MODES_SETJMP_FIRST
#include <setjmp.h> /* the user's own <setjmp.h> before vmsrs.h */
#endif
#include <vmsrs.h>
#include <vmsrs.h> /* a second inclusion is harmless */

#include <pthread.h>
#include <stdio.h>

#if !defined(VMSRS_DISABLE) && !defined(VMSRS_NO_INLINE) && !defined(vmsrs_load32)
#error "vmsrs.h: the inline load fast path is off in this language mode"
#endif

struct pair {
    int16_t a;
    uint8_t b;
};

static uint32_t counter;   /* profiled */
static struct pair pairs[4]; /* profiled */
static uint64_t wide;      /* profiled */
static int failures;

#define CHECK(c)                                                                           \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "header_modes: check failed at line %d: %s\n", __LINE__, #c); \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

static uint32_t get_through_const(const uint32_t *p) { return VMSRS_GET(*p); }
static uint32_t get_through_volatile(volatile uint32_t *p) { return VMSRS_GET(*p); }
static void set_through_volatile(volatile uint32_t *p, uint32_t v) { VMSRS_SET(*p, v); }

#ifdef __cplusplus
/* C++ callers: the macros inside templates and on class-typed lvalues. */
template <typename T>
static T get_any(const T &lv) {
    return VMSRS_GET(lv);
}
template <typename T, typename V>
static void set_any(T &lv, V v) {
    VMSRS_SET(lv, v);
}
#endif

#ifndef VMSRS_DISABLE
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void wait_stage(int s) {
    pthread_mutex_lock(&mu);
    while (stage < s) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void set_stage(int s) {
    pthread_mutex_lock(&mu);
    stage = s;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* A user that stores and then faults; it stays suppressed until main has looked. */
static void *faulty_user(void *arg) {
    (void)arg;
    CHECK(VMSRS_USER_BEGIN() == 0);
    VMSRS_SET(counter, 666u);
    CHECK(vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL) == 0);
    CHECK(vmsrs_user_suppressed() == 1);
    set_stage(1);
    wait_stage(2);
    CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    return NULL;
}

static int *volatile wild; /* NULL: the unwind test's fault */
#endif

int main(void) {
    struct pair p;
    struct pair q;
    int rc;

    CHECK(vmsrs_init_profile(NULL) == 0);
    CHECK(vmsrs_profile(&counter, sizeof counter, "counter") == 0);
    CHECK(vmsrs_profile(pairs, sizeof pairs, "pairs") == 0);
    CHECK(vmsrs_profile(&wide, sizeof wide, "wide") == 0);

    /* A user that commits. */
    rc = VMSRS_USER_BEGIN();
    CHECK(rc == 0);
    VMSRS_SET(counter, 41u);
    VMSRS_SET(counter, VMSRS_GET(counter) + 1);
    p.a = -7;
    p.b = 200;
    VMSRS_SET(pairs[2], p);
    VMSRS_SET(pairs[1].b, 9);
    VMSRS_SET(wide, UINT64_C(0x0123456789abcdef));
    set_through_volatile(&counter, VMSRS_GET(counter));
    CHECK(vmsrs_user_end() == 0);

    CHECK(VMSRS_GET(counter) == 42);
    CHECK(vmsrs_load32(&counter) == 42);
    CHECK(get_through_const(&counter) == 42);
    CHECK(get_through_volatile(&counter) == 42);
    q = VMSRS_GET(pairs[2]);
    CHECK(q.a == -7 && q.b == 200);
    CHECK(vmsrs_load8(&pairs[1].b) == 9);
    CHECK(vmsrs_load64(&wide) == UINT64_C(0x0123456789abcdef));
    CHECK(vmsrs_load16((const uint16_t *)(const void *)&pairs[2].a) == (uint16_t)-7);
#ifdef __cplusplus
    CHECK(get_any(pairs[2]).a == -7);
    set_any(pairs[3], pairs[2]);
    set_any(counter, 42u);
    CHECK(get_any(pairs[3]).b == 200);
#endif

#ifndef VMSRS_DISABLE
    {
        /* While another user is faulted, loads take the call and never see its value. */
        pthread_t t;
        CHECK(pthread_create(&t, NULL, faulty_user, NULL) == 0);
        wait_stage(1);
        CHECK(vmsrs_load32(&counter) == 42);
        CHECK(VMSRS_GET(counter) == 42);
        set_stage(2);
        CHECK(pthread_join(t, NULL) == 0);
        CHECK(vmsrs_load32(&counter) == 42);
    }

    /* Under VMSRS_POLICY=unwind a real fault returns to VMSRS_USER_BEGIN(). */
    rc = VMSRS_USER_BEGIN();
    if (rc == 0) {
        VMSRS_SET(counter, 7u);
        *wild = 1;
        fprintf(stderr, "header_modes: the fault did not unwind (is VMSRS_POLICY=unwind set?)\n");
        failures++;
        vmsrs_user_end();
    } else {
        CHECK(rc == VMSRS_FAULTED);
    }
    CHECK(VMSRS_GET(counter) == 42);
#endif

    if (failures) {
        fprintf(stderr, "header_modes: %d check(s) failed\n", failures);
        return 1;
    }
#ifdef __cplusplus
    printf("header_modes: PASS c++ %ld", (long)__cplusplus);
#else
    printf("header_modes: PASS c %ld", (long)__STDC_VERSION__);
#endif
#ifdef VMSRS_DISABLE
    printf(" disabled\n");
#else
    printf(" libvmsrs\n");
#endif
    return 0;
}
