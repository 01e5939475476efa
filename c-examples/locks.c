/*
 * locks.c -- locks held by an unwound user are released (DESIGN §5), linked mode. Run under
 * VMSRS_POLICY=unwind, one case per run:
 *
 *   mutex        a user locks a pthread_mutex and faults while another thread waits for it
 *                (pthread_mutex_timedlock, 10 s): the waiter gets it soon after the unwind.
 *   rwlock       the same with a pthread_rwlock write lock (the waiter: timedwrlock).
 *   rwlock-read  the same with a read lock (the waiter wants to write).
 *   spin         the same with a pthread_spinlock (the waiter: trylock until 10 s).
 *   before       a lock taken before VMSRS_USER_BEGIN() (outside the user) stays held by
 *                its thread after the unwind; the one the user took is released.
 *   nested       a recursive mutex locked once outside and twice inside the user, trylock
 *                and timedlock failures, an error-checking relock (EDEADLK), an unlock out of
 *                order, a balanced pair, two read locks, and 80 spinlocks locked and unlocked
 *                (beyond the record's capacity): after the unwind exactly the locks the user
 *                still held are released, each once, and nothing else.
 *   ended        a thread that never set a recovery point locks a mutex and faults: its
 *                thread is ended and the mutex released.
 *
 * Prints "lock NAME ADDRESS" for the locks the test harness looks for in the stderr report
 * ("released pthread_mutex ADDRESS held by the unwound user"), and "locks CASE: PASS".
 * Exit 1 with "FAIL: ..." otherwise: without the release, the waiter times out.
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int *volatile wild = (int *)16;

__attribute__((noinline)) static void fault(void) { *wild = 1; }

static struct timespec deadline(long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void show(const char *name, const void *addr) {
    printf("lock %s %p\n", name, addr);
    fflush(stdout);
}

/* ----- one user holds a lock another thread waits for ---------------------------------- */

enum kind { MUTEX, RWLOCK_W, RWLOCK_R, SPIN };

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t spin;
static atomic_int held;
static enum kind kind;

static void take(void) {
    switch (kind) {
    case MUTEX: CHECK(pthread_mutex_lock(&m) == 0, "lock"); break;
    case RWLOCK_W: CHECK(pthread_rwlock_wrlock(&rw) == 0, "wrlock"); break;
    case RWLOCK_R: CHECK(pthread_rwlock_rdlock(&rw) == 0, "rdlock"); break;
    case SPIN: CHECK(pthread_spin_lock(&spin) == 0, "spin_lock"); break;
    }
}

static void *faulty_user(void *arg) {
    (void)arg;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) return (void *)1;
    take();
    atomic_store(&held, 1);
    usleep(200 * 1000); /* the waiter is blocked on the lock by now */
    fault();
    vmsrs_user_end();
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    while (!atomic_load(&held)) usleep(1000);
    struct timespec ts = deadline(10000);
    int rc = 0;
    switch (kind) {
    case MUTEX:
        rc = pthread_mutex_timedlock(&m, &ts);
        if (rc == 0) pthread_mutex_unlock(&m);
        break;
    case RWLOCK_W:
    case RWLOCK_R:
        rc = pthread_rwlock_timedwrlock(&rw, &ts);
        if (rc == 0) pthread_rwlock_unlock(&rw);
        break;
    case SPIN: {
        double end = now_s() + 10;
        while ((rc = pthread_spin_trylock(&spin)) == EBUSY && now_s() < end) usleep(1000);
        if (rc == 0) pthread_spin_unlock(&spin);
        break;
    }
    }
    return (void *)(long)rc;
}

static void held_by_user(enum kind k) {
    kind = k;
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    const void *addr = k == MUTEX ? (const void *)&m : k == SPIN ? (const void *)&spin : (const void *)&rw;
    show("user", addr);
    pthread_t u, w;
    CHECK(pthread_create(&u, NULL, faulty_user, NULL) == 0, "create");
    CHECK(pthread_create(&w, NULL, waiter, NULL) == 0, "create");
    void *ur, *wr;
    pthread_join(u, &ur);
    pthread_join(w, &wr);
    CHECK(ur == (void *)1, "the user was not unwound to VMSRS_USER_BEGIN()");
    CHECK(wr == NULL, "the waiter did not get the lock the unwound user held (%s)", strerror((int)(long)wr));
}

/* ----- a lock taken outside the user stays held ----------------------------------------- */

static pthread_mutex_t outer, inner = PTHREAD_MUTEX_INITIALIZER;

static void errorcheck(pthread_mutex_t *mx) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(mx, &a);
}

static void *before_user(void *arg) {
    (void)arg;
    CHECK(pthread_mutex_lock(&outer) == 0, "lock outer");
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
        /* Still ours: an error-checking mutex refuses an unlock by a thread not owning it. */
        int rc = pthread_mutex_unlock(&outer);
        CHECK(rc == 0, "the lock taken before the recovery point was released by the unwind (%s)",
              strerror(rc));
        return (void *)1;
    }
    CHECK(pthread_mutex_lock(&inner) == 0, "lock inner");
    fault();
    vmsrs_user_end();
    return NULL;
}

static void before(void) {
    errorcheck(&outer);
    show("outer", &outer);
    show("inner", &inner);
    pthread_t u;
    void *ur;
    CHECK(pthread_create(&u, NULL, before_user, NULL) == 0, "create");
    pthread_join(u, &ur);
    CHECK(ur == (void *)1, "not unwound");
    struct timespec ts = deadline(10000);
    CHECK(pthread_mutex_timedlock(&inner, &ts) == 0, "inner was not released");
    CHECK(pthread_mutex_trylock(&outer) == 0, "outer was not unlocked by its own thread");
}

