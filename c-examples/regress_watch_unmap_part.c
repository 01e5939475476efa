/*
 * regress_watch_unmap_part: a watched global of two pages (VMSRS_RANGE_0=symbol:arr) whose
 * second page the program unmaps. The first page is still the program's own memory: a store
 * there must land (G2), with no fault, and it must be private again, as it was before it was
 * watched: a child made by fork writing there changes nothing in the parent.
 *
 * Before the fix the first page stayed the watched read-only mapping once the run stopped
 * being watched: the store faulted and the correct user was suppressed.
 *
 * Prints "unmap_part: OK" and exits 0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((aligned(4096))) long arr[1024] = {1};

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
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
