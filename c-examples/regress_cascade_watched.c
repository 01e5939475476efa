/*
 * regress_cascade_watched: a user doomed by a cascade (VMSRS_EXPOSURE=1,
 * VMSRS_EXPOSURE_POLICY=cascade) that had stored to a watched range. Linked with libvmsrs, run
 * with VMSRS_RANGE_0=symbol:watched.
 *
 *   W begins, stores shared[0] through the API and stays active; R begins, loads shared[0]
 *   through the API (R is exposed to W), stores watched.g = 99 with a plain store (trapped,
 *   recorded for R) and stays active; W faults: R is doomed; R makes a monitored store, its
 *   next monitored operation, and enters its own fault there. That operation (argv[1]):
 *     api       vmsrs_store64 to the profiled array;
 *     trap      a plain store to the watched page, trapped (it goes to R's shadow);
 *     trapload  the same, then at once a load of watched.g, which must see R's 99: the
 *               fault entry ran inside the SIGSEGV handler, whose return must deny the key;
 *     vmemset   vmsrs_memset of the profiled array;
 *     memset    memset of it (interposed when preloaded, the API's fill when linked);
 *     free      malloc and free (libvmsrs asks whether the user is suppressed);
 *     query     vmsrs_user_suppressed.
 *
 * Then the main thread (no user) loads watched.g: 7, the value before R's store (G3; it read
 * 99: the fault entry the hv made for R restored nothing in the watched range); R loads 99,
 * its own earlier store (G4; it read 7); the main thread stores 8 and R loads 8 (a normal
 * user's later store is newer than its own); R and W end faulted, and the main thread's 8 is
 * kept (G2).
 *
 * Prints "cascade_watched: OK" and exits 0; a wrong value is named and exits 1.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vmsrs.h"

struct watched_page {
    volatile long g, h;
    char rest[4096 - 2 * sizeof(long)];
};
struct watched_page watched __attribute__((aligned(4096))) = {.g = 7};
static uint64_t shared[8] __attribute__((aligned(64)));
static pthread_barrier_t step;
static const char *mode;
/* Called through volatile pointers: gcc neither inlines memset nor drops malloc and free. */
static void *(*volatile memset_p)(void *, int, size_t) = memset;
static void *(*volatile malloc_p)(size_t) = malloc;
static void (*volatile free_p)(void *) = free;

static void next(void) { pthread_barrier_wait(&step); }

static void *writer(void *arg) {
    (void)arg;
    CHECK(vmsrs_user_begin() == 0, "W begins");
    vmsrs_store64(&shared[0], 1);
    next(); /* 1: W wrote shared[0] */
    next(); /* 2: R read it and stored watched.g */
    CHECK(vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, &shared[0]) == 0, "W faults");
    next(); /* 3: W faulted, R doomed */
    next(); /* 4: R entered its fault */
    next(); /* 5: main loaded watched.g */
    next(); /* 6: R loaded it */
    next(); /* 7: main stored 8 */
    next(); /* 8: R loaded it */
    CHECK(vmsrs_user_end() == VMSRS_FAULTED, "W ends faulted");
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    next(); /* 1 */
    CHECK(vmsrs_user_begin() == 0, "R begins");
    CHECK(vmsrs_load64(&shared[0]) == 1, "R reads W's store");
    watched.g = 99;
    next(); /* 2 */
    next(); /* 3 */
    /* R's next monitored operation, its fault entry (see the modes above). */
    long early = 99;
    if (!strcmp(mode, "api"))
        vmsrs_store64(&shared[1], 5);
    else if (!strcmp(mode, "trap"))
        watched.h = 5;
    else if (!strcmp(mode, "trapload")) {
        watched.h = 5;
        early = watched.g; /* no lock call between: the handler's return must deny the key */
    } else if (!strcmp(mode, "vmemset"))
        vmsrs_memset(&shared[1], 0, 8);
    else if (!strcmp(mode, "memset"))
        memset_p((void *)&shared[1], 0, 8);
    else if (!strcmp(mode, "free")) {
        void *volatile q = malloc_p(16);
        free_p(q);
    } else if (!strcmp(mode, "query"))
        CHECK(vmsrs_user_suppressed() == 1, "R is faulted by the cascade");
    else
        CHECK(0, "unknown mode %s", mode);
    CHECK(early == 99, "R, faulted, loads watched.g = %ld right after its trapped store, not its own 99 (G4)",
          early);
    next(); /* 4: main loaded watched.g (asking whether R is suppressed would settle it) */
    CHECK(vmsrs_user_suppressed() == 1, "R is faulted by the cascade");
    next(); /* 5 */
    long seen = watched.g;
    CHECK(seen == 99, "R, faulted, loads watched.g = %ld, not its own 99 (G4)", seen);
    next(); /* 6 */
    next(); /* 7 */
    seen = watched.g;
    CHECK(seen == 8, "R, faulted, loads watched.g = %ld, not main's later 8 (G4)", seen);
    next(); /* 8 */
    CHECK(vmsrs_user_end() == VMSRS_FAULTED, "R ends faulted");
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    mode = argc > 1 ? argv[1] : "api";
    CHECK(vmsrs_init_profile(NULL) == 0, "vmsrs_init_profile");
    CHECK(vmsrs_profile(shared, sizeof shared, "shared") == 0, "vmsrs_profile");
    pthread_barrier_init(&step, NULL, 3);
    pthread_t w, r;
    pthread_create(&w, NULL, writer, NULL);
    pthread_create(&r, NULL, reader, NULL);
    next(); /* 1 */
    next(); /* 2 */
    next(); /* 3 */
    next(); /* 4 */
    long seen = watched.g;
    CHECK(seen == 7, "main loads watched.g = %ld after R's cascaded fault, not 7 (G3)", seen);
    CHECK(watched.h == 0, "main loads watched.h = %ld, R's shadow store (G3)", (long)watched.h);
    next(); /* 5 */
    next(); /* 6 */
    watched.g = 8;
    next(); /* 7 */
    next(); /* 8 */
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    CHECK(watched.g == 8, "main's store was kept: watched.g = %ld, not 8 (G2)", (long)watched.g);
    printf("cascade_watched: OK\n");
    return 0;
}
