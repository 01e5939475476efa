/* Regression test from a hostile review of src/watch (tests/watch_hostile.rs): see the test for
 * the defect it caught. Unmodified program: no vmsrs.h. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
volatile long X;                 /* watched */
volatile long flag;              /* shares X's page, not watched itself */
static void on_sig(int s) { (void)s; flag = 1; }
int main(int argc, char **argv) {
    X = 1;
    if (argc > 1 && strcmp(argv[1], "v3") == 0) {
        /* v3: SIGSEGV blocked behind libvmsrs's back (a raw system call), then unblocked with
         * sigprocmask: the unblock once lost SIGSEGV from its set, and the store killed. */
        sigset_t all, segv;
        sigfillset(&all);
        sigemptyset(&segv);
        sigaddset(&segv, SIGSEGV);
        /* Once first: the lazy binding of sigprocmask stores to the GOT, on X's page. */
        sigprocmask(SIG_UNBLOCK, &segv, NULL);
        syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
        sigprocmask(SIG_UNBLOCK, &segv, NULL);
        X = 3;
        printf("v3: store after unblocking SIGSEGV survived, X=%ld\n", X);
        return 0;
    }
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
