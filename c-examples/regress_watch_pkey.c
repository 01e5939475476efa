/*
 * regress_watch_pkey: a hostile review's findings on the protection key that makes a faulted
 * user's loads of watched pages see its own view (src/watch/pkey.rs), under LD_PRELOAD with
 *
 *   VMSRS_RANGE_0=symbol:shared:2048  VMSRS_USER_CALL=session:-1  VMSRS_POLICY=oblivious
 *
 * Modes (argv[1]):
 *   race     a normal thread's signal handler (which runs with every key denied) loads the
 *            watched page 20,000 times while a worker's faulted users key it and end (the key
 *            comes off): every load sees 1 and no normal user is contained (a fault raised
 *            while the key was on and reported after it came off, as key 0, was contained);
 *   handler  a user's first fault is inside a signal handler on its thread: after the handler
 *            returns it still loads its own store (the handler's frame denied the key, the
 *            code it interrupted did not);
 *   sem      a faulted user waits on a semaphore that shares the keyed page (the kernel
 *            refused the futex wait with EFAULT and glibc aborted the process);
 *   ownkey   the program's own protection key on the watched page survives a faulted user
 *            (its end point set the page's key to 0);
 *   sigwait  a faulted user blocked in sem_wait on the keyed page takes a signal (SA_RESTART)
 *            and waits on (the handler's return denied the key the wait had opened: the
 *            restarted futex wait failed with EFAULT and glibc aborted the process).
 *
 * Prints "pkey: OK" and exits 0; a wrong value is named and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static struct {
    volatile long table[256]; /* the watched range: 2 KiB */
    sem_t sem;                /* on the same page, outside the range */
} shared __attribute__((aligned(4096)));
#define table shared.table

static int *volatile null_ptr;
static atomic_int stop, bad, failures;
static const char *mode;
static volatile long in_handler;
static atomic_int hits, waiting;

static void check(const char *what, long got, long want) {
    if (got != want) {
        printf("FAIL %s: %ld, want %ld\n", what, got, want);
        failures++;
    }
}

/* The protection key of the mapping holding the table (smaps), or -1. */
static int table_key(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long want = (unsigned long)table;
    int key = -1, in = 0;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
            in = want >= a && want < b;
            continue;
        }
        if (in && sscanf(line, "ProtectionKey: %d", &key) == 1) break;
    }
    fclose(f);
    return key;
}

static void on_usr1(int s) {
    (void)s;
    if (table[0] != 1) atomic_fetch_add(&bad, 1);
}

static void on_hit(int s) {
    (void)s;
    atomic_fetch_add(&hits, 1);
}

static void on_usr2(int s) {
    (void)s;
    *null_ptr = 1; /* the user faults here, inside the handler */
    table[0] = 7;
    in_handler = table[0];
}

/* One user (VMSRS_USER_CALL=session:-1). */
__attribute__((noinline)) long session(int which) {
    if (!strcmp(mode, "race")) {
        *null_ptr = 1;
        table[0] = 7; /* to its shadow: the page is keyed until its end point */
        return which;
    }
    if (!strcmp(mode, "handler")) {
        signal(SIGUSR2, on_usr2);
        raise(SIGUSR2);
        check("the handler (faulted) loads its store", in_handler, 7);
        check("after the handler, the faulted user loads its store", table[0], 7);
        return 0;
    }
    table[0] = 7;
    *null_ptr = 1;
    check("the faulted user loads its store", table[0], 7);
    if (!strcmp(mode, "sem")) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 50 * 1000 * 1000;
        if (t.tv_nsec >= 1000000000) t.tv_sec++, t.tv_nsec -= 1000000000;
        int r = sem_timedwait(&shared.sem, &t);
        check("sem_timedwait on the keyed page times out", r == -1 && errno == ETIMEDOUT, 1);
        check("sem_wait on the keyed page", sem_post(&shared.sem) == 0 && sem_wait(&shared.sem) == 0, 1);
    }
    if (!strcmp(mode, "sigwait")) {
        waiting = 1;
        check("sem_wait on the keyed page, a signal in the middle", sem_wait(&shared.sem), 0);
        check("still loads its store", table[0], 7);
    }
    return 0;
}

static void *faulter(void *a) {
    (void)a;
    for (int i = 0; i < 20000 && !stop; i++) session(i);
    stop = 1;
    return NULL;
}

static void *normal(void *a) {
    (void)a;
    while (!stop) raise(SIGUSR1);
    return NULL;
}

static void *one_user(void *a) {
    (void)a;
    session(0);
    return NULL;
}

int main(int argc, char **argv) {
    mode = argc > 1 ? argv[1] : "";
    table[0] = 1;
    sem_init(&shared.sem, 0, 0);
    if (!strcmp(mode, "race")) {
        signal(SIGUSR1, on_usr1);
        pthread_t f, n;
        pthread_create(&n, NULL, normal, NULL);
        pthread_create(&f, NULL, faulter, NULL);
        pthread_join(f, NULL);
        pthread_join(n, NULL);
        check("handler loads that did not see 1", bad, 0);
    } else if (!strcmp(mode, "sigwait")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_hit;
        sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR1, &sa, NULL);
        pthread_t w;
        pthread_create(&w, NULL, one_user, NULL);
        while (!waiting) usleep(1000);
        usleep(50 * 1000); /* it blocks in the futex wait */
        pthread_kill(w, SIGUSR1);
        usleep(50 * 1000);
        sem_post(&shared.sem);
        pthread_join(w, NULL);
        check("signals the waiting user took", hits, 1);
    } else if (!strcmp(mode, "handler") || !strcmp(mode, "sem")) {
        pthread_t w;
        pthread_create(&w, NULL, one_user, NULL);
        pthread_join(w, NULL);
    } else if (!strcmp(mode, "ownkey")) {
        int k = pkey_alloc(0, 0);
        check("pkey_mprotect of the watched page", pkey_mprotect((void *)table, 4096, PROT_READ | PROT_WRITE, k), 0);
        pthread_t w;
        pthread_create(&w, NULL, one_user, NULL);
        pthread_join(w, NULL);
        check("the page's key after the faulted user", table_key(), k);
    } else {
        fprintf(stderr, "usage: regress_watch_pkey race|handler|sem|ownkey|sigwait\n");
        return 2;
    }
    check("the main thread loads", table[0], 1);
    if (failures) return 1;
    puts("pkey: OK");
    return 0;
}
