/* vmsrs_fprintf on a FILE* that is readable memory but not a stream (zeroed, e.g. a stale
 * or mistyped pointer). The header promises every pointer libc would dereference is checked
 * before libc takes the stream's lock, and a bad one is VMSRS_EFAULT. Here the FILE passes the
 * "readable sizeof(FILE) bytes" probe, and libc then dereferences its NULL _lock inside
 * flockfile. Expected: VMSRS_EFAULT (or a contained fault that returns). */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
static char fake[4096] __attribute__((aligned(64)));
static void *worker(void *a) {
    (void)a;
    int r = VMSRS_USER_BEGIN();
    if (r == VMSRS_FAULTED) { fprintf(stderr, "worker: unwound (FAULTED)\n"); return NULL; }
    int rc = vmsrs_fprintf((FILE *)fake, "hello %d\n", 1);
    fprintf(stderr, "worker: vmsrs_fprintf returned %d\n", rc);
    vmsrs_user_end();
    return NULL;
}
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    int rc = vmsrs_printf("main: stdout still usable\n");
    fflush(stdout);
    fprintf(stderr, "main: done rc=%d\n", rc);
    return 0;
}
