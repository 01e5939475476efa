/*
 * regress_watch_unmap_part: a watched global of two pages (VMSRS_RANGE_0=symbol:arr) whose
 * second page the program unmaps. The first page is still the program's own memory: a store
 * there must land (G2), with no fault, and it must be private again, as it was before it was
 * watched: a child made by fork writing there changes nothing in the parent.
 *
 * Before the fix the first page stayed the watched read-only mapping once the run stopped
 * being watched: the store faulted and the correct user was suppressed.
 *
 * Modes (argv[1]):
 *   (none)    the above;
 *   refused   a munmap the kernel refuses (an address inside a page: EINVAL) changes nothing:
 *             every byte stays, and stores to both pages land (the run was given back and
 *             zeroed past the address, and its second page left read-only);
 *   readonly  the program makes the first page read-only, then unmaps the second: a store to
 *             the first page is the program's own fault (contained by libvmsrs, which skips
 *             it), never emulated, and the page stays read-only once given back.
 *
 * Prints "unmap_part: OK" and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((aligned(4096))) long arr[1024] = {1};

static int refused(void)
{
    arr[0] = 5;
    arr[500] = 42; /* first page */
    arr[600] = 43; /* second page */
    errno = 0;
    if (munmap((char *)arr + 100, 4096) == 0 || errno != EINVAL) {
        printf("FAIL: munmap of an address inside a page: %s\n", strerror(errno));
        return 1;
    }
    *(volatile long *)&arr[600] = 44;
    *(volatile long *)&arr[501] = 45;
    if (arr[0] != 5 || arr[500] != 42 || arr[600] != 44 || arr[501] != 45) {
        printf("FAIL: after a refused munmap arr[0]=%ld arr[500]=%ld arr[600]=%ld arr[501]=%ld (want 5 42 44 45)\n",
               arr[0], arr[500], arr[600], arr[501]);
        return 1;
    }
    printf("unmap_part: OK\n");
    return 0;
}

static int readonly(void)
{
    arr[3] = 5;
    if (mprotect(arr, 4096, PROT_READ) != 0 || munmap((char *)arr + 4096, 4096) != 0) {
        perror("mprotect/munmap");
        return 2;
    }
    *(volatile long *)&arr[3] = 6; /* the program's own fault */
    long v = *(volatile long *)&arr[3];
    if (v != 5) {
        printf("FAIL: a store to a page the program made read-only landed: arr[3]=%ld (want 5)\n", v);
        return 1;
    }
    printf("unmap_part: OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "refused") == 0)
        return refused();
    if (argc > 1 && strcmp(argv[1], "readonly") == 0)
        return readonly();
    arr[0] = 5; /* watched: emulated through the alias */
    if (munmap((char *)arr + 4096, 4096) != 0) {
        perror("munmap");
        return 2;
    }
    *(volatile long *)&arr[1] = 6; /* the first page: still mapped, the program's own */
    long v0 = *(volatile long *)&arr[0], v1 = *(volatile long *)&arr[1];
    if (v0 != 5 || v1 != 6) {
        printf("FAIL: after munmap arr[0]=%ld arr[1]=%ld (want 5, 6)\n", v0, v1);
        return 1;
    }
    pid_t c = fork();
    if (c < 0) {
        perror("fork");
        return 2;
    }
    if (c == 0) {
        *(volatile long *)&arr[1] = 7;
        _exit(*(volatile long *)&arr[1] == 7 ? 0 : 1);
    }
    int st = 0;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("FAIL: the child could not store to arr (status %#x)\n", st);
        return 1;
    }
    v1 = *(volatile long *)&arr[1];
    if (v1 != 6) {
        printf("FAIL: the child's store reached the parent: arr[1]=%ld (want 6)\n", v1);
        return 1;
    }
    printf("unmap_part: OK\n");
    return 0;
}
