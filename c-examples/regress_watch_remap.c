/*
 * regress_watch_remap: a watched global of two pages (VMSRS_RANGE_0=symbol:arr) that the
 * program moves (mremap) or maps over (mmap with MAP_FIXED), calls libvmsrs interposes as it
 * does munmap: the run stops being watched (said on stderr) before the kernel moves or
 * replaces its pages.
 *
 * Modes (argv[1]):
 *   move   mremap moves both pages elsewhere: the moved pages hold every byte and are the
 *          program's own private writable memory (a store lands, with no fault; a forked
 *          child's store does not reach the parent); a read-only page the program maps at
 *          the old address is its own (a store there is its own fault, never emulated);
 *   fixed  mmap(MAP_FIXED) maps a read-only page over the second page: a store there is the
 *          program's own fault, and the first page is the program's private writable memory.
 *
 * Before the fix the moved pages were still libvmsrs's read-only mapping of its memfd: the
 * store faulted and the correct user was suppressed; and a store to a page mapped over a
 * watched one was emulated into the old alias instead of faulting.
 *
 * Prints "remap: OK" and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((aligned(4096))) long arr[1024] = {1};

/* A forked child's store to p[i] must not reach the parent (the pages are private). */
static int private_to_fork(volatile long *p, int i)
{
    long before = p[i];
    pid_t c = fork();
    if (c < 0) {
        perror("fork");
        return 2;
    }
    if (c == 0) {
        p[i] = before + 1;
        _exit(p[i] == before + 1 ? 0 : 1);
    }
    int st = 0;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("FAIL: the child could not store (status %#x)\n", st);
        return 1;
    }
    if (p[i] != before) {
        printf("FAIL: the child's store reached the parent: %ld (want %ld)\n", p[i], before);
        return 1;
    }
    return 0;
}

static int move(void)
{
    arr[0] = 5;   /* watched: emulated through the alias */
    arr[600] = 6; /* second page */
    void *dst = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    volatile long *p = mremap(arr, 8192, 8192, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if (p == MAP_FAILED) {
        perror("mremap");
        return 2;
    }
    if (p[0] != 5 || p[600] != 6) {
        printf("FAIL: the moved pages hold p[0]=%ld p[600]=%ld (want 5, 6)\n", p[0], p[600]);
        return 1;
    }
    p[1] = 7;
    p[601] = 8;
    if (p[1] != 7 || p[601] != 8) {
        printf("FAIL: stores to the moved pages: p[1]=%ld p[601]=%ld (want 7, 8)\n", p[1], p[601]);
        return 1;
    }
    int rc = private_to_fork(p, 1);
    if (rc)
        return rc;
    /* The old address, mapped again read-only: the program's own page. */
    if (mmap(arr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)arr) {
        perror("mmap MAP_FIXED");
        return 2;
    }
    *(volatile long *)&arr[3] = 9; /* the program's own fault */
    if (*(volatile long *)&arr[3] != 0) {
        printf("FAIL: a store to a read-only page mapped at the old address landed: %ld\n", arr[3]);
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

static int fixed(void)
{
    arr[0] = 5;
    arr[600] = 6;
    if (mmap((char *)arr + 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
        (char *)arr + 4096) {
        perror("mmap MAP_FIXED");
        return 2;
    }
    *(volatile long *)&arr[600] = 9; /* the program's own fault: its page is read-only */
    long v = *(volatile long *)&arr[600];
    if (v != 0) {
        printf("FAIL: a store to the read-only page mapped over the watched one landed: %ld\n", v);
        return 1;
    }
    *(volatile long *)&arr[1] = 7; /* the first page: the program's own */
    if (arr[0] != 5 || arr[1] != 7) {
        printf("FAIL: the first page holds arr[0]=%ld arr[1]=%ld (want 5, 7)\n", arr[0], arr[1]);
        return 1;
    }
    int rc = private_to_fork(arr, 1);
    if (rc)
        return rc;
    printf("remap: OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "move") == 0)
        return move();
    if (argc > 1 && strcmp(argv[1], "fixed") == 0)
        return fixed();
    fprintf(stderr, "usage: regress_watch_remap move|fixed\n");
    return 2;
}
