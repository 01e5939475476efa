/* Regression test from a hostile review of src/watch (tests/watch_hostile.rs): see the test for
 * the defect it caught. Unmodified program: no vmsrs.h. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
long X;                               /* watched: a lock word / state, 0 = free */
int *volatile wild;
static volatile int step;
/* The buggy request: takes the "lock" (X = its id), then crashes holding it. */
__attribute__((noinline)) int request(int id) {
    __atomic_store_n(&X, id, __ATOMIC_SEQ_CST);
    step = 1;
    while (step != 2) {}              /* let a normal thread try the lock meanwhile */
    wild = (int *)16; *wild = 1;      /* fault */
    return 0;
}
static void *faulty(void *a) { (void)a; int rc = request(666); printf("faulty request rc=%d\n", rc); return 0; }
static void *normal(void *a) {
    (void)a;
    while (step != 1) {}
    long expected = 0;
    int ok = __atomic_compare_exchange_n(&X, &expected, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    printf("normal trylock: %s (saw %ld)\n", ok ? "got it" : "busy", expected);
    step = 2;
    return 0;
}
int main(void) {
    pthread_t f, n;
    pthread_create(&n, 0, normal, 0);
    pthread_create(&f, 0, faulty, 0);
    pthread_join(f, 0); pthread_join(n, 0);
    printf("after the faulty request was withdrawn: X=%ld (%s)\n", X, X == 0 ? "OK: restored" : "FAIL: the faulty user's value survives");
    return X != 0;
}
