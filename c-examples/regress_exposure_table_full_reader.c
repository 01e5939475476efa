/* Regression from a hostile review (tests/regressions.rs): with the user table full (4095
 * holders and W), a thread without a user reads W's bytes. G8 cannot name it (it cannot be
 * made a user): the loss used to be counted nowhere (exposures_dropped 0, no warning). Now it
 * counts in exposures_dropped and is said on stderr, and the values read are still right.
 * Exit 0 when the reads are right and the unnamed reader is counted. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>

static char tab[64] __attribute__((aligned(64)));
static sem_t begun, release_;
static int began_ok, reads_ok;

static void *holder(void *x) {
    (void)x;
    if (vmsrs_user_begin() == 0) __sync_fetch_and_add(&began_ok, 1);
    sem_post(&begun);
    sem_wait(&release_);
    vmsrs_user_end();
    return NULL;
}

static void *reader(void *x) {
    (void)x;
    char b[8] = {0};
    int r = vmsrs_load(b, tab, 5);
    uint8_t v = vmsrs_load8((uint8_t *)tab + 1);
    reads_ok = r == 0 && memcmp(b, "HELLO", 5) == 0 && v == 'E' && vmsrs_user_current() == 0;
    return NULL;
}

int main(void) {
    memset(tab, 'a', 63);
    setenv("VMSRS_EXPOSURE", "1", 1);
    if (vmsrs_init_profile(NULL)) return 3;
    if (vmsrs_profile(tab, sizeof tab, "tab")) return 3;
    sem_init(&begun, 0, 0);
    sem_init(&release_, 0, 0);
    vmsrs_user_begin(); /* W */
    vmsrs_store(tab, "HELLO", 5);
    enum { H = 4095 };
    static pthread_t t[H];
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    int made = 0;
    for (int i = 0; i < H && pthread_create(&t[i], &a, holder, NULL) == 0; i++) made++;
    for (int i = 0; i < made; i++) sem_wait(&begun);
    pthread_t r;
    pthread_create(&r, NULL, reader, NULL);
    pthread_join(r, NULL);
    for (int i = 0; i < made; i++) sem_post(&release_);
    for (int i = 0; i < made; i++) pthread_join(t[i], NULL);
    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
    vmsrs_user_end();
    struct vmsrs_stats st;
    vmsrs_stats(&st);
    printf("holders %d began %d; reads right %d; exposures_dropped %llu\n", made, began_ok, reads_ok,
           (unsigned long long)st.exposures_dropped);
    return made == H && began_ok == H && reads_ok && st.exposures_dropped >= 1 ? 0 : 1;
}
