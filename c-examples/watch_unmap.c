/*
 * watch_unmap: an unmodified program that unmaps the page of a watched global (as dlclose of a
 * library with a watched range does). Under LD_PRELOAD=libvmsrs.so, VMSRS_RANGE_0=symbol:
 * exe_global, VMSRS_USER_CALL=writer:-1 and VMSRS_POLICY=unwind, libvmsrs must stop watching
 * it (said on stderr) and must not take a later fault at that address for a watched page's:
 * the page is mapped again read-only, and writer()'s store to it is the user's own fault
 * (contained: writer returns -1), never a store emulated into a stale alias.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>

long exe_global[512] __attribute__((aligned(4096)));

__attribute__((noinline)) int writer(volatile long *p) {
    *p = 42;
    return 0;
}

int main(void) {
    exe_global[3] = 7; /* a watched store */
    if (munmap(exe_global, 4096) != 0) {
        perror("munmap");
        return 1;
    }
    void *p = mmap(exe_global, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p != (void *)exe_global) {
        perror("mmap");
        return 1;
    }
    printf("writer returned %d\n", writer(exe_global));
    printf("value %ld\n", exe_global[0]);
    return 0;
}
