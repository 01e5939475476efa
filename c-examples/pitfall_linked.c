/*
 * ECOSYSTEM pitfalls 16 and 18, linked mode (-lvmsrs, no LD_PRELOAD): the program's plain
 * malloc/memcpy/memset/memmove/printf reach libvmsrs's interposers, which find glibc's
 * functions (RTLD_NEXT, else libc's handle). On profiled memory a plain memcpy/memset is a
 * range store of the calling user (class 3): a user that memsets the table and then faults
 * has its bytes restored. An inlined __builtin_memset of constant size never reaches a
 * symbol (pitfall 16): its bytes are not recorded and stay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vmsrs.h>

static char table[4096];
static char other[64];
volatile size_t n_table = sizeof table; /* not constants: memcpy/memset stay calls */
volatile size_t n_half = sizeof table / 2;

int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 1;
    if (vmsrs_profile(table, sizeof table, "table") != 0) return 1;
    if (vmsrs_profile(other, sizeof other, "other") != 0) return 1;

    char *src = malloc(n_table);
    memset(src, 'A', n_table);
    vmsrs_user_begin();
    memcpy(table, src, n_table); /* user 1 writes A everywhere and commits */
    memset(other, 'A', sizeof other);
    printf("user 1 end %d\n", vmsrs_user_end());

    vmsrs_user_begin();
    memset(table, 'B', n_half);               /* recorded */
    memmove(table + 8, table, n_half);        /* recorded */
    __builtin_memset(other, 'C', 8);          /* inlined: not recorded */
    vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
    printf("user 2 end %d\n", vmsrs_user_end());

    int restored = 1;
    for (size_t i = 0; i < sizeof table; i++) restored &= table[i] == 'A';
    printf("memset/memmove restored %s\n", restored ? "yes" : "NO");
    printf("inlined memset restored %s\n", other[0] == 'A' ? "yes" : "no");
    char *copy = malloc(100);
    memcpy(copy, table, 100);
    printf("plain memcpy reads %c\n", copy[0]);
    free(copy);
    free(src);
    return restored ? 0 : 1;
}
