/* repro_ud2_skipped.c -- under VMSRS_POLICY=oblivious a ud2 in a user is skipped and the
 * instruction after it runs (DESIGN §5: trap-only instructions are never skipped; they unwind).
 * Exit 0 when the user is unwound to its recovery point, 1 when execution ran past the ud2. */
#include "vmsrs.h"
#include <stdio.h>
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    volatile long ran_past = 0;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
        printf("unwound to the recovery point (expected); ran_past=%ld\n", ran_past);
        return ran_past ? 1 : 0;
    }
    long x = 0;
    __asm__ volatile("ud2\n\tmovq $1, %0" : "=r"(x));
    ran_past = x;
    printf("BUG: execution continued past ud2 (x=%ld), suppressed=%d\n", x, vmsrs_user_suppressed());
    printf("end: %d\n", vmsrs_user_end());
    return 1;
}
