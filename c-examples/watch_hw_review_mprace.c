/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* Page mode: another thread's mprotect(RW) of the watched page opens a window (the real
 * mprotect runs before after_mprotect re-protects) in which a faulting user's store lands
 * unjournaled and survives its fault. */
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
long limit __attribute__((aligned(4096))) = 100;
static volatile int stop;
__attribute__((noinline)) int request(long v) {
    *(volatile long *)&limit = v;
    if (v == 666) *(volatile int *)0 = 1;
    return 0;
}
static void *prot(void *a) {
    (void)a;
    while (!stop) mprotect((void *)((uintptr_t)&limit & ~4095UL), 4096, PROT_READ | PROT_WRITE);
    return 0;
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    pthread_t t; pthread_create(&t, 0, prot, 0);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int r = request(666);
        if (r != -1 || limit != 100) { if (bad++ < 3) printf("iter %d: r=%d limit=%ld (expect -1, 100)\n", i, r, limit); limit = 100; }
    }
    stop = 1; pthread_join(t, 0);
    printf("%d/%d faulting stores survived %s\n", bad, n, bad ? "FAIL" : "ok");
    return bad != 0;
}
