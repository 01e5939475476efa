/* watch_patch.c -- data that only shares a page with a monitored range, stored to all the time
 * (MariaDB's global_query_id beside max_connections): VMSRS_PATCH_STORES takes its stores out
 * of the trap (tests/watch_patch.rs). Unmodified program: no vmsrs.h. Watch symbol:g:8.
 *
 *   request(crash): the rescue call; adds 1 to g.hits (a locked add, RIP-relative) and, when
 *   crash, sets g.limit to 666 and faults (its store to the monitored range is withdrawn).
 * Workers run requests on 4 threads, one of them with a crashing request in every 500; the
 * main thread then does plain increments of g.plain, and a forked child adds to g.hits and
 * g.limit, which the parent must never see. Prints a line per check; exit 0 if all hold. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

struct page_mates {
    long limit; /* monitored (the range is its 8 bytes) */
    long pad[7];
    long hits;  /* outside the range, on its page: hot */
    long plain;
};
struct page_mates g __attribute__((aligned(4096)));
int *volatile wild;

#define THREADS 4
#define REQUESTS 50000
#define PLAIN 100000

/* Not the first instruction of request: the rescue call's hook moves those out of the
 * executable. */
__attribute__((noinline)) static void count_hit(void) { __atomic_fetch_add(&g.hits, 1, __ATOMIC_RELAXED); }

__attribute__((noinline)) int request(int crash) {
    count_hit();
    if (crash) {
        g.limit = 666;
        wild = (int *)16;
        *wild = 1;
    }
    return 0;
}

static long faulted[THREADS];

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < REQUESTS; i++) {
        int crash = id == 0 && i % 500 == 499;
        if (request(crash) != 0) faulted[id]++;
    }
    return NULL;
}

__attribute__((noinline)) static void bump_plain(void) { g.plain++; }

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    int ok = 1;
    long want = (long)THREADS * REQUESTS;
    printf("hits=%ld want=%ld %s\n", g.hits, want, g.hits == want ? "OK" : "FAIL: an increment was lost");
    ok &= g.hits == want;
    printf("faulted=%ld limit=%ld %s\n", faulted[0], g.limit,
           faulted[0] == REQUESTS / 500 && g.limit == 0 ? "OK" : "FAIL: a withdrawn store survived");
    ok &= faulted[0] == REQUESTS / 500 && g.limit == 0;

    for (int i = 0; i < PLAIN; i++) {
        bump_plain();
        if (i % 1000 == 0) request(0); /* a rescue call: the safe point that patches */
    }
    printf("plain=%ld %s\n", g.plain, g.plain == PLAIN ? "OK" : "FAIL: a plain increment was lost");
    ok &= g.plain == PLAIN;

    long before = g.hits;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; i++) request(0);
        g.limit = 7;
        _exit(g.hits == before + 1000 && g.limit == 7 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int child_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    usleep(10000);
    printf("fork: child %s, parent hits=%ld limit=%ld %s\n", child_ok ? "saw its stores" : "FAILED",
           g.hits, g.limit, g.hits == before && g.limit == 0 ? "OK" : "FAIL: the child's stores reached the parent");
    ok &= child_ok && g.hits == before && g.limit == 0;
    printf("%s\n", ok ? "ALL OK" : "FAILED");
    return !ok;
}
