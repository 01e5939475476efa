/* Regression from a hostile review of VMSRS_PATCH_STORES (src/watch/patch.rs; tests/watch_patch.rs).
 * Unmodified program: no vmsrs.h. */
/* A patched register-based instruction (lock addq $1,(%rdi); addq %rsi,(%rdi); adc) whose
 * address sometimes is the monitored word, sometimes unmapped: its store to the monitored
 * word must still trap and be withdrawn when the request faults (G1); unrelated counters
 * exact (G2); faults in the trampoline's slow path contained.
 * argv[1]: "null" also makes crashing requests fault through the patched instruction. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct page_mates { long limit; long pad[7]; long hits; long sum; unsigned long carry[2]; };
struct page_mates g __attribute__((aligned(4096)));
int *volatile wild;
static int null_mode;

__attribute__((noinline)) void bump(long *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }
__attribute__((noinline)) void addto(long *p, long v) { __asm__ volatile("addq %1,(%0)" :: "r"(p), "r"(v) : "memory", "cc"); }
/* 128-bit add: adc on the high word */
__attribute__((noinline)) void add128(unsigned long *p, unsigned long v) {
    __asm__ volatile("addq %1,(%0)\n\tadcq $0,0x8(%0)" :: "r"(p), "r"(v) : "memory", "cc");
}
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

__attribute__((noinline)) int request(int crash) {
    bump(&g.hits);
    pthread_mutex_lock(&mu);
    addto(&g.sum, 3);
    add128(g.carry, 0x8000000000000000ul);
    pthread_mutex_unlock(&mu);
    if (crash) {
        bump(&g.limit);          /* the patched instruction, storing to the monitored word */
        addto(&g.limit, 1000);
        if (null_mode) bump((long *)16);   /* faults inside the trampoline's slow path */
        wild = (int *)16;
        *wild = 1;
    }
    return 0;
}

#define T 4
#define R 20000
static long faulted[T];
static void *worker(void *a) {
    long id = (long)a;
    for (int i = 0; i < R; i++) if (request(i % 100 == 99) != 0) faulted[id]++;
    return NULL;
}
int main(int argc, char **argv) {
    null_mode = argc > 1 && strcmp(argv[1], "null") == 0;
    pthread_t t[T];
    for (long i = 0; i < T; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
    long f = 0; for (int i = 0; i < T; i++) f += faulted[i];
    long want = (long)T * R;
    unsigned long lo = (unsigned long)want * 0x8000000000000000ul, hi = (unsigned long)want / 2;
    int ok = g.hits == want && g.sum == 3 * want && g.limit == 0 && f == want / 100 &&
             g.carry[0] == lo && g.carry[1] == hi;
    printf("hits=%ld sum=%ld (want %ld, %ld) limit=%ld (want 0) faulted=%ld carry=%lu:%lu (want %lu:%lu) %s\n",
           g.hits, g.sum, want, 3 * want, g.limit, f, g.carry[1], g.carry[0], hi, lo, ok ? "OK" : "FAIL");
    return !ok;
}
