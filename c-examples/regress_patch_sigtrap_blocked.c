/* Regression from a hostile review of VMSRS_PATCH_STORES (src/watch/patch.rs; tests/watch_patch.rs).
 * Unmodified program: no vmsrs.h. */
/* A thread that runs a patched instruction with every signal blocked (sigfillset +
 * SIG_BLOCK, the common idiom libvmsrs already adjusts for SIGSEGV) while the patch is being
 * written: it meets the int3, and a blocked SIGTRAP forced by the kernel kills the process.
 * Unmodified program. Watch symbol:g:8; request is the rescue call. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

struct page_mates { long limit; long pad[7]; long hits; };
struct page_mates g __attribute__((aligned(4096)));
static volatile int stop;

/* lock addq $1,(%rdi): 5 bytes, register based: patchable. */
__attribute__((noinline)) void bump(long *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }

__attribute__((noinline)) int request(int n) {
    for (int i = 0; i < n; i++) bump(&g.hits);
    return 0;
}

static long spun, other_total;
static void *spinner(void *arg) {
    (void)arg;
    long other = 0, n = 0;       /* on this thread's stack: never watched */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);   /* a critical section with signals blocked */
    while (!stop) { bump(&other); n++; }
    spun = n; other_total = other;
    return NULL;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    usleep(20000);
    for (int r = 0; r < 20; r++) request(100);  /* 256 traps, then patched at an entry */
    stop = 1;
    pthread_join(t, NULL);
    printf("hits=%ld (want 2000) other=%ld spun=%ld %s\n", g.hits, other_total, spun,
           g.hits == 2000 && other_total == spun ? "OK" : "FAIL");
    return g.hits == 2000 && other_total == spun ? 0 : 1;
}
