/* Regression test from the fourth hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. `limit` is watched by a hardware watchpoint (VMSRS_WATCH=hw), one perf
 * event descriptor per thread, which libvmsrs keeps in the top quarter of RLIMIT_NOFILE.
 *
 * The program dup2()s /dev/null onto the number of one of those descriptors (a worker's,
 * still running), as a program may do with any number, then more threads start and end. Before
 * the fix libvmsrs closed that number when the worker's events were closed, so the program's
 * write() to it failed with EBADF. The worker's later faulting request must still be withdrawn
 * (its watchpoint is opened again at its next request). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long limit __attribute__((aligned(64))) = 100;
volatile int *volatile nullp;
static volatile int go;

__attribute__((noinline)) int request(long v) {
    *(volatile long *)&limit = v;
    if (v == 666) *nullp = 1;
    return 0;
}
static void *worker(void *a) {
    (void)a;
    request(100);
    while (!go) usleep(1000);
    return (void *)(long)request(666);
}
static void *brief(void *a) { return (void *)(long)request((long)a); }

/* The highest descriptor that is a perf event (libvmsrs's), or -1. */
static int perf_fd(void) {
    DIR *d = opendir("/proc/self/fd");
    int best = -1;
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[300], l[64];
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(p, l, sizeof l - 1);
        if (n > 0 && (l[n] = 0, strstr(l, "perf_event")) && atoi(e->d_name) > best) best = atoi(e->d_name);
    }
    if (d) closedir(d);
    return best;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t w;
    pthread_create(&w, NULL, worker, NULL);
    usleep(20000);
    int fd = perf_fd();
    if (fd < 0) {
        printf("FAIL: no perf event descriptor (is watch=hw on?)\n");
        return 1;
    }
    int null = open("/dev/null", O_WRONLY);
    if (dup2(null, fd) != fd) {
        perror("dup2");
        return 1;
    }
    go = 1;
    void *r;
    pthread_join(w, &r);
    for (long i = 0; i < 300; i++) {
        pthread_t t;
        pthread_create(&t, NULL, brief, (void *)100L);
        pthread_join(t, NULL);
    }
    ssize_t n = write(fd, "x", 1);
    int ok = n == 1 && (long)r == -1 && limit == 100;
    printf("dup2 onto event descriptor %d: write -> %zd, worker's faulting request -> %ld, limit=%ld: %s\n", fd, n,
           (long)r, limit, ok ? "ok" : "FAIL");
    return !ok;
}
