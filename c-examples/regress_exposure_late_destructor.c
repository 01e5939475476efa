/* Regression from a hostile review (tests/regressions.rs): a thread's own pthread key
 * destructor, which glibc runs after libvmsrs's thread-exit destructor, loads bytes of an
 * active user (G8 then makes the thread its implicit user) or stores to monitored memory (an
 * implicit user too). That late user, and the alternate stack it maps, used to outlive the
 * thread: after 4096 such threads no user could begin any more (VMSRS_ETOOMANY). Now the
 * exit hook runs again in glibc's next destructor round and ends it.
 *
 * Usage: regress_exposure_late_destructor [THREADS] (default 300). Prints the users live and
 * the mappings added after the threads exited; exit 0 when no user outlived its thread and
 * no alternate stack did (before the fix: 4 mappings per thread; the user slots' own logs,
 * kept for their next users, account for 2 per thread at most). */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tab[64] __attribute__((aligned(64)));
static pthread_key_t key;

static void late(void *v) {
    if ((long)v == 1) {
        volatile uint8_t b = vmsrs_load8((uint8_t *)tab); /* the active user's byte */
        (void)b;
    } else {
        vmsrs_store8((uint8_t *)tab + 40, 's');
    }
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
        pthread_create(&t, NULL, th, (void *)(long)(1 + i % 2));
        pthread_join(t, NULL);
    }
    uint64_t extra = live() - live0;
    int maps = mappings() - maps0;
    vmsrs_user_end();
    pthread_t t;
    void *rv;
    pthread_create(&t, NULL, begin_one, NULL);
    pthread_join(t, &rv);
    printf("%d threads exited: %llu users and %d mappings outlived them; a new user begins: %ld\n", n,
           (unsigned long long)extra, maps, (long)rv);
    return extra == 0 && maps < 3 * n && rv == 0 ? 0 : 1;
}
