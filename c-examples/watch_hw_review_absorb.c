/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* watch=hw only. Thread A: users that fault touching no watched memory (fencing -> absorb
 * under the watch lock). Main: a user stores 666 to the hw-watched global, then faults.
 * If main's store lands while A is in fencing, absorb journals it as a final store of no
 * user (main's SIGTRAP is not A's), main's own trap then finds it "unchanged", and main's
 * faulting store survives its fault. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
long hwv __attribute__((aligned(64))) = 100;
static volatile int stop;
__attribute__((noinline)) int request(long v) {
    if (v == 1) { *(volatile int *)0 = 1; return 0; }   /* A: fault, no watched store */
    *(volatile long *)&hwv = v;
    if (v == 666) *(volatile int *)0 = 1;
    return 0;
}
static void *faulter(void *a) { (void)a; while (!stop) request(1); return 0; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000, nt = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t t[8];
    for (int i = 0; i < nt; i++) pthread_create(&t[i], 0, faulter, 0);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int r = request(666);
        if (r != -1 || hwv != 100) { if (bad++ < 3) printf("iter %d: r=%d hwv=%ld (expect -1, 100)\n", i, r, hwv); hwv = 100; }
    }
    stop = 1; for (int i = 0; i < nt; i++) pthread_join(t[i], 0);
    printf("%d/%d faulting stores survived %s\n", bad, n, bad ? "FAIL" : "ok");
    return bad != 0;
}
