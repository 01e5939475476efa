/*
 * bench_exposure.c -- the cost of exposure tracking (G8, VMSRS_EXPOSURE=1) per request: a
 * request is a user on a second thread that loads 8 granules of a table main wrote as its
 * implicit user (which never ends, so every such load is a candidate exposure that stays:
 * the worst case for the candidate table, which fills after 1024 requests). Printed: the
 * median over rounds of thread CPU ns per request, with exposure tracking on and off (each
 * round a fresh child process per side, order alternating), and their ratio. Reports, never
 * asserts.
 *
 *   bench_exposure [-r ROUNDS] [-n REQUESTS]      (defaults 7, 20000)
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long tab[256];
static long requests = 20000;
static double per_request;

static double cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void *serve(void *x) {
    (void)x;
    long s = 0;
    double t0 = cpu_ns();
    for (long i = 0; i < requests; i++) {
        vmsrs_user_begin();
        for (int k = 0; k < 8; k++) s += VMSRS_GET(tab[(i * 8 + k) % 256]);
        vmsrs_user_end();
    }
    per_request = (cpu_ns() - t0) / requests;
    if (s == 42) puts("");
    return NULL;
}

/* One side in this process: print ns per request. */
static int child(int exposure) {
    setenv("VMSRS_EXPOSURE", exposure ? "1" : "0", 1);
    if (vmsrs_init_profile(NULL) || vmsrs_profile(tab, sizeof tab, "tab")) return 3;
    for (int i = 0; i < 256; i++) VMSRS_SET(tab[i], i);
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);
    pthread_join(t, NULL);
    printf("%.1f\n", per_request);
    return 0;
}

static double run_side(const char *self, int exposure) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -c %d -n %ld 2>/dev/null", self, exposure, requests);
    FILE *p = popen(cmd, "r");
    double v = -1;
    if (p == NULL || fscanf(p, "%lf", &v) != 1) v = -1;
    if (p) pclose(p);
    return v;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = 7, side = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-r") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) requests = atol(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) side = atoi(argv[++i]);
    }
    if (side >= 0) return child(side);
    if (rounds < 1 || rounds > 99 || requests < 1) return 2;
    double on[99], off[99], ratio[99];
    for (int r = 0; r < rounds; r++) {
        if (r % 2) {
            off[r] = run_side(argv[0], 0);
            on[r] = run_side(argv[0], 1);
        } else {
            on[r] = run_side(argv[0], 1);
            off[r] = run_side(argv[0], 0);
        }
        ratio[r] = off[r] > 0 ? on[r] / off[r] : -1;
    }
    qsort(on, rounds, sizeof *on, cmp);
    qsort(off, rounds, sizeof *off, cmp);
    qsort(ratio, rounds, sizeof *ratio, cmp);
    printf("method    %d rounds, %ld requests of 8 loads each, a fresh process per side; thread CPU time; medians\n",
           rounds, requests);
    printf("request (8 loads), exposure on   %10.1f ns\n", on[rounds / 2]);
    printf("request (8 loads), exposure off  %10.1f ns\n", off[rounds / 2]);
    printf("INFO exposure tracking: %.1f ns per request on, %.1f off (ratio %.2f)\n", on[rounds / 2],
           off[rounds / 2], ratio[rounds / 2]);
    return 0;
}
