/* README/header: "Every function may be called from a signal handler, even one that
 * interrupted another libvmsrs call on the same thread ... an asynchronous signal that
 * arrives while the thread is inside libvmsrs is re-queued and kept blocked until that call
 * returns". vmsrs_malloc/vmsrs_free call glibc's allocator before/after entering libvmsrs's
 * deferral window, so a SIGALRM handler calling vmsrs_malloc interrupts glibc malloc with
 * its arena lock held, and deadlocks (or corrupts the heap).
 * Expected: runs 2 s and prints "done". */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
static volatile unsigned long hits;
static void on_alarm(int sig) {
    (void)sig;
    void *p = vmsrs_malloc(100 + hits % 4000);
    vmsrs_free(p);
    hits++;
}
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 20}, {0, 20}};
    setitimer(ITIMER_REAL, &it, NULL);
    time_t t0 = time(NULL);
    unsigned long rounds = 0;
    void *keep[64] = {0};
    while (time(NULL) - t0 < 2) {
        unsigned i = rounds % 64;
        vmsrs_free(keep[i]);
        keep[i] = vmsrs_malloc(16 + (rounds * 37) % 5000);
        rounds++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    fprintf(stderr, "done: %lu rounds, %lu handler calls\n", rounds, hits);
    return 0;
}
