/*
 * ECOSYSTEM pitfalls 11 and 19: an unmodified program installs, in main, a fatal-signal
 * handler the way mariadbd's handle_fatal_signal is installed: SEGV, BUS, ILL, FPE, ABRT,
 * SA_RESETHAND|SA_NODEFER, no SA_SIGINFO. The handler says so (write(2)) and re-raises the
 * signal, which must then take the default action (death by the signal, core if allowed).
 * Then main dereferences a wild pointer.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int *volatile wild = (int *)8;

static void handle_fatal_signal(int sig) {
    char msg[] = "handle_fatal_signal: got signal NN\n";
    msg[sizeof msg - 4] = (char)('0' + sig / 10);
    msg[sizeof msg - 3] = (char)('0' + sig % 10);
    write(1, msg, sizeof msg - 1);
    raise(sig);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sa.sa_handler = handle_fatal_signal;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    printf("installed\n");
    fflush(stdout);
    return *wild;
}
