/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* A program key destructor that sets its key again (glibc runs up to 4 rounds of destructors)
 * and, in its 3rd round, runs a request that stores the watched global and faults. libvmsrs
 * closed the thread's watchpoints in the 2nd round, so the store went unwatched and stayed
 * (limit=666). The watchpoints now close in glibc's last round. */
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
    if ((long)v < 3) {
        pthread_setspecific(k, (void *)((long)v + 1));
        return;
    }
    r3 = request(666);
}
static void *worker(void *a) {
    (void)a;
    request(100);
    pthread_setspecific(k, (void *)1);
    return 0;
}
int main(void) {
    pthread_key_create(&k, dtor);
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    pthread_join(t, 0);
    int ok = rounds == 3 && r3 == -1 && limit == 100;
    printf("destructor rounds=%d r=%d limit=%ld: %s\n", rounds, r3, limit, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
