/* Regression test from a hostile review of src/watch (tests/watch_hostile.rs): see the test for
 * the defect it caught. Unmodified program: no vmsrs.h. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
long counter;                                   /* watched */
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* shares the watched page */
int *volatile wild;
#define N 5
#define ITERS 20000
__attribute__((noinline)) int request(int crash) {
    pthread_mutex_lock(&lock);
    counter++;
    if (crash) { wild = (int *)16; *wild = 1; }
    pthread_mutex_unlock(&lock);
    return 0;
}
static long normal_ok[N + 1];
static void *worker(void *a) {
    long id = (long)a; unsigned seed = id + 1;
    for (int i = 0; i < ITERS; i++) {
        int crash = id == N ? (rand_r(&seed) % 2 == 0) : 0;   /* one thread has the buggy requests */
        if (request(crash) == 0 && !crash) normal_ok[id]++;
    }
    return 0;
}
int main(void) {
    pthread_t t[N + 1];
    for (long i = 0; i <= N; i++) pthread_create(&t[i], 0, worker, (void *)i);
    for (int i = 0; i <= N; i++) pthread_join(t[i], 0);
    long want = 0; for (int i = 0; i <= N; i++) want += normal_ok[i];
    printf("counter=%ld normal increments=%ld %s\n", counter, want, counter == want ? "OK" : (counter > want ? "FAIL: a withdrawn increment survived" : "FAIL: a normal increment was lost"));
    return counter != want;
}
