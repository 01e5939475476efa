/* Regression from a hostile review (tests/regressions.rs): G8's candidate table is bounded.
 * main fills the monitored table as its implicit user (which lives as long as main), so every
 * read-only request adds a (reader, main) candidate that stays until main ends. After 8192
 * of them a later real exposure has no room; that loss used to be silent (only the stats'
 * exposures_dropped showed it). Now libvmsrs says so on stderr. Prints whether the real
 * exposure was reported; exit 0 if it was.
 *
 * Usage: regress_exposure_flood [READ_ONLY_REQUESTS] (default 10000) */
#define _GNU_SOURCE
#include "vmsrs.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long tab[256];
static uint64_t r_id, w_id;
static pthread_barrier_t b1, b2;

static void *requests(void *x) {
    long n = (long)x;
    for (long i = 0; i < n; i++) {
        vmsrs_user_begin();
        volatile long v = VMSRS_GET(tab[i % 256]);
        (void)v;
        vmsrs_user_end();
    }
    return NULL;
}

/* Writes tab[5], waits for the reader, faults. */
static void *writer(void *p) {
    (void)p;
    vmsrs_user_begin();
    w_id = vmsrs_user_current();
    VMSRS_SET(tab[5], -1);
    pthread_barrier_wait(&b1);
    pthread_barrier_wait(&b2);
    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
    vmsrs_user_end();
    return NULL;
}

static void *reader(void *p) {
    (void)p;
    pthread_barrier_wait(&b1);
    vmsrs_user_begin();
    r_id = vmsrs_user_current();
    volatile long v = VMSRS_GET(tab[5]);
    (void)v;
    vmsrs_user_end();
    pthread_barrier_wait(&b2);
    return NULL;
}

int main(int argc, char **argv) {
    long nreq = argc > 1 ? atol(argv[1]) : 10000;
    setenv("VMSRS_EXPOSURE", "1", 1);
    if (vmsrs_init_profile(NULL)) return 3;
    if (vmsrs_profile(tab, sizeof tab, "tab")) return 3;
    for (int i = 0; i < 256; i++) VMSRS_SET(tab[i], 100 + i); /* main's implicit user */
    pthread_t t, wt, rt;
    pthread_create(&t, NULL, requests, (void *)nreq);
    pthread_join(t, NULL);
    pthread_barrier_init(&b1, NULL, 2);
    pthread_barrier_init(&b2, NULL, 2);
    pthread_create(&wt, NULL, writer, NULL);
    pthread_create(&rt, NULL, reader, NULL);
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);
    static struct vmsrs_exposure e[4096];
    size_t total = 0;
    int n = vmsrs_exposures(e, 4096, &total);
    int found = 0;
    for (int i = 0; i < n; i++) found |= e[i].reader == r_id && e[i].writer == w_id;
    struct vmsrs_stats st;
    vmsrs_stats(&st);
    printf("%ld read-only requests before; exposure %s; exposures %llu, dropped %llu\n", nreq,
           found ? "reported" : "NOT REPORTED", (unsigned long long)st.exposures,
           (unsigned long long)st.exposures_dropped);
    return !found;
}
