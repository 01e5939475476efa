/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* watch=hw: a program key destructor that re-arms itself (glibc runs up to 4 rounds) and,
 * in its 2nd round, key created after libvmsrs's, runs a user that stores the watched global and faults. libvmsrs closed
 * the thread's watchpoints in round 2, so the store is unwatched; absorb makes it final. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
long limit __attribute__((aligned(64))) = 100;
static pthread_key_t k;
static int rounds, r3 = 99;
__attribute__((noinline)) int request(long v) {
    *(volatile long *)&limit = v;
    if (v == 666) *(volatile int *)0 = 1;
    return 0;
}
static void dtor(void *v) {
    rounds++;
    if ((long)v < 2) { pthread_setspecific(k, (void *)((long)v + 1)); return; }
    r3 = request(666);
}
static void *worker(void *a) { (void)a; request(100); pthread_setspecific(k, (void *)1); return 0; }
int main(void) {
    request(100); /* libvmsrs creates its exit key first */
    pthread_key_create(&k, dtor);
    pthread_t t; pthread_create(&t, 0, worker, 0); pthread_join(t, 0);
    printf("destructor rounds=%d r=%d limit=%ld (expect -1, 100) %s\n", rounds, r3, limit, r3 == -1 && limit == 100 ? "ok" : "FAIL");
    return 0;
}
