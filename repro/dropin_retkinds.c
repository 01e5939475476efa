/* Drop-in rescue points on functions returning double, long double and a struct in memory,
 * which fault. VMSRS_USER_CALL=NAME:RETVAL is accepted for each; the call "returns RETVAL
 * to its caller" (README/rescue.rs), but RETVAL only goes to rax.
 *   gcc -O2 -g -rdynamic dropin_retkinds.c -o dropin_retkinds
 *   VMSRS_USER_CALL=fdouble:-1,fldouble:-1,fstruct:-1 VMSRS_POLICY=unwind LD_PRELOAD=... ./dropin_retkinds
 * Expected: the caller can tell each call failed (or the key is refused at start-up). */
#include <stdio.h>
#include <string.h>
static int *volatile null_ptr;
struct big { long a, b, c, d; };
__attribute__((noinline)) double fdouble(double x) { if (x > 0) *null_ptr = 1; return x * 2; }
__attribute__((noinline)) long double fldouble(long double x) { if (x > 0) *null_ptr = 1; return x * 2; }
__attribute__((noinline)) struct big fstruct(long x) { struct big b = {x, x, x, x}; if (x > 0) *null_ptr = 1; return b; }
int main(void) {
    double d = fdouble(21.0);
    printf("fdouble(21) -> %g\n", d); fflush(stdout);
    long double ld = fldouble(21.0L);
    printf("fldouble(21) -> %Lg\n", ld); fflush(stdout);
    struct big b = fstruct(5);
    printf("fstruct(5) -> {%ld,%ld,%ld,%ld}\n", b.a, b.b, b.c, b.d); fflush(stdout);
    return 0;
}
