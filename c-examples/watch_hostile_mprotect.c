/* Regression test from the review of src/watch (tests/watch_hostile.rs): the program makes its
 * own watched page writable with mprotect (a JIT or a runtime unprotecting its data does), then
 * a faulting request stores to the watched global. That store once went straight to memory,
 * unjournaled, and survived the request's fault. Unmodified program: no vmsrs.h. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
long X __attribute__((aligned(4096))); /* watched */
int *volatile wild;
__attribute__((noinline)) int request(long v) {
    *(volatile long *)&X = v;
    wild = (int *)16;
    *wild = 1; /* fault */
    return 0;
}
static void *faulty(void *a) { return (void *)(long)request((long)a); }
int main(void) {
    if (mprotect((void *)((uintptr_t)&X & ~(uintptr_t)4095), 4096, PROT_READ | PROT_WRITE) != 0) {
        perror("mprotect");
        return 2;
    }
    pthread_t t;
    void *rc;
    pthread_create(&t, 0, faulty, (void *)666L);
    pthread_join(t, &rc);
    printf("request rc=%ld, X=%ld (%s)\n", (long)rc, X, X == 0 ? "OK: restored" : "FAIL: the faulty value survives");
    return X != 0;
}
