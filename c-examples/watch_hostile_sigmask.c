/* Regression test from a hostile review of src/watch (tests/watch_hostile.rs): see the test for
 * the defect it caught. Unmodified program: no vmsrs.h. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
volatile long X;                 /* watched */
volatile long flag;              /* shares X's page, not watched itself */
static void on_sig(int s) { (void)s; flag = 1; }
int main(int argc, char **argv) {
    (void)argv;
    X = 1;
    if (argc > 1) {
        /* v2: a critical section with every signal blocked (a common idiom) */
        sigset_t all, old; sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, &old);
        X = 2;
        sigprocmask(SIG_SETMASK, &old, 0);
        printf("v2: store with signals blocked survived, X=%ld\n", X);
        return 0;
    }
    /* v1: a handler installed with every signal masked, as many servers do */
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig; sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, 0);
    raise(SIGTERM);
    printf("v1: handler store survived, flag=%ld X=%ld\n", flag, X);
    return 0;
}
