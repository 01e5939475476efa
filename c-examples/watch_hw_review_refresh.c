/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* watch=hw range + a page-protected range. A thread storing to the page-watched global runs
 * watch::on_trap -> hw::refresh() under the watch lock; a store to the hw range that lands
 * meanwhile is copied into the slot's copy unjournaled, its own trap finds "unchanged", and
 * the faulting user's store survives. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
long hwv __attribute__((aligned(4096))) = 100;
long pad1[511];
long pg __attribute__((aligned(4096))) = 0;
long pad2[511];
static volatile int stop;
__attribute__((noinline)) int request(long v) {
    *(volatile long *)&hwv = v;
    if (v == 666) *(volatile int *)0 = 1;
    return 0;
}
static void *pager(void *a) {
    (void)a;
    long i = 0;
    while (!stop) *(volatile long *)&pg = ++i;
    return 0;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000, nt = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t t[8];
    for (int i = 0; i < nt; i++) pthread_create(&t[i], 0, pager, 0);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int r = request(666);
        if (r != -1 || hwv != 100) { if (bad++ < 3) printf("iter %d: r=%d hwv=%ld (expect -1, 100)\n", i, r, hwv); hwv = 100; }
    }
    stop = 1; for (int i = 0; i < nt; i++) pthread_join(t[i], 0);
    printf("%d/%d faulting stores survived %s\n", bad, n, bad ? "FAIL" : "ok");
    return bad != 0;
}
