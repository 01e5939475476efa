/* Regression from a hostile review of VMSRS_PATCH_STORES (src/watch/patch.rs; tests/watch_patch.rs).
 * Unmodified program: no vmsrs.h. */
/* A program that uses SIGTRAP as an ordinary signal (pthread_kill), its handler counting.
 * Once the increment of g.hits is patched, a SIGTRAP that interrupts a thread exactly at the
 * instruction after the patched one (where the trampoline jumps back) is taken by libvmsrs
 * for a hit of its int3 (rip-1 lies in the patched bytes): the thread is sent back to the
 * patched instruction, which runs a second time, and the program's handler never runs.
 * Unmodified program. Watch symbol:g:8; request is the rescue call. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct page_mates { long limit; long pad[7]; long hits; };
struct page_mates g __attribute__((aligned(4096)));
/* The handler's and the killer's own counters, off the watched page, so that this checks the
 * patch alone (a handler storing to the watched page while SIGTRAPs arrive every 20 us nested
 * without bound under CPU overload, patch or not: libvmsrs unblocked SIGTRAP inside the
 * program's SIGTRAP handler; regress_sigtrap_nesting.c is that one's regression). */
static struct { volatile long handled; long sent; volatile int stop; } own __attribute__((aligned(4096)));
#define handled own.handled
#define stop own.stop
#define sent own.sent

static void on_trap(int s) { (void)s; __atomic_fetch_add(&handled, 1, __ATOMIC_RELAXED); }

#define N 2000
/* The loop's lock addq $1,g+64(%rip) is 9 bytes, RIP-relative: patchable. */
__attribute__((noinline)) int request(int n) {
    for (int i = 0; i < n; i++) __atomic_fetch_add(&g.hits, 1, __ATOMIC_RELAXED);
    return 0;
}

static pthread_t worker_t;
static void *killer(void *arg) {
    (void)arg;
    while (!stop) { pthread_kill(worker_t, SIGTRAP); sent++; usleep(20); }
    return NULL;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    worker_t = pthread_self();
    request(300);                 /* 300 traps: the instruction turns hot */
    request(1);                   /* the safe point: patched now */
    long want = 301;
    pthread_t k;
    pthread_create(&k, NULL, killer, NULL);
    for (int r = 0; r < 2000; r++) { request(N); want += N; }
    stop = 1;
    pthread_join(k, NULL);
    usleep(1000);
    printf("hits=%ld want=%ld (%+ld) SIGTRAPs sent=%ld handled=%ld %s\n", g.hits, want, g.hits - want,
           sent, (long)handled, g.hits == want ? "OK" : "FAIL: increments executed twice");
    /* (handled may trail sent by a few natively: a pending SIGTRAP absorbs the next one) */
    return g.hits != want;
}
