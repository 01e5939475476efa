/* Regression from a hostile review of VMSRS_PATCH_STORES (src/watch/patch.rs; tests/watch_patch.rs).
 * Unmodified program: no vmsrs.h. */
/* The old glibc lowlevellock idiom: "cmpl $0, multiple_threads; je 0f; lock; 0: cmpxchg"
 * -- a single-threaded process jumps past the lock prefix, into the instruction's second
 * byte. The instruction (9 bytes, RIP-relative) turns hot while the process has threads and
 * is patched; once single-threaded again the jump lands inside the rewritten bytes.
 * Unmodified program. Watch symbol:g:8; request is the rescue call. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

struct page_mates { long limit; long pad[7]; long word; };
struct page_mates g __attribute__((aligned(4096)));
int multiple_threads = 1;

/* compare-and-swap of g.word from old to new; returns the value seen */
__attribute__((noinline)) long cas_word(long old, long new) {
    long prev = old;
    __asm__ volatile(
        "cmpl $0, multiple_threads(%%rip)\n\t"
        "je 0f\n\t"
        "lock\n"
        "0:\tcmpxchgq %2, g+64(%%rip)\n\t"
        : "+a"(prev) : "m"(multiple_threads), "r"(new) : "memory", "cc");
    return prev;
}

__attribute__((noinline)) int request(int n) {
    for (int i = 0; i < n; i++) {
        long v;
        do v = g.word; while (cas_word(v, v + 1) != v);
    }
    return 0;
}

int main(void) {
    request(300);       /* "threaded": the locked form traps 300 times */
    request(1);         /* safe point: patched */
    multiple_threads = 0;
    request(1000);      /* single-threaded: the jump skips the lock prefix */
    printf("word=%ld (want 1301) %s\n", g.word, g.word == 1301 ? "OK" : "FAIL");
    return g.word != 1301;
}
