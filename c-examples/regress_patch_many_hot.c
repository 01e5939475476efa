/* Regression from a hostile review of VMSRS_PATCH_STORES (src/watch/patch.rs; tests/watch_patch.rs).
 * Unmodified program: no vmsrs.h. */
/* Six counters beside a monitored word, each incremented by its own instruction, all turning
 * hot within one request (before the next safe point): only four of them are ever patched;
 * the other two trap forever, and nothing is said. Unmodified program; symbol:g:8. */
#define _GNU_SOURCE
#include <stdio.h>
struct page_mates { long limit; long pad[7]; long c[6]; };
struct page_mates g __attribute__((aligned(4096)));
__attribute__((noinline)) int request(int n) {
    for (int i = 0; i < n; i++) {
        __atomic_fetch_add(&g.c[0], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&g.c[1], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&g.c[2], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&g.c[3], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&g.c[4], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&g.c[5], 1, __ATOMIC_RELAXED);
    }
    return 0;
}
int main(void) {
    request(300);                               /* all six turn hot in one request */
    for (int r = 0; r < 100; r++) request(100); /* 100 safe points */
    long want = 300 + 100 * 100;
    int ok = 1;
    for (int k = 0; k < 6; k++) ok &= g.c[k] == want;
    printf("counts %s\n", ok ? "OK" : "FAIL");
    return !ok;
}
