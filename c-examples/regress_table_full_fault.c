/* 4096 users live (the user table is full); a thread that has no user takes a memory
 * fault (NULL store) in code that would be contained for any thread otherwise
 * (VMSRS_CONTAIN_IMPLICIT=1, the default). Expected: contained (the thread is ended or the
 * instruction skipped), the process survives. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
static pthread_barrier_t held, release_all;
static int *volatile null_ptr;
static void *holder(void *a) {
    (void)a;
    vmsrs_user_begin();
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&release_all);
    vmsrs_user_end();
    return NULL;
}
static void *faulter(void *a) {
    (void)a;
    *null_ptr = 1;
    fprintf(stderr, "faulter: went on after the fault\n");
    return NULL;
}
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    int n = 4096;
    pthread_barrier_init(&held, NULL, n + 1);
    pthread_barrier_init(&release_all, NULL, n + 1);
    pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 64 * 1024);
    pthread_t *h = calloc(n, sizeof *h), f;
    for (int i = 0; i < n; i++) pthread_create(&h[i], &at, holder, NULL);
    pthread_barrier_wait(&held);
    struct vmsrs_stats s; vmsrs_stats(&s);
    fprintf(stderr, "users_live=%llu\n", (unsigned long long)s.users_live);
    pthread_create(&f, &at, faulter, NULL);
    pthread_join(f, NULL);
    pthread_barrier_wait(&release_all);
    for (int i = 0; i < n; i++) pthread_join(h[i], NULL);
    fprintf(stderr, "survived\n");
    return 0;
}
