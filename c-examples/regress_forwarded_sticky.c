/* The program's SIGSEGV handler ignores SIGSEGVs sent by kill/pthread_kill (si_code <= 0)
 * and returns. After libvmsrs once forwards such a signal to it (here: the thread had no user
 * and VMSRS_CONTAIN_IMPLICIT=0), libvmsrs keeps the thread's "forwarded" mark, and the next
 * pthread_kill(SIGSEGV) to the same thread, now inside a user, is not contained either.
 * README: "A signal sent with kill or pthread_kill to a user's thread is contained like a
 * fault (VMSRS_ACTION_SUPPRESSED)".
 *   VMSRS_CONTAIN_IMPLICIT=0 ./forwarded_sticky
 * Expected: second signal contained: suppressed=1, program handler called once. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <signal.h>
static volatile int prog_calls;
static void prog_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    prog_calls++;
    if (si->si_code <= 0) return; /* ignore signals sent by other processes/threads */
    _exit(99);
}
static void *worker(void *a) {
    (void)a;
    pthread_kill(pthread_self(), SIGSEGV);       /* no user yet: forwarded to prog_segv */
    int c1 = prog_calls;
    if (vmsrs_user_begin() != 0) return NULL;
    pthread_kill(pthread_self(), SIGSEGV);       /* inside a user: must be contained */
    int sup = vmsrs_user_suppressed();
    int rc = vmsrs_user_end();
    fprintf(stderr, "program handler calls: %d then %d (expected 1 then 1); suppressed=%d user_end=%d (expected 1 and 1)\n",
            c1, prog_calls, sup, rc);
    return (void *)(long)(sup == 1);
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = prog_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (vmsrs_init_profile(NULL) != 0) return 2;
    pthread_t t; void *ok;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, &ok);
    return ok ? 0 : 1;
}
