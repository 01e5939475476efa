/* vmsrs_store64 whose 8 bytes straddle the end of a profiled range into an unmapped page.
 * The plain store would fault (x86 writes nothing of a store whose second page faults), and
 * the header says a scalar access to a bad address "faults exactly like the plain access".
 * Expected: the user faults (contained), the in-range bytes keep their old value 0.
 * Actual: no fault, user stays normal, 4 in-range bytes silently written. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m + pg, pg, PROT_NONE); /* guard page: nothing else can be mapped there */
    char *end = m + pg;
    if (vmsrs_profile(m, pg, "tail") != 0) return 2;
    if (vmsrs_user_begin() != 0) return 2;
    vmsrs_store64((uint64_t *)(end - 4), 0x1122334455667788ull);
    uint32_t in_range;
    memcpy(&in_range, end - 4, 4);
    int sup = vmsrs_user_suppressed();
    int rc = vmsrs_user_end();
    struct vmsrs_stats s; vmsrs_stats(&s);
    fprintf(stderr, "suppressed=%d user_end=%d faults_contained=%llu in-range bytes=0x%08x (expected suppressed=1, user_end=1, bytes 0)\n",
            sup, rc, (unsigned long long)s.faults_contained, in_range);
    return sup == 1 ? 0 : 1;
}
