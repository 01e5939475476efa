/* Regression (tests/regressions.rs): a program's SIGTRAP handler runs with SIGTRAP blocked, as
 * the kernel runs it without SA_NODEFER. libvmsrs's handler trampoline unblocked it (SIGTRAP is
 * one of the synchronous signals it keeps deliverable), so a SIGTRAP raised or sent while the
 * handler ran nested a new handler at once: a program that sends itself SIGTRAPs faster than its
 * handler runs (each of the handler's stores to a watched page is a trap) nested without bound
 * and overflowed the signal stack. Here the handler raises SIGTRAP 100 times from inside
 * itself: each must be delivered after it returns (depth 1), never inside it. Unmodified
 * program: no vmsrs.h. Exit 0 when the deepest nesting is 1. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile int depth, deepest, count;

static void on_trap(int sig) {
    (void)sig;
    if (++depth > deepest) deepest = depth;
    if (count++ < 100) raise(SIGTRAP);
    depth--;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_trap;
    sigaction(SIGTRAP, &sa, NULL);
    raise(SIGTRAP);
    printf("handled=%d deepest=%d %s\n", count, deepest, deepest == 1 && count == 101 ? "OK" : "FAIL");
    return !(deepest == 1 && count == 101);
}
