/* Regression from a hostile review (tests/regressions.rs): G8 must report a reader that loaded
 * bytes of an active writer that then faulted, whatever path it read them by, also on a thread
 * that never began a user (DESIGN §2: it runs as its own implicit user). Before the fix, the
 * three readers without a user were never recorded. Exit 0 when every reader is reported. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
static char tab[64] __attribute__((aligned(64)));
static sem_t written, readers_done, fault_done;
#define NR 9
static uint64_t rid[NR];
static const char *what[NR] = {"load8 (explicit user)", "vmsrs_load (explicit)", "VMSRS_GET (explicit)", "vmsrs_memcpy (explicit)",
    "vmsrs_assign (explicit)", "vmsrs_printf %s (explicit)", "load8, thread w/o user", "vmsrs_load, thread w/o user",
    "vmsrs_printf %s, thread w/o user"};
static char sink[64];
static FILE *devnull;
static void *reader(void *x) {
    int k = (int)(long)x;
    sem_wait(&written);
    int explicit = k < 6;
    if (explicit) vmsrs_user_begin();
    char b[8];
    switch (k) {
    case 0: case 6: b[0] = vmsrs_load8((uint8_t *)tab + 1); break;
    case 1: case 7: vmsrs_load(b, tab, 5); break;
    case 2: { int v = VMSRS_GET(*(int *)tab); (void)v; } break;
    case 3: vmsrs_memcpy(b, tab, 5); break;
    case 4: vmsrs_assign(sink, tab, 5); break;
    case 5: case 8: vmsrs_fprintf(devnull, "%s\n", tab); break;
    }
    rid[k] = vmsrs_user_current();
    sem_post(&readers_done);
    sem_wait(&fault_done);
    if (explicit) vmsrs_user_end();
    return NULL;
}
int main(void) {
    devnull = fopen("/dev/null", "w");
    memset(tab, 'a', 63);
    setenv("VMSRS_EXPOSURE", "1", 1);
    if (vmsrs_init_profile(NULL)) return 3;
    vmsrs_profile(tab, sizeof tab, "tab");
    vmsrs_profile(sink, sizeof sink, "sink");
    sem_init(&written, 0, 0); sem_init(&readers_done, 0, 0); sem_init(&fault_done, 0, 0);
    pthread_t t[NR];
    for (long i = 0; i < NR; i++) pthread_create(&t[i], 0, reader, (void *)i);
    /* the writer W is main's explicit user */
    vmsrs_user_begin();
    uint64_t w = vmsrs_user_current();
    vmsrs_store(tab, "HELLO", 5);
    for (int i = 0; i < NR; i++) sem_post(&written);
    for (int i = 0; i < NR; i++) sem_wait(&readers_done);
    vmsrs_crash_suppression(0, NULL);
    for (int i = 0; i < NR; i++) sem_post(&fault_done);
    for (int i = 0; i < NR; i++) pthread_join(t[i], 0);
    printf("W=%llu end=%d\n", (unsigned long long)w, vmsrs_user_end());
    struct vmsrs_exposure e[64]; size_t tot = 0;
    int n = vmsrs_exposures(e, 64, &tot);
    int missing = 0;
    for (int k = 0; k < NR; k++) {
        int found = 0;
        for (int j = 0; j < n; j++) if (e[j].writer == w && (rid[k] == 0 || e[j].reader == rid[k])) found = rid[k] != 0;
        printf("%-34s reader user %llu: %s\n", what[k], (unsigned long long)rid[k], found ? "reported" : "NOT REPORTED");
        missing += !found;
    }
    printf("%d exposures reported in all; %d readers not reported\n", n, missing);
    return missing ? 1 : 0;
}
