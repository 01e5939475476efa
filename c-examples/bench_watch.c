/*
 * bench_watch: the cost of drop-in monitored ranges, in one run of an unmodified program
 * (DESIGN §6, §8). Run it under the preload with its range and rescue point:
 *
 *   LD_PRELOAD=target/release/libvmsrs.so VMSRS_RANGE_0=symbol:watched \
 *   VMSRS_RANGE_1=symbol:hw_word VMSRS_WATCH_1=hw \
 *   VMSRS_USER_CALL=poison:-1 VMSRS_POLICY=oblivious bench_watch [-r ROUNDS]
 *
 * (scripts/bench.sh does). Prints medians over ROUNDS (default 7) of:
 *   store    ns per 8-byte store to an unwatched global, and to a watched one (each traps,
 *            is decoded, emulated and journaled): the ratio is the trap's cost;
 *   hw       ns per store to a word watched by a hardware watchpoint (VMSRS_WATCH_1=hw: each
 *            store traps after it lands and is journaled), and to a word on the same page that
 *            is not watched (no trap: what page protection would have charged a trap for);
 *   restore  ns for a user's fault entry (the faulting store through NULL until the thread
 *            runs on) after it polluted all 512 granules of the watched page, against the same
 *            fault after it polluted none: the difference is the restoration of the page,
 *            which libvmsrs does at fault entry for watched ranges;
 *   faulted  ns per 8-byte load by the faulted user (after it polluted the page) of an
 *            unwatched global, and of the watched page, which carries the protection key its
 *            thread denies: each load traps and is emulated from its own view (G4), and must
 *            read its own earlier store.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORDS 512 /* one page of longs */

long watched[WORDS] __attribute__((aligned(4096)));
long unwatched[WORDS] __attribute__((aligned(4096)));
/* A page with a hardware-watched word and its unwatched neighbours. */
long hw_page[WORDS] __attribute__((aligned(4096)));
__asm__(".globl hw_word\n.type hw_word, @object\n.set hw_word, hw_page\n.size hw_word, 8\n");
#define hw_neighbours (hw_page + 8)
static int *volatile null_ptr;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double store_ns(volatile long *base, int n) {
    double t0 = now_ns();
    for (int i = 0; i < n; i++) base[i % WORDS] = i;
    return (now_ns() - t0) / n;
}

/* The faulting user: pollutes the whole page, faults (the store through NULL is skipped under
 * the oblivious policy and the user runs on, suppressed), then waits until the main thread has
 * measured its restoration before it ends. */
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: go, 2: polluted and faulted, 3: measured, 0: the user ended */
static int pollute;  /* this round's faulting user pollutes the page first */
static double fault_ns, fload_ns, fload_plain_ns;
static long fload_bad = -1; /* a load by the faulted user that did not read its own store */

#define FLOADS 2000

__attribute__((noinline)) int poison(long v) {
    if (pollute)
        for (int i = 0; i < WORDS; i++) ((volatile long *)watched)[i] = v;
    double t0 = now_ns();
    *null_ptr = 1;
    fault_ns = now_ns() - t0;
    if (pollute) {
        long sum = 0;
        t0 = now_ns();
        for (int i = 0; i < FLOADS; i++) sum += ((volatile long *)unwatched)[i % WORDS];
        fload_plain_ns = (now_ns() - t0) / FLOADS;
        t0 = now_ns();
        for (int i = 0; i < FLOADS; i++)
            if (((volatile long *)watched)[i % WORDS] != v) fload_bad = i % WORDS;
        fload_ns = (now_ns() - t0) / FLOADS;
        (void)sum;
    }
    pthread_mutex_lock(&m);
    phase = 2;
    pthread_cond_broadcast(&c);
    while (phase != 3) pthread_cond_wait(&c, &m);
    pthread_mutex_unlock(&m);
    return 0;
}

static void *faulter(void *arg) {
    (void)arg;
    for (long round = 1;; round++) {
        pthread_mutex_lock(&m);
        while (phase != 1) pthread_cond_wait(&c, &m);
        pthread_mutex_unlock(&m);
        poison(round);
        pthread_mutex_lock(&m);
        phase = 0;
        pthread_cond_broadcast(&c);
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int rounds = 7;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "-r") == 0) rounds = atoi(argv[++i]);
    if (rounds < 1 || rounds > 1000) {
        fprintf(stderr, "bench_watch: -r takes 1..1000\n");
        return 2;
    }
    double plain[1000], trapped[1000], clean[1000], restore[1000], hw[1000], hw_next[1000];
    double fload[1000], fload_plain[1000];
    for (int r = 0; r < rounds; r++) {
        plain[r] = store_ns(unwatched, 2000000);
        trapped[r] = store_ns(watched, 20000);
        double t0 = now_ns();
        for (int i = 0; i < 5000; i++) *(volatile long *)hw_page = i;
        hw[r] = (now_ns() - t0) / 5000;
        t0 = now_ns();
        for (int i = 0; i < 2000000; i++) ((volatile long *)hw_neighbours)[i & 255] = i;
        hw_next[r] = (now_ns() - t0) / 2000000;
    }
    /* The value normal users stored last: what every restoration must bring back. */
    for (int i = 0; i < WORDS; i++) ((volatile long *)watched)[i] = -1;
    pthread_t t;
    pthread_create(&t, NULL, faulter, NULL);
    for (int r = 0; r < 2 * rounds; r++) {
        pollute = r % 2;
        pthread_mutex_lock(&m);
        phase = 1;
        pthread_cond_broadcast(&c);
        while (phase != 2) pthread_cond_wait(&c, &m);
        pthread_mutex_unlock(&m);
        (pollute ? restore : clean)[r / 2] = fault_ns;
        if (pollute) {
            fload[r / 2] = fload_ns;
            fload_plain[r / 2] = fload_plain_ns;
            if (fload_bad >= 0) {
                printf("bench_watch: the faulted user's load of watched[%ld] did not read its own store\n", fload_bad);
                return 1;
            }
        }
        for (int i = 0; i < WORDS; i++)
            if (((volatile long *)watched)[i] != -1) {
                printf("bench_watch: watched[%d] = %ld after the restoration, want -1\n", i, watched[i]);
                return 1;
            }
        pthread_mutex_lock(&m);
        phase = 3;
        pthread_cond_broadcast(&c);
        while (phase != 0) pthread_cond_wait(&c, &m);
        pthread_mutex_unlock(&m);
    }
    double p = median(plain, rounds), s = median(trapped, rounds);
    double a = median(clean, rounds), b = median(restore, rounds);
    double h = median(hw, rounds), hn = median(hw_next, rounds);
    printf("store    unwatched %8.1f ns   watched (trapped) %8.1f ns   ratio %7.1fx   (medians of %d rounds)\n", p, s,
           s / p, rounds);
    printf("hw       watched word (watchpoint) %8.1f ns   ratio %7.1fx   unwatched neighbour on its page %6.1f ns   "
           "ratio %5.2fx\n",
           h, h / p, hn, hn / p);
    printf("restore  fault entry, nothing polluted %8.0f ns   with a page of %d polluted granules %8.0f ns   "
           "restoration %8.0f ns\n",
           a, WORDS, b, b - a);
    double fl = median(fload, rounds), flp = median(fload_plain, rounds);
    printf("faulted  load by the faulted user: unwatched %8.1f ns   its keyed page (trapped, emulated) %8.1f ns   "
           "ratio %7.1fx\n",
           flp, fl, fl / flp);
    return 0;
}
