/* Regression from a hostile review (tests/regressions.rs): an unmodified program whose signal
 * handler is installed with SA_NODEFER (a SIGPROF timer, 1 ms of CPU) calls a rescue point
 * (VMSRS_USER_CALL=work:-1) in a loop. A signal that arrives while the thread is inside
 * libvmsrs is deferred: queued again and kept blocked until libvmsrs is left. Under
 * SA_NODEFER the handler ran with the signal deliverable, so the queued copy came back at
 * once, was deferred again, and so on until the signal stack overflowed: the process died by
 * SIGSEGV (3 runs of 3). Prints the calls and the signals handled; exit 0 when both are right.
 *
 * Usage: regress_nodefer_signal [CALLS] (default 3000000) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

static volatile long nsig;

__attribute__((noinline)) int work(int x) {
    __asm__ volatile("nop; nop; nop; nop; nop");
    return x * 3 + 1;
}

static void handler(int sig) {
    (void)sig;
    nsig++;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 3000000;
    struct sigaction sa = {0};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigaction(SIGPROF, &sa, 0);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_PROF, &it, 0);
    long sum = 0, want = 0;
    for (long i = 0; i < n; i++) {
        sum += work((int)i);
        want += (int)i * 3 + 1;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, 0);
    printf("calls %ld, sum %s, signals %ld\n", n, sum == want ? "right" : "WRONG", nsig);
    return sum == want && nsig > 0 ? 0 : 1;
}
