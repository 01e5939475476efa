/*
 * repro_recovery_area_overwrite.c -- minimal reproducer for a libvmsrs bug (the reduced form
 * of `roster fig10`; not one of the paper's experiments).
 *
 * Scenario (paper Fig. 10, DESIGN G6): a user stores to a monitored granule, overwrites the
 * recovery area of that granule (address from vmsrs_debug_recovery_area) with garbage, then
 * faults. Expected for the in-process host: the corruption is detected and reported
 * (vmsrs_stats.corruptions >= 1) -- ideally the original value is still restored, since only
 * the faulty user's own history entry was hit -- and the faulty user's value is not left
 * silently visible to normal users.
 *
 * Observed: corruptions stays 0 and a normal user reads the faulty user's value (20000)
 * before and after the faulty user's end point: undetected, and a G1 violation.
 * Likely cause (hv/src/store.rs): crash_suppression() sets POLLUTED only when its walk finds
 * an entry whose `writer` is the faulting user; the garbage entry's writer no longer matches,
 * so the granule is never marked, loads take the fast path, and user_end() neither restores
 * nor checks it. Every granule in the user's log could be marked POLLUTED unconditionally
 * (restore_locked() would then see the failed seal and count it).
 *
 * Build: gcc -O2 -g -Wall -Wextra -Werror -pthread -I../include repro_recovery_area_overwrite.c \
 *            -L../target/release -lvmsrs -Wl,-rpath,$PWD/../target/release -o /tmp/repro2
 * Expected: "PASS", exit 0.  Observed (tree of this report): "FAIL" lines, exit 1.
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include <pthread.h>
#include <sys/mman.h>

static int64_t *table;

static uint64_t corruptions(void) {
    struct vmsrs_stats s;
    return vmsrs_stats(&s) == 0 ? s.corruptions : UINT64_MAX;
}

static void *faulty(void *arg) {
    (void)arg;
    void *area = NULL;
    size_t len = 0;
    vmsrs_user_begin();
    VMSRS_SET(table[0], 20000);
    if (vmsrs_debug_recovery_area(&table[0], &area, &len) != 0) return NULL;
    memset(area, 0xEE, len);                              /* the wild write */
    vmsrs_crash_suppression(VMSRS_KIND_SEGV, &table[512]); /* the fault */
    vmsrs_user_end();
    return NULL;
}

int main(void) {
    int fail = 0;
    if (vmsrs_init_profile(NULL) != 0) return 2;
    table = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) return 2;
    table[0] = 7500;
    if (vmsrs_profile(table, 4096, "repro") != 0) return 2;

    pthread_t t;
    pthread_create(&t, NULL, faulty, NULL);
    pthread_join(t, NULL);
    int64_t seen = VMSRS_GET(table[0]);
    printf("normal user reads %lld (original 7500, faulty 20000); corruptions=%llu\n", (long long)seen,
           (unsigned long long)corruptions());
    if (corruptions() == 0) {
        printf("FAIL: the overwritten recovery area was not detected\n");
        fail = 1;
    }
    if (seen == 20000 && corruptions() == 0) {
        printf("FAIL: the faulty user's value is silently visible after its fault\n");
        fail = 1;
    }
    puts(fail ? "FAIL" : "PASS");
    return fail;
}
