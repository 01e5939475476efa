/* G2/G3/G7 byte oracle around stores made final (a thread with no user while 4096 users are
 * live) interleaved with a user F that then faults. Per byte, the expected value is the latest
 * store by a writer not faulted (userless stores count as never faulting), else the value
 * at profile time. Checked with a monitored load while F is suppressed and raw after F's end. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <semaphore.h>
static uint64_t table[8];
static pthread_barrier_t held, release_all;
static sem_t f_go, f_done, t_go, t_done;
static int step;
static void *holder(void *a) {
    (void)a;
    if (vmsrs_user_begin() != 0) { pthread_barrier_wait(&held); pthread_barrier_wait(&release_all); return NULL; }
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&release_all);
    vmsrs_user_end();
    return NULL;
}
/* F: explicit user; executes its step when told */
static void *thread_f(void *a) {
    (void)a;
    if (vmsrs_user_begin() != 0) { fprintf(stderr, "F: begin failed\n"); exit(3); }
    pthread_barrier_wait(&held);
    for (;;) {
        sem_wait(&f_go);
        if (step == 1) { vmsrs_store64(&table[0], 0xF1F1F1F1F1F1F1F1ull); vmsrs_store64(&table[1], 0xF1F1F1F1F1F1F1F1ull); vmsrs_store64(&table[3], 0xF3F3F3F3F3F3F3F3ull); }
        if (step == 3) { vmsrs_store64(&table[2], 0xF2F2F2F2F2F2F2F2ull); vmsrs_store16((uint16_t *)&table[4] + 1, 0xF4F4); }
        if (step == 5) { vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL); }
        if (step == 6) { int rc = vmsrs_user_end(); fprintf(stderr, "F: user_end=%d\n", rc); sem_post(&f_done); break; }
        sem_post(&f_done);
    }
    pthread_barrier_wait(&release_all);
    return NULL;
}
static void *thread_t(void *a) {
    (void)a;
    for (;;) {
        sem_wait(&t_go);
        if (step == 2) { vmsrs_store64(&table[0], 0x7171717171717171ull); vmsrs_store8((uint8_t *)&table[3] + 3, 0x33); }
        if (step == 4) { vmsrs_store64(&table[2], 0x7272727272727272ull); vmsrs_store64(&table[4], 0x7474747474747474ull); }
        if (step == 99) { sem_post(&t_done); break; }
        fprintf(stderr, "T: user=%llu\n", (unsigned long long)vmsrs_user_current());
        sem_post(&t_done);
    }
    return NULL;
}
static int check(const char *when, int raw) {
    uint64_t want[8] = {0x7171717171717171ull, 0, 0x7272727272727272ull, 0x0000000033000000ull, 0x7474747474747474ull, 0, 0, 0};
    /* table[2]: T stored 72.. at step 4 AFTER F's F2 at step 3, so T's is latest: 72.. either way */
    /* table[4]: F wrote bytes 2-3 at step 3, T wrote all 8 at step 4 (latest): 74.. */
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t v = raw ? table[i] : vmsrs_load64(&table[i]);
        if (v != want[i]) { fprintf(stderr, "%s: table[%d] = %016llx, want %016llx\n", when, i, (unsigned long long)v, (unsigned long long)want[i]); bad = 1; }
    }
    return bad;
}
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    if (vmsrs_profile(table, sizeof table, "table") != 0) return 2;
    int n = 4095;
    pthread_barrier_init(&held, NULL, n + 2);
    pthread_barrier_init(&release_all, NULL, n + 2);
    sem_init(&f_go, 0, 0); sem_init(&f_done, 0, 0); sem_init(&t_go, 0, 0); sem_init(&t_done, 0, 0);
    pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 64 * 1024);
    pthread_t f, t, *h = calloc(n, sizeof *h);
    pthread_create(&f, &at, thread_f, NULL);
    for (int i = 0; i < n; i++) if (pthread_create(&h[i], &at, holder, NULL) != 0) { fprintf(stderr, "create %d failed\n", i); return 2; }
    pthread_barrier_wait(&held);
    struct vmsrs_stats s; vmsrs_stats(&s);
    fprintf(stderr, "users_live=%llu\n", (unsigned long long)s.users_live);
    pthread_create(&t, &at, thread_t, NULL);
    for (step = 1; step <= 6; step++) {
        if (step == 2 || step == 4) { sem_post(&t_go); sem_wait(&t_done); }
        else { sem_post(&f_go); sem_wait(&f_done); }
        if (step == 5) check("after F's fault (monitored load)", 0);
    }
    int bad = check("after F's end (raw)", 1);
    step = 99; sem_post(&t_go); sem_wait(&t_done);
    pthread_barrier_wait(&release_all);
    vmsrs_stats(&s);
    fprintf(stderr, "unrecorded_stores=%llu\n%s\n", (unsigned long long)s.unrecorded_stores, bad ? "FAIL" : "PASS");
    return bad;
}
