/* Scalar and buffer stores/loads that straddle the end of a profiled range into an
 * unmapped page. The plain access would fault (the user's memory error, contained); the
 * header says a bad buffer is VMSRS_EFAULT / a contained fault, never a crash in libvmsrs.
 * Usage: straddle store64|load64|store|load|memset|memcpy|assign  (run in a thread with a user) */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
static const char *what;
static char *end; /* end of the profiled range == start of an unmapped page */
static void *worker(void *a) {
    (void)a;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) { fprintf(stderr, "worker: unwound\n"); return NULL; }
    char buf[16] = {0};
    int rc = 0;
    if (!strcmp(what, "store64")) vmsrs_store64((uint64_t *)(end - 4), 0x1122334455667788ull);
    else if (!strcmp(what, "load64")) rc = (int)vmsrs_load64((const uint64_t *)(end - 4));
    else if (!strcmp(what, "store")) rc = vmsrs_store(end - 4, buf, 8);
    else if (!strcmp(what, "load")) rc = vmsrs_load(buf, end - 4, 8);
    else if (!strcmp(what, "memset")) rc = vmsrs_memset(end - 4, 7, 8) ? 0 : vmsrs_last_error();
    else if (!strcmp(what, "memcpy")) rc = vmsrs_memcpy(end - 4, buf, 8) ? 0 : vmsrs_last_error();
    else if (!strcmp(what, "assign")) rc = vmsrs_assign(end - 4, end - 12, 8);
    fprintf(stderr, "worker: %s returned %d, suppressed=%d\n", what, rc, vmsrs_user_suppressed());
    vmsrs_user_end();
    return NULL;
}
int main(int argc, char **argv) {
    what = argc > 1 ? argv[1] : "store64";
    if (vmsrs_init_profile(NULL) != 0) return 2;
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m + pg, pg, PROT_NONE); /* guard page: nothing else can be mapped there */
    end = m + pg;
    int pr = vmsrs_profile(m, pg, "tail");
    if (pr != 0) { fprintf(stderr, "profile: %d\n", pr); return 2; }
    /* a user faults first so loads take the slow path too */
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    fprintf(stderr, "main: survived\n");
    return 0;
}
