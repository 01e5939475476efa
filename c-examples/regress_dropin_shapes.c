/* Drop-in rescue points on unusual function shapes, from 8 threads, faulting at various
 * depths. Each call's result is checked against the plain computation.
 *   VMSRS_USER_CALL=many_args:-1,vsum:-1,rec:-1,redzone:-1,tail:-1 VMSRS_POLICY=unwind */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
static int *volatile null_ptr;
static volatile int fault_at = -1;
__attribute__((noinline)) long many_args(long a, long b, long c, long d, long e, long f, long g, long h, double x, double y, long i, long j) {
    if (g == 13) *null_ptr = 1;
    return a + b + c + d + e + f + g + h + (long)x + (long)y + i + j;
}
__attribute__((noinline)) long vsum(int n, ...) {
    va_list ap; va_start(ap, n); long s = 0;
    for (int k = 0; k < n; k++) { long v = va_arg(ap, long); if (v == 13) *null_ptr = 1; s += v; }
    va_end(ap); return s;
}
__attribute__((noinline)) long rec(long n, long bad) {
    if (n == bad) *null_ptr = 1;
    if (n == 0) return 0;
    return n + rec(n - 1, bad);
}
__attribute__((noinline)) long redzone(long n) { /* leaf: locals in the red zone */
    volatile long buf[8]; for (int k = 0; k < 8; k++) buf[k] = n + k;
    if (n == 13) *null_ptr = 1;
    long s = 0; for (int k = 0; k < 8; k++) s += buf[k]; return s;
}
__attribute__((noinline)) long tail_target(long n) { if (n == 13) *null_ptr = 1; return n * 3; }
__attribute__((noinline)) long tail(long n) { return tail_target(n + 1); }
static long bad;
static void *worker(void *a) {
    long id = (long)a;
    for (long r = 0; r < 20000; r++) {
        long k = (r * 7 + id) % 20;
        long want, got;
        got = many_args(1, 2, 3, 4, 5, 6, k, 8, 9.0, 10.0, 11, 12); want = k == 13 ? -1 : 1 + 2 + 3 + 4 + 5 + 6 + k + 8 + 9 + 10 + 11 + 12;
        if (got != want) { printf("many_args(%ld) = %ld want %ld\n", k, got, want); bad++; }
        got = vsum(4, 1L, 2L, k, 4L); want = k == 13 ? -1 : 7 + k;
        if (got != want) { printf("vsum(%ld) = %ld want %ld\n", k, got, want); bad++; }
        got = rec(10, k); want = (k >= 0 && k <= 10) ? -1 : 55;
        if (got != want) { printf("rec(10,%ld) = %ld want %ld\n", k, got, want); bad++; }
        got = redzone(k); want = k == 13 ? -1 : 8 * k + 28;
        if (got != want) { printf("redzone(%ld) = %ld want %ld\n", k, got, want); bad++; }
        got = tail(k - 1); want = k == 13 ? -1 : 3 * k;
        if (got != want) { printf("tail(%ld) = %ld want %ld\n", k - 1, got, want); bad++; }
        if (bad > 20) exit(1);
    }
    return NULL;
}
int main(void) {
    pthread_t t[8];
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    printf("bad=%ld\n", bad);
    return bad != 0;
}
