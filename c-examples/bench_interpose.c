/*
 * bench_interpose.c -- the no-fault cost of libvmsrs's interposed libc functions (drop-in
 * mode): a malloc/free pair (64 B), memcpy of 16 B and of 4 KiB, printf to /dev/null, and
 * a call of a rescue point (an empty function hooked by VMSRS_USER_CALL=bench_hooked:0: the
 * begin and end of one user, the cost a server pays per request), in an unmodified program,
 * with and without LD_PRELOAD=libvmsrs.so, in the same run. Build with -rdynamic (the hooked
 * function must be in the dynamic symbol table).
 *
 *   bench_interpose -p /path/to/libvmsrs.so [-r ROUNDS]
 *
 * The parent runs ROUNDS (default 11) pairs of child runs, alternating the order in each pair
 * (plain then preloaded, preloaded then plain) so drift on the shared machine hits both
 * sides; each child (-c) times every operation over a fixed number of iterations and reports
 * ns/op. Printed: the median ns/op of each side, and the ratio preloaded/plain of the
 * medians. The benchmarking thread runs no user, so this is the path every call of a server
 * takes while no user is faulted. Reports, never asserts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

extern char **environ;

#define OPS 5
static const char *names[OPS] = {"malloc+free 64B", "memcpy 16B", "memcpy 4KiB", "printf /dev/null",
                                 "rescue call"};
static const long iters[OPS] = {4000000, 8000000, 1000000, 1000000, 2000000};

/* The rescue point of op 4: a request that counts itself. */
volatile long requests;
__attribute__((noinline, visibility("default"))) long bench_hooked(long i) {
    requests++;
    return i + 1;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

volatile size_t n64 = 64, n16 = 16, n4k = 4096;
static char src[4096], dst[4096];

static int child(void) {
    /* Results go to the original stdout; printf's own output to /dev/null. */
    FILE *res = fdopen(dup(1), "w");
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 1);
    double r[OPS];
    for (int op = 0; op < OPS; op++) {
        long n = iters[op];
        double t0 = now_ns();
        switch (op) {
        case 0:
            for (long i = 0; i < n; i++) {
                void *p = malloc(n64);
                __asm__ volatile("" : : "r"(p) : "memory");
                free(p);
            }
            break;
        case 1:
            for (long i = 0; i < n; i++) {
                memcpy(dst, src, n16);
                __asm__ volatile("" : : : "memory");
            }
            break;
        case 2:
            for (long i = 0; i < n; i++) {
                memcpy(dst, src, n4k);
                __asm__ volatile("" : : : "memory");
            }
            break;
        case 3:
            for (long i = 0; i < n; i++) printf("%ld %s\n", i, "abc");
            fflush(stdout);
            break;
        case 4: {
            long acc = 0;
            for (long i = 0; i < n; i++) acc += bench_hooked(i);
            __asm__ volatile("" : : "r"(acc));
            break;
        }
        }
        r[op] = (now_ns() - t0) / (double)n;
    }
    for (int op = 0; op < OPS; op++) fprintf(res, "%.3f\n", r[op]);
    fclose(res);
    return 0;
}

/* Run one child (with `preload` as LD_PRELOAD, or without) and read its ns/op. */
static int run_child(const char *self, const char *preload, double out[OPS]) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 3, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) env[k++] = environ[i];
    char pre[4200];
    char hook[] = "VMSRS_USER_CALL=bench_hooked:0";
    if (preload) {
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", preload);
        env[k++] = pre;
        env[k++] = hook;
    }
    env[k] = NULL;
    char *argv[] = {(char *)self, "-c", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, env);
    close(fds[1]);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    FILE *f = fdopen(fds[0], "r");
    int got = 0;
    for (int op = 0; op < OPS; op++) got += fscanf(f, "%lf", &out[op]) == 1;
    fclose(f);
    int st;
    waitpid(pid, &st, 0);
    return got == OPS && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    const char *lib = NULL;
    int rounds = 11;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0) return child();
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) lib = argv[++i];
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s -p LIBVMSRS.so [-r ROUNDS]\n", argv[0]);
            return 2;
        }
    }
    if (lib == NULL || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "usage: %s -p LIBVMSRS.so [-r ROUNDS]\n", argv[0]);
        return 2;
    }
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) return 1;
    self[sl] = 0;
    bench_print_machine();
    printf("method    %d rounds of (plain, LD_PRELOAD) child pairs, order alternating; median ns/op\n", rounds);
    double *plain = calloc((size_t)rounds * OPS, sizeof *plain);
    double *pre = calloc((size_t)rounds * OPS, sizeof *pre);
    for (int r = 0; r < rounds; r++) {
        double a[OPS], b[OPS];
        int first_plain = r % 2 == 0;
        int e1 = run_child(self, first_plain ? NULL : lib, first_plain ? a : b);
        int e2 = run_child(self, first_plain ? lib : NULL, first_plain ? b : a);
        if (e1 || e2) {
            fprintf(stderr, "bench_interpose: a child run failed\n");
            return 1;
        }
        for (int op = 0; op < OPS; op++) {
            plain[op * rounds + r] = a[op];
            pre[op * rounds + r] = b[op];
        }
    }
    printf("%-18s %12s %12s %8s\n", "operation", "plain ns", "preload ns", "ratio");
    for (int op = 0; op < OPS; op++) {
        double mp = median(plain + op * rounds, rounds), mq = median(pre + op * rounds, rounds);
        printf("%-18s %12.2f %12.2f %8.3f\n", names[op], mp, mq, mq / mp);
    }
    for (int op = 0; op < OPS; op++) {
        double mp = median(plain + op * rounds, rounds), mq = median(pre + op * rounds, rounds);
        printf("INFO interpose %s: %.2f ns plain, %.2f ns preloaded (ratio %.3f)\n", names[op], mp, mq, mq / mp);
    }
    free(plain);
    free(pre);
    return 0;
}
