/* watch_patch.c -- data that only shares a page with a monitored range, stored to all the time
 * (MariaDB's global_query_id beside max_connections): VMSRS_PATCH_STORES takes its stores out
 * of the trap (tests/watch_patch.rs). Unmodified program: no vmsrs.h. Watch symbol:g:8.
 *
 *   request(what): the rescue call; adds 1 to g.hits (HIT, CRASH) or to g.limit (ADD_LIMIT,
 *   ADD_LIMIT_CRASH) with one locked-add instruction; CRASH also sets g.limit to 666; the
 *   crashing kinds then fault (their stores to the monitored word are withdrawn).
 * Workers run requests on 4 threads, one of them with a crashing request in every 500; the
 * main thread then does plain increments of g.plain (a RIP-relative add), then adds to the
 * monitored word with the patched instruction, some of them in faulting requests; a forked
 * child adds to g.hits and g.limit, which the parent must never see. Prints a line per check;
 * exit 0 if all hold. */
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

/* One locked add at an address in a register (`lock addq $1,(%rdi)`, 5 bytes): hot on g.hits,
 * so it is patched; later also on g.limit, the monitored word, where the patched code must
 * still trap (and a faulting request's add be withdrawn). Not the first instruction of
 * request: the rescue call's hook moves those out of the executable. Exported (-rdynamic):
 * libvmsrs patches only inside a function whose extent a dynamic symbol gives. */
__attribute__((noinline)) void add_at(long *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }

enum { HIT, CRASH, ADD_LIMIT, ADD_LIMIT_CRASH };

__attribute__((noinline)) int request(int what) {
    add_at(what == ADD_LIMIT || what == ADD_LIMIT_CRASH ? &g.limit : &g.hits);
    if (what == CRASH) g.limit = 666;
    if (what == CRASH || what == ADD_LIMIT_CRASH) {
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
        if (request(crash ? CRASH : HIT) != 0) faulted[id]++;
    }
    return NULL;
}

__attribute__((noinline)) void bump_plain(void) { g.plain++; }

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
        if (i % 1000 == 0) request(HIT); /* a rescue call: the safe point that patches */
    }
    printf("plain=%ld %s\n", g.plain, g.plain == PLAIN ? "OK" : "FAIL: a plain increment was lost");
    ok &= g.plain == PLAIN;

    /* The patched add on the monitored word: 1000 normal adds stay, 100 faulted ones go. */
    long added = 0, withdrawn = 0;
    for (int i = 0; i < 1100; i++) {
        int crash = i % 11 == 10;
        if (request(crash ? ADD_LIMIT_CRASH : ADD_LIMIT) != 0) withdrawn++;
        else added++;
    }
    printf("patched add on the monitored word: limit=%ld added=%ld withdrawn=%ld %s\n", g.limit, added,
           withdrawn, g.limit == added && withdrawn == 100 ? "OK" : "FAIL: a store to the range bypassed its trap");
    ok &= g.limit == added && withdrawn == 100;
    g.limit = 0; /* a store of main's implicit user, final */

    long before = g.hits;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; i++) request(HIT);
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
