/* Regression from two hostile reviews (tests/regressions.rs): a thread's own pthread key
 * destructor, which glibc runs in up to 4 rounds, some after libvmsrs's thread-exit hook,
 * loads bytes of an active user (G8 then makes the thread its implicit user) or stores to
 * monitored memory (an implicit user too), in destructor round ROUND. That late user, and the
 * alternate stack it mapped, used to outlive the thread: after 4096 such threads no user could
 * begin any more (VMSRS_ETOOMANY). The first fix ended it in the next round only when the hook
 * had run in every round before (a user begun in round 4 still leaked).
 *
 * Each new thread also began in a fresh user slot while main's user held the first one, so
 * every slot's write log got mapped (4 mappings per thread, up to 16k): an exiting thread now
 * offers its slot to the next new one.
 *
 * Usage: regress_exposure_late_destructor THREADS ROUND load|store. Prints the users live and
 * the mappings added after the threads exited; exit 0 when no user outlived its thread, a new
 * user can begin, and the mappings did not grow with the threads (fewer than 16 added). */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tab[64] __attribute__((aligned(64)));
static pthread_key_t key;
static int touch_round, use_load;

/* Keeps its key set through every round; touches monitored memory in round `touch_round`. */
static void late(void *v) {
    long round = (long)v;
    if (round == touch_round) {
        if (use_load) {
            volatile uint8_t b = vmsrs_load8((uint8_t *)tab); /* the active user's byte */
            (void)b;
        } else {
            vmsrs_store8((uint8_t *)tab + 40, 's');
        }
    }
    if (round < 6) pthread_setspecific(key, (void *)(round + 1));
}

static void *th(void *x) {
    pthread_setspecific(key, x);
    return NULL;
}

static int mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static uint64_t live(void) {
    struct vmsrs_stats s;
    vmsrs_stats(&s);
    return s.users_live;
}

static void *begin_one(void *x) {
    (void)x;
    long r = vmsrs_user_begin();
    if (r == 0) vmsrs_user_end();
    return (void *)r;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300;
    touch_round = argc > 2 ? atoi(argv[2]) : 1;
    use_load = !(argc > 3 && strcmp(argv[3], "store") == 0);
    memset(tab, 'a', 63);
    setenv("VMSRS_EXPOSURE", "1", 1);
    if (vmsrs_init_profile(NULL)) return 3;
    if (vmsrs_profile(tab, sizeof tab, "tab")) return 3;
    pthread_key_create(&key, late);
    vmsrs_user_begin(); /* W, main's explicit user, active throughout */
    vmsrs_store8((uint8_t *)tab, 'W');
    uint64_t live0 = live();
    int maps0 = mappings();
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, th, (void *)1L);
        pthread_join(t, NULL);
    }
    uint64_t extra = live() - live0;
    int maps = mappings() - maps0;
    vmsrs_user_end();
    pthread_t t;
    void *rv;
    pthread_create(&t, NULL, begin_one, NULL);
    pthread_join(t, &rv);
    printf("%s in round %d, %d threads exited: %llu users and %d mappings outlived them; a new user begins: %ld\n",
           use_load ? "load" : "store", touch_round, n, (unsigned long long)extra, maps, (long)rv);
    return extra == 0 && rv == 0 && maps < 16 ? 0 : 1;
}
