/* Drop-in rescue point left by longjmp. An unmodified program (no vmsrs.h) whose hooked
 * request function longjmps out once (a common error path), then later faults.
 *   gcc -O2 -g -rdynamic dropin_longjmp.c -o dropin_longjmp
 *   VMSRS_USER_CALL=handle:-1 VMSRS_POLICY=unwind LD_PRELOAD=../target/release/libvmsrs.so ./dropin_longjmp
 * Expected: handle(0)=7 each time, handle(2) (faults) = -1, each exactly once, in order:
 *   "step 1 longjmp'd out / step 2: -1 / step 3: 7 / step 4: -1 / step 5: 7 / end" */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <unistd.h>
static jmp_buf jb;
static int *volatile null_ptr;
__attribute__((noinline)) int handle(int mode) {
    if (mode == 1) longjmp(jb, 1);
    if (mode == 2) *null_ptr = 1;
    return 7;
}
static int steps;
static void *worker(void *a) {
    (void)a;
    if (setjmp(jb) == 0) { handle(1); printf("step 1 returned?!\n"); }
    else printf("step 1 longjmp'd out\n");
    if (++steps > 10) { printf("LOOPING: control came back to step 1 again\n"); fflush(stdout); _exit(1); }
    fflush(stdout);
    printf("step 2: %d\n", handle(2)); fflush(stdout);
    printf("step 3: %d\n", handle(0)); fflush(stdout);
    printf("step 4: %d\n", handle(2)); fflush(stdout);
    printf("step 5: %d\n", handle(0)); fflush(stdout);
    return NULL;
}
int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("end\n");
    return 0;
}
