/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* A program key destructor that sets its key again (glibc runs up to 4 rounds of destructors)
 * and, in round N (argv[1], default 3), runs a request that stores the watched global and
 * faults. libvmsrs closed the thread's watchpoints in the 2nd round, later in the 4th before
 * the program's own destructor of that round, so the store went unwatched and stayed
 * (limit=666). With "pexit" as argv[2], the destructor's first call ends in pthread_exit
 * (glibc starts the rounds again). The watchpoints now stay open until the thread is gone. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
long limit __attribute__((aligned(64))) = 100;
static pthread_key_t k;
static int rounds, r3 = 99, fault_round = 3, pexit;
__attribute__((noinline)) int request(long v) {
    *(volatile long *)&limit = v;
    if (v == 666) *(volatile int *)0 = 1;
    return 0;
}
static void dtor(void *v) {
    rounds++;
    if (rounds < fault_round) {
        pthread_setspecific(k, (void *)((long)v + 1));
        if (pexit && rounds == 1) pthread_exit(NULL);
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
int main(int argc, char **argv) {
    if (argc > 1) fault_round = atoi(argv[1]);
    pexit = argc > 2;
    pthread_key_create(&k, dtor);
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    pthread_join(t, 0);
    int ok = rounds == fault_round && r3 == -1 && limit == 100;
    printf("destructor rounds=%d r=%d limit=%ld: %s\n", rounds, r3, limit, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
