/* Regression test from the second hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. */
/* mprotect(PROT_WRITE) (x86: readable and writable) of a page watched by page protection:
 * after_mprotect re-protects it with prot & ~PROT_WRITE = PROT_NONE, so reads fault. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
long limit __attribute__((aligned(4096))) = 100;
long other = 5; /* same page */
__attribute__((noinline)) int request(long v) { limit = v; return 0; }
int main(int argc, char **argv) {
    int prot = argc > 1 && argv[1][0] == 'x' ? PROT_WRITE | PROT_EXEC : PROT_WRITE;
    int rc = mprotect((void *)((uintptr_t)&limit & ~4095UL), 4096, prot);
    printf("mprotect rc=%d\n", rc); fflush(stdout);
    printf("read limit=%ld other=%ld\n", *(volatile long *)&limit, other); fflush(stdout);
    int r = request(7);
    printf("request r=%d limit=%ld (expect 0, 7)\n", r, limit);
    return 0;
}
