/*
 * repro_suppressed_load_corrupt.c -- minimal reproducer for a libvmsrs bug (not one of the
 * paper's experiments; kept for the lead).
 *
 * Symptom: a load by a *suppressed* user of a monitored granule that nobody ever stored to
 * is reported as corrupt recovery data (vmsrs_stats.corruptions goes 0 -> 1) and the granule
 * is flagged CORRUPT for good. Nothing touched the recovery area. Consequence: when a later
 * faulty user writes that granule, the library refuses to restore it ("never restore from
 * corrupt data"), so normal users keep seeing the faulty user's value: a G1 violation.
 *
 * Build: gcc -O2 -g -Wall -Wextra -Werror -pthread -I../include repro_suppressed_load_corrupt.c \
 *            -L../target/release -lvmsrs -Wl,-rpath,$PWD/../target/release -o /tmp/repro
 * Expected: "PASS" and exit 0.  Observed (tree of this report): "FAIL" lines, exit 1.
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include <pthread.h>
#include <sys/mman.h>

static int64_t *table; /* table[0]: written before; table[1]: never written */

static uint64_t corruptions(void) {
    struct vmsrs_stats s;
    if (vmsrs_stats(&s) != 0) return UINT64_MAX;
    return s.corruptions;
}

/* Faulty user A: suppressed, then merely *reads* the never-written granule table[1]. */
static void *user_a(void *arg) {
    (void)arg;
    vmsrs_user_begin();
    VMSRS_SET(table[0], 20000);
    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
    int64_t v = VMSRS_GET(table[1]);
    printf("user A (suppressed) reads table[1] = %lld\n", (long long)v);
    vmsrs_user_end();
    return NULL;
}

/* Faulty user B: writes table[1], then faults. */
static void *user_b(void *arg) {
    (void)arg;
    vmsrs_user_begin();
    VMSRS_SET(table[1], 666);
    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
    vmsrs_user_end();
    return NULL;
}

int main(void) {
    int fail = 0;
    if (vmsrs_init_profile(NULL) != 0) return 2;
    table = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) return 2;
    table[0] = 7500;
    table[1] = 42;
    if (vmsrs_profile(table, 4096, "repro") != 0) return 2;

    pthread_t t;
    pthread_create(&t, NULL, user_a, NULL);
    pthread_join(t, NULL);
    if (corruptions() != 0) {
        printf("FAIL: %llu corruption(s) reported although no recovery data was touched\n",
               (unsigned long long)corruptions());
        fail = 1;
    }
    pthread_create(&t, NULL, user_b, NULL);
    pthread_join(t, NULL);
    int64_t seen = VMSRS_GET(table[1]);
    if (seen != 42) {
        printf("FAIL: normal user reads table[1] = %lld after faulty user B was contained "
               "(expected the original 42)\n", (long long)seen);
        fail = 1;
    }
    puts(fail ? "FAIL" : "PASS");
    return fail;
}
