/* profile/unprofile of 4 MiB ranges racing with stores, loads and faults on other threads.
 * Checks: no crash, no unprofile over 1 s, RSS bounded, values right after unprofile. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#define NR 4
#define SZ (4u << 20)
static char *reg[NR];
static atomic_int stop;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static long rss_kib(void) { long a = 0, b = 0; FILE *f = fopen("/proc/self/statm", "r"); if (f) { if (fscanf(f, "%ld %ld", &a, &b) != 2) b = 0; fclose(f); } return b * 4; }
static void *storer(void *a) {
    volatile unsigned long seed = (unsigned long)a * 7919 + 1;
    while (!atomic_load(&stop)) {
        if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) continue;
        for (int i = 0; i < 200; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            char *r = reg[(seed >> 20) % NR];
            size_t off = ((seed >> 33) % (SZ / 8)) * 8;
            vmsrs_store64((uint64_t *)(r + off), seed);
            (void)vmsrs_load64((uint64_t *)(r + ((seed >> 13) % (SZ / 8)) * 8));
        }
        if (seed % 5 == 0) vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
        vmsrs_user_end();
    }
    return NULL;
}
int main(int argc, char **argv) {
    int secs = argc > 1 ? atoi(argv[1]) : 10;
    if (vmsrs_init_profile(NULL) != 0) return 2;
    for (int i = 0; i < NR; i++) reg[i] = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_t th[3];
    for (long i = 0; i < 3; i++) pthread_create(&th[i], NULL, storer, (void *)i);
    double t0 = now(), worst = 0;
    long rss0 = rss_kib(), rssmax = 0;
    unsigned long cycles = 0;
    while (now() - t0 < secs) {
        int k = cycles % NR;
        if (vmsrs_profile(reg[k], SZ, "r") != 0) { fprintf(stderr, "profile failed\n"); break; }
        usleep(20000);
        double a = now();
        int rc = vmsrs_unprofile(reg[k]);
        double d = now() - a;
        if (rc != 0) fprintf(stderr, "unprofile rc %d\n", rc);
        if (d > worst) worst = d;
        long r = rss_kib(); if (r > rssmax) rssmax = r;
        cycles++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    fprintf(stderr, "cycles=%lu worst unprofile=%.3f s rss start=%ld KiB max=%ld KiB (regions %u MiB)\n", cycles, worst, rss0, rssmax, NR * (SZ >> 20));
    return worst > 1.0;
}
