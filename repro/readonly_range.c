/* A profiled range that is read-only (mapped PROT_READ at profile time, or mprotect'ed
 * later). vmsrs_profile accepts it. A monitored store there is the user's memory error
 * (the plain store would fault and be contained); expected: the user is contained
 * (suppressed / unwound), the process survives.
 * Usage: readonly_range scalar|buffer|memset [later] */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
static char *ro;
static const char *how;
static void *worker(void *a) {
    (void)a;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) { fprintf(stderr, "worker: unwound\n"); return NULL; }
    int rc = 0;
    if (!strcmp(how, "scalar")) vmsrs_store64((uint64_t *)ro, 1);
    else if (!strcmp(how, "buffer")) rc = vmsrs_store(ro, "abcdefgh", 8);
    else rc = vmsrs_memset(ro, 1, 64) ? 0 : vmsrs_last_error();
    fprintf(stderr, "worker: rc=%d suppressed=%d\n", rc, vmsrs_user_suppressed());
    vmsrs_user_end();
    return NULL;
}
int main(int argc, char **argv) {
    how = argc > 1 ? argv[1] : "scalar";
    int later = argc > 2;
    if (vmsrs_init_profile(NULL) != 0) return 2;
    ro = mmap(NULL, 4096, later ? PROT_READ | PROT_WRITE : PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int pr = vmsrs_profile(ro, 4096, "ro");
    fprintf(stderr, "profile=%d\n", pr);
    if (pr != 0) return 0;
    if (later) mprotect(ro, 4096, PROT_READ);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    fprintf(stderr, "main: survived\n");
    return 0;
}