/* ----- nesting, failures, out-of-order unlocks, overflow -------------------------------- */

static pthread_mutex_t rec, a_ec, b_norm, e_ec, h_ec, p_norm = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw2 = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t many[80];
static atomic_int h_state; /* 1: the holder holds h_ec; 2: told to check and unlock it */

static void *h_holder(void *arg) {
    (void)arg;
    CHECK(pthread_mutex_lock(&h_ec) == 0, "lock h");
    atomic_store(&h_state, 1);
    while (atomic_load(&h_state) != 2) usleep(1000);
    int rc = pthread_mutex_unlock(&h_ec);
    CHECK(rc == 0, "h (held by another thread) is no longer its own (%s)", strerror(rc));
    return NULL;
}

static void *nested_user(void *arg) {
    (void)arg;
    CHECK(pthread_mutex_lock(&rec) == 0, "rec outside");
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
        /* rec: held once (the lock outside the user), no more. */
        CHECK(pthread_mutex_unlock(&rec) == 0, "rec was released more times than the user took it");
        CHECK(pthread_mutex_unlock(&rec) == EPERM, "rec was not released");
        /* a: unlocked by the user itself; e, b: released. */
        CHECK(pthread_mutex_unlock(&a_ec) == EPERM, "a");
        CHECK(pthread_mutex_trylock(&e_ec) == 0 && pthread_mutex_unlock(&e_ec) == 0, "e was not released");
        CHECK(pthread_mutex_trylock(&b_norm) == 0 && pthread_mutex_unlock(&b_norm) == 0, "b was not released");
        CHECK(pthread_rwlock_trywrlock(&rw2) == 0 && pthread_rwlock_unlock(&rw2) == 0, "rw2 still read-locked");
        return (void *)1;
    }
    CHECK(pthread_mutex_lock(&rec) == 0, "rec inside");
    CHECK(pthread_mutex_trylock(&rec) == 0, "rec trylock inside");
    CHECK(pthread_mutex_lock(&a_ec) == 0, "a");
    CHECK(pthread_mutex_lock(&b_norm) == 0, "b");
    CHECK(pthread_mutex_unlock(&a_ec) == 0, "a out of order");
    CHECK(pthread_mutex_trylock(&h_ec) == EBUSY, "h trylock must fail");
    struct timespec ts = deadline(20);
    CHECK(pthread_mutex_timedlock(&h_ec, &ts) == ETIMEDOUT, "h timedlock must time out");
    CHECK(pthread_mutex_lock(&e_ec) == 0, "e");
    CHECK(pthread_mutex_lock(&e_ec) == EDEADLK, "e relock must fail");
    CHECK(pthread_mutex_lock(&p_norm) == 0 && pthread_mutex_unlock(&p_norm) == 0, "p");
    CHECK(pthread_rwlock_rdlock(&rw2) == 0, "rw2 rd");
    CHECK(pthread_rwlock_tryrdlock(&rw2) == 0, "rw2 tryrd");
    CHECK(pthread_rwlock_trywrlock(&rw2) == EBUSY, "rw2 trywr must fail");
    for (int i = 0; i < 80; i++) CHECK(pthread_spin_lock(&many[i]) == 0, "many");
    for (int i = 79; i >= 0; i--) CHECK(pthread_spin_unlock(&many[i]) == 0, "many");
    fault();
    vmsrs_user_end();
    return NULL;
}

static void nested(void) {
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_settype(&at, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rec, &at);
    errorcheck(&a_ec);
    errorcheck(&e_ec);
    errorcheck(&h_ec);
    pthread_mutex_init(&b_norm, NULL);
    for (int i = 0; i < 80; i++) pthread_spin_init(&many[i], PTHREAD_PROCESS_PRIVATE);
    show("rec", &rec);
    show("a", &a_ec);
    show("b", &b_norm);
    show("e", &e_ec);
    show("h", &h_ec);
    show("p", &p_norm);
    show("rw2", &rw2);
    pthread_t h, u;
    CHECK(pthread_create(&h, NULL, h_holder, NULL) == 0, "create");
    while (atomic_load(&h_state) != 1) usleep(1000);
    void *ur;
    CHECK(pthread_create(&u, NULL, nested_user, NULL) == 0, "create");
    pthread_join(u, &ur);
    CHECK(ur == (void *)1, "not unwound");
    atomic_store(&h_state, 2);
    pthread_join(h, NULL);
}

/* ----- a thread ended for lack of a recovery point ------------------------------------- */

static void *no_recovery(void *arg) {
    (void)arg;
    CHECK(pthread_mutex_lock(&m) == 0, "lock");
    fault();
    return NULL;
}

static void ended(void) {
    show("user", &m);
    pthread_t u;
    CHECK(pthread_create(&u, NULL, no_recovery, NULL) == 0, "create");
    pthread_join(u, NULL);
    struct timespec ts = deadline(10000);
    CHECK(pthread_mutex_timedlock(&m, &ts) == 0, "the ended thread's mutex was not released");
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    CHECK(vmsrs_init_profile(NULL) == 0, "vmsrs_init_profile");
    if (!strcmp(c, "mutex")) held_by_user(MUTEX);
    else if (!strcmp(c, "rwlock")) held_by_user(RWLOCK_W);
    else if (!strcmp(c, "rwlock-read")) held_by_user(RWLOCK_R);
    else if (!strcmp(c, "spin")) held_by_user(SPIN);
    else if (!strcmp(c, "before")) before();
    else if (!strcmp(c, "nested")) nested();
    else if (!strcmp(c, "ended")) ended();
    else {
        fprintf(stderr, "usage: locks mutex|rwlock|rwlock-read|spin|before|nested|ended\n");
        return 2;
    }
    printf("locks %s: PASS\n", c);
    return 0;
}
