/* Regression from a hostile review (tests/regressions.rs): `%.Ns` reads at most N bytes, so
 * its string need not be terminated (C11 7.21.6.1). libvmsrs's view of a monitored string
 * (while a user is faulted, or under exposure tracking) read on to the NUL: 4 valid bytes at
 * the end of a mapped page made the caller a faulted user (a contained SIGSEGV), and
 * `%.2s` of a buffer made its reader exposed to bytes it never printed.
 * Exit 0 when the print is right and nothing was faulted or exposed. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static char tab[64] __attribute__((aligned(64)));
static char *edge;
static sem_t go, done;
static int rc1, rc2, suppressed;
static char out[64];

static void *reader(void *x) {
    (void)x;
    sem_wait(&go);
    FILE *f = fmemopen(out, sizeof out, "w");
    rc1 = vmsrs_fprintf(f, "[%.2s]", tab);     /* W wrote only tab[5] */
    rc2 = vmsrs_fprintf(f, "[%.*s]", 4, edge); /* 4 readable bytes, no NUL */
    fclose(f);
    suppressed = vmsrs_user_suppressed();
    sem_post(&done);
    return NULL;
}

int main(void) {
    memset(tab, 'a', 63);
    char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pg + 4096, 4096);
    edge = pg + 4092;
    memcpy(edge, "EDGE", 4);
    setenv("VMSRS_EXPOSURE", "1", 1);
    if (vmsrs_init_profile(NULL)) return 3;
    if (vmsrs_profile(tab, sizeof tab, "tab") || vmsrs_profile(pg, 4096, "page")) return 3;
    sem_init(&go, 0, 0);
    sem_init(&done, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    vmsrs_user_begin();
    vmsrs_store8((uint8_t *)tab + 5, 'W');
    sem_post(&go);
    sem_wait(&done);
    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
    vmsrs_user_end();
    pthread_join(t, NULL);
    struct vmsrs_exposure e[8];
    size_t total = 0;
    int n = vmsrs_exposures(e, 8, &total);
    struct vmsrs_stats s;
    vmsrs_stats(&s);
    printf("printed %s (rc %d %d); reader suppressed %d; exposures %d; faults contained %llu\n", out, rc1, rc2,
           suppressed, n, (unsigned long long)s.faults_contained);
    return strcmp(out, "[aa][EDGE]") == 0 && rc1 == 4 && rc2 == 6 && !suppressed && n == 0 ? 0 : 1;
}
