/*
 * bench_locks.c -- the cost of libvmsrs's lock tracking (src/locks.rs) per lock/unlock pair
 * of an uncontended pthread_mutex (and pthread_spinlock), with libvmsrs preloaded vs without,
 * measured in the same run.
 *
 *   bench_locks -l path/to/libvmsrs.so [-r ROUNDS] [-n PAIRS]
 *
 * An unmodified program (no vmsrs.h). Each round runs this program twice as a child, once
 * plain and once with LD_PRELOAD=libvmsrs.so (alternating, so drift on the shared machine
 * hits both sides alike); each child, made multi-threaded first (as a server is, so glibc
 * takes no single-thread shortcut on either side), times PAIRS lock/unlock pairs five times
 * and reports its fastest time per pair. Printed: the median over ROUNDS of each side, the difference
 * in ns per pair, and the ratio. Reports, asserts nothing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_spinlock_t s;

static void *idle(void *arg) { return arg; }

/* Child: best of five timings of n pairs, ns per pair, for the mutex and the spinlock. */
static int child(long n) {
    /* Servers are multi-threaded: once a thread was created glibc stops taking its
     * single-thread shortcuts (a mutex without atomics), in both children alike. */
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
    pthread_spin_init(&s, PTHREAD_PROCESS_PRIVATE);
    double best_m = 1e30, best_s = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            pthread_mutex_lock(&m);
            pthread_mutex_unlock(&m);
        }
        double t1 = now_ns();
        for (long i = 0; i < n; i++) {
            pthread_spin_lock(&s);
            pthread_spin_unlock(&s);
        }
        double t2 = now_ns();
        if ((t1 - t0) / n < best_m) best_m = (t1 - t0) / n;
        if ((t2 - t1) / n < best_s) best_s = (t2 - t1) / n;
    }
    printf("%.3f %.3f\n", best_m, best_s);
    return 0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Run ourselves as a child (with `preload` as LD_PRELOAD, or none); read its two figures. */
static void run_child(const char *self, const char *preload, long n, double *mx, double *sp) {
    int fd[2];
    if (pipe(fd) != 0) exit(1);
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%ld", n);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        if (preload) setenv("LD_PRELOAD", preload, 1);
        else unsetenv("LD_PRELOAD");
        execle(self, self, "--child", nbuf, (char *)NULL, environ);
        _exit(127);
    }
    close(fd[1]);
    char buf[128] = {0};
    ssize_t got = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    if (got <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || sscanf(buf, "%lf %lf", mx, sp) != 2) {
        fprintf(stderr, "bench_locks: child (%s) failed\n", preload ? "preloaded" : "plain");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--child")) return child(atol(argv[2]));
    const char *lib = NULL;
    int rounds = 21;
    long n = 1L << 22;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-l") && i + 1 < argc) lib = argv[++i];
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_locks -l libvmsrs.so [-r ROUNDS] [-n PAIRS]\n");
            return 2;
        }
    }
    if (!lib || rounds < 1 || n < 1) {
        fprintf(stderr, "usage: bench_locks -l libvmsrs.so [-r ROUNDS] [-n PAIRS]\n");
        return 2;
    }
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return 1;
    self[k] = 0;
    double *pm = calloc(rounds, sizeof *pm), *ps = calloc(rounds, sizeof *ps);
    double *vm = calloc(rounds, sizeof *vm), *vs = calloc(rounds, sizeof *vs);
    for (int r = 0; r < rounds; r++) {
        run_child(self, NULL, n, &pm[r], &ps[r]);
        run_child(self, lib, n, &vm[r], &vs[r]);
    }
    double a = median(pm, rounds), b = median(vm, rounds);
    double c = median(ps, rounds), d = median(vs, rounds);
    printf("lock/unlock pair, uncontended, median of %d rounds (best of 5 x %ld pairs each)\n", rounds, n);
    printf("  pthread_mutex  plain %6.2f ns  libvmsrs %6.2f ns  +%5.2f ns  ratio %.2fx\n", a, b, b - a, b / a);
    printf("  pthread_spin   plain %6.2f ns  libvmsrs %6.2f ns  +%5.2f ns  ratio %.2fx\n", c, d, d - c, d / c);
    printf("INFO lock tracking: +%.2f ns per mutex lock/unlock pair (%.2fx)\n", b - a, b / a);
    return 0;
}
