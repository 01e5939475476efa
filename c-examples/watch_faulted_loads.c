/*
 * watch_faulted_loads: a faulted user's own loads of a watched global (DESIGN §2 G4) in an
 * unmodified program, under LD_PRELOAD=libvmsrs.so with
 *
 *   VMSRS_RANGE_0=symbol:shared:2048  VMSRS_USER_CALL=session:-1  VMSRS_POLICY=oblivious
 *
 * Each call of session() on the worker thread is one user. The first stores table[0] = 7,
 * faults (a store through NULL, skipped), and goes on as a faulted user, step by step with the
 * main thread:
 *
 *   1. it loads table[0]: 7, its own earlier store (the main thread loads 1: G3);
 *   2. it stores table[1] = 9 (to its shadow) and loads 9 (the main thread loads 2);
 *   3. the main thread, a normal user, passes table[0] to write(2) (the kernel reads the keyed
 *      page: it works) and a signal handler on the main thread loads table[0] (handlers run
 *      with every key denied: one trap allows it) : both see 1;
 *   4. a thread the faulted user creates loads table[0]: 1 (it does not inherit the denial);
 *   5. its vector load (movdqu) of table[0..2] gets 7 and 9;
 *   6. while it is faulted, the watched page carries a protection key (/proc/self/smaps);
 *   7. it waits for a lock the main thread holds and then on a condition variable, both on
 *      the keyed page outside the range (the kernel refused these futex waits with EFAULT,
 *      and glibc aborted the process);
 *   8. a load libvmsrs does not emulate (por with a memory operand) is reported, gets what
 *      memory holds (1), and from then on the user's loads read memory.
 *
 * After it returns (its end point), its thread loads table[0] and table[1]: 1 and 2 (G7); a
 * second session stores table[2] = 5, loads 5, and passes table[2] to write(2) (its thread
 * allows the key again); the page carries no key any more.
 *
 * Prints "faulted_loads: OK" and exits 0; any wrong value is named and exits 1.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The watched range is the first 2 KiB (VMSRS_RANGE_0=symbol:shared:2048); a lock, a
   condition variable and a flag share its page, outside the range. */
static struct {
    volatile long table[256];
    pthread_mutex_t m;
    pthread_cond_t c;
    volatile int ready;
} shared __attribute__((aligned(4096))) = {.m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER};
#define table shared.table
static int *volatile null_ptr;
static sem_t to_main, to_worker;
static volatile long seen_in_handler;
static int failures;

static void check(const char *what, long got, long want) {
    if (got != want) {
        printf("FAIL %s: %ld, want %ld\n", what, got, want);
        failures++;
    } else {
        printf("ok %s: %ld\n", what, got);
    }
    fflush(stdout);
}

/* The protection key of the mapping holding table (smaps' ProtectionKey), or -1. */
static int table_key(void) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    uintptr_t want = (uintptr_t)table, lo = 0, hi = 0;
    int key = -1, in = 0;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2) {
            lo = a, hi = b;
            in = want >= lo && want < hi;
            continue;
        }
        if (in && sscanf(line, "ProtectionKey: %d", &key) == 1) break;
    }
    fclose(f);
    return key;
}

static void step(void) {
    sem_post(&to_main);
    sem_wait(&to_worker);
}

static void *child(void *arg) {
    (void)arg;
    return (void *)(intptr_t)table[0];
}

