/*
 * locks_dropin.c -- locks held by an unwound user are released, drop-in mode. An unmodified
 * program (it does not include vmsrs.h): run it as
 *
 *   LD_PRELOAD=target/release/libvmsrs.so VMSRS_POLICY=unwind \
 *   VMSRS_USER_CALL=handle_request:-1 locks_dropin CASE
 *
 * handle_request() (exported with -rdynamic) is the rescue point: each call is one user, and
 * a fault below it makes it return -1.
 *
 *   mutex    a request locks a pthread_mutex another thread waits for (timedlock, 10 s),
 *            then faults: the call returns -1 and the waiter gets the mutex.
 *   rwlock   the same with a pthread_rwlock write lock.
 *   spin     the same with a pthread_spinlock.
 *   before   the request's thread locks a mutex before the call (outside the user): it is
 *            still that thread's after the call returned -1; the request's own lock is free.
 *
 * Prints "lock NAME ADDRESS" and "locks_dropin CASE: PASS"; exit 1 with "FAIL: ..."
 * otherwise (without libvmsrs the program dies of SIGSEGV; without the lock release the
 * waiter times out).
 */
#define _GNU_SOURCE
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
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t outer;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t spin;
static atomic_int held;
static int kind; /* 0 mutex, 1 rwlock, 2 spin */

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

/* One request: takes the lock the other thread needs, then faults. */
__attribute__((noinline)) int handle_request(int which) {
    switch (which) {
    case 0: pthread_mutex_lock(&m); break;
    case 1: pthread_rwlock_wrlock(&rw); break;
    default: pthread_spin_lock(&spin); break;
    }
    atomic_store(&held, 1);
    usleep(200 * 1000);
    *wild = which;
    switch (which) {
    case 0: pthread_mutex_unlock(&m); break;
    case 1: pthread_rwlock_unlock(&rw); break;
    default: pthread_spin_unlock(&spin); break;
    }
    return 0;
}

static void *request_thread(void *arg) {
    int outer_too = arg != NULL;
    if (outer_too) CHECK(pthread_mutex_lock(&outer) == 0, "lock outer");
    int rc = handle_request(kind);
    CHECK(rc == -1, "handle_request returned %d, not the rescue value -1", rc);
    if (outer_too) {
        rc = pthread_mutex_unlock(&outer);
        CHECK(rc == 0, "the lock taken before the call was released by the unwind (%s)", strerror(rc));
    }
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    while (!atomic_load(&held)) usleep(1000);
    struct timespec ts = deadline(10000);
    long rc;
    if (kind == 0) {
        rc = pthread_mutex_timedlock(&m, &ts);
        if (rc == 0) pthread_mutex_unlock(&m);
    } else if (kind == 1) {
        rc = pthread_rwlock_timedwrlock(&rw, &ts);
        if (rc == 0) pthread_rwlock_unlock(&rw);
    } else {
        time_t end = time(NULL) + 10;
        while ((rc = pthread_spin_trylock(&spin)) == EBUSY && time(NULL) < end) usleep(1000);
        if (rc == 0) pthread_spin_unlock(&spin);
    }
    return (void *)rc;
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    int before = 0;
    if (!strcmp(c, "mutex")) kind = 0;
    else if (!strcmp(c, "rwlock")) kind = 1;
    else if (!strcmp(c, "spin")) kind = 2;
    else if (!strcmp(c, "before")) kind = 0, before = 1;
    else {
        fprintf(stderr, "usage: locks_dropin mutex|rwlock|spin|before\n");
        return 2;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&outer, &a);
    pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
    printf("lock user %p\n", kind == 0 ? (void *)&m : kind == 1 ? (void *)&rw : (void *)&spin);
    if (before) printf("lock outer %p\n", (void *)&outer);
    fflush(stdout);
    pthread_t r, w;
    CHECK(pthread_create(&r, NULL, request_thread, before ? (void *)1 : NULL) == 0, "create");
    CHECK(pthread_create(&w, NULL, waiter, NULL) == 0, "create");
    void *wr;
    pthread_join(r, NULL);
    pthread_join(w, &wr);
    CHECK(wr == NULL, "the waiter did not get the lock the unwound request held (%s)", strerror((int)(long)wr));
    if (before) CHECK(pthread_mutex_trylock(&outer) == 0, "outer was not unlocked by its own thread");
    printf("locks_dropin %s: PASS\n", c);
    return 0;
}
