/* vmsrs_printf("%.*s", n, buf) where buf holds n bytes with no NUL and ends at a page end.
 * Legal C (precision bounds the read; C11 7.21.6.1p8), plain printf prints it. Expected: the
 * call prints "abcd" and returns 4, user not suppressed. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    static uint64_t table[4];
    if (vmsrs_init_profile(NULL) != 0) return 2;
    vmsrs_profile(table, sizeof table, "t");
    vmsrs_user_begin();
    vmsrs_store64(&table[0], 42); /* a correct user's store... */
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m + pg, pg, PROT_NONE); /* guard page: nothing else can be mapped there */
    char *buf = m + pg - 4;
    memcpy(buf, "abcd", 4);              /* no NUL: the precision bounds the read */
    int r = vmsrs_printf("[%.*s]\n", 4, buf);
    fflush(stdout);
    int r2 = vmsrs_printf("[%.4s]\n", buf);
    fflush(stdout);
    fprintf(stderr, "vmsrs_printf returned %d and %d (expected 7 and 7); suppressed=%d (expected 0)\n", r, r2,
            vmsrs_user_suppressed());
    int end = vmsrs_user_end();
    fprintf(stderr, "user_end=%d table[0]=%llu (expected 0 and 42: the store of a correct user is withdrawn, G2)\n", end,
            (unsigned long long)table[0]);
    return (r == 7 && r2 == 7 && !vmsrs_user_suppressed()) ? 0 : 1;
}