/* One user (VMSRS_USER_CALL=session:-1). */
__attribute__((noinline)) long session(int which) {
    if (which == 1) {
        table[2] = 5;
        return table[2];
    }
    table[0] = 7;
    *null_ptr = 1; /* contained: this user is faulted from here on */
    check("1. the faulted user loads its own earlier store", table[0], 7);
    step();
    table[1] = 9;
    check("2. the faulted user loads its shadow", table[1], 9);
    step(); /* 2 and 3: the main thread's loads, write(2) and handler */
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, child, NULL);
    pthread_join(t, &r);
    check("4. a thread the faulted user created loads", (long)(intptr_t)r, 1);
    /* A vector load (emulated) of table[0..2]: its own store and its shadow. */
    long pair[2];
    __m128i v;
    __asm__ volatile("movdqu %1, %0" : "=x"(v) : "m"(*(const __m128i *)table));
    memcpy(pair, &v, sizeof pair);
    check("5. the faulted user's movdqu: table[0]", pair[0], 7);
    check("5. the faulted user's movdqu: table[1]", pair[1], 9);
    check("6. the page is keyed while the user is faulted", table_key() > 0, 1);
    /* 7. It waits for the lock on the keyed page (the main thread holds it), then on the
       condition variable there: the kernel refused such futex waits (EFAULT) and glibc
       aborted. */
    step();
    pthread_mutex_lock(&shared.m);
    while (!shared.ready) pthread_cond_wait(&shared.c, &shared.m);
    pthread_mutex_unlock(&shared.m);
    check("7. the faulted user waited for the lock and the condition on the keyed page", shared.ready, 1);
    check("7. and still loads its own store", table[0], 7);
    /* 8. An instruction libvmsrs does not emulate for loads (por with a memory source):
       reported, and from here on this user's loads read memory. */
    __m128i z = _mm_setzero_si128();
    __asm__ volatile("por %1, %0" : "+x"(z) : "m"(*(const __m128i *)table));
    check("8. the faulted user's por (not emulated: memory)", _mm_cvtsi128_si64(z), 1);
    check("8. then its loads read memory", table[0], 1);
    return 0;
}

static void on_usr1(int sig) {
    (void)sig;
    seen_in_handler = table[0];
}

static void *worker(void *arg) {
    (void)arg;
    session(0);
    check("after the end point: table[0]", table[0], 1);
    check("after the end point: table[1]", table[1], 2);
    check("a second user loads its store", session(1), 5);
    int p[2];
    long got = 0;
    if (pipe(p) != 0 || write(p[1], (const void *)&table[2], 8) != 8 || read(p[0], &got, 8) != 8)
        check("write(2) of table[2] by the worker after its end point", -1, 5);
    else
        check("write(2) of table[2] by the worker after its end point", got, 5);
    return NULL;
}

int main(void) {
    table[0] = 1;
    table[1] = 2;
    sem_init(&to_main, 0, 0);
    sem_init(&to_worker, 0, 0);
    signal(SIGUSR1, on_usr1);
    pthread_t w;
    pthread_create(&w, NULL, worker, NULL);
    sem_wait(&to_main);
    check("1. the main thread loads", table[0], 1);
    sem_post(&to_worker);
    sem_wait(&to_main);
    check("2. the main thread loads", table[1], 2);
    int p[2];
    long got = 0;
    if (pipe(p) != 0 || write(p[1], (const void *)table, 8) != 8 || read(p[0], &got, 8) != 8)
        check("3. write(2) of the keyed page by the main thread", -1, 1);
    else
        check("3. write(2) of the keyed page by the main thread", got, 1);
    raise(SIGUSR1);
    check("3. a signal handler on the main thread loads", seen_in_handler, 1);
    sem_post(&to_worker);
    sem_wait(&to_main); /* the worker is at 7 */
    pthread_mutex_lock(&shared.m);
    sem_post(&to_worker);
    usleep(100 * 1000); /* the worker blocks on the lock */
    pthread_mutex_unlock(&shared.m);
    usleep(100 * 1000); /* ... then on the condition */
    pthread_mutex_lock(&shared.m);
    shared.ready = 1;
    pthread_cond_signal(&shared.c);
    pthread_mutex_unlock(&shared.m);
    pthread_join(w, NULL);
    check("the page carries no key after the end point", table_key(), 0);
    if (failures) return 1;
    puts("faulted_loads: OK");
    return 0;
}
