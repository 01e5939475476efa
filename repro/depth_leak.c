/* A fault inside libvmsrs (here: a monitored store into a read-only profiled page, see
 * readonly_range.c) is forwarded to the program's SIGSEGV handler, which recovers with
 * siglongjmp (a common pattern). The thread's libvmsrs depth is never decremented, so from
 * then on every asynchronous signal to that thread is "deferred" (re-queued and blocked)
 * forever. Expected: the SIGUSR1 sent afterwards runs its handler (handled=1). */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
static sigjmp_buf jb;
static volatile sig_atomic_t handled;
static void on_segv(int sig) { (void)sig; siglongjmp(jb, 1); }
static void on_usr1(int sig) { (void)sig; handled = 1; }
int main(void) {
    signal(SIGSEGV, on_segv);
    signal(SIGUSR1, on_usr1);
    if (vmsrs_init_profile(NULL) != 0) return 2;
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (vmsrs_profile(ro, 4096, "ro") != 0) return 2;
    if (sigsetjmp(jb, 1) == 0) vmsrs_store64((uint64_t *)ro, 1);
    else fprintf(stderr, "recovered from the SIGSEGV by siglongjmp\n");
    raise(SIGUSR1);
    sigset_t pend; sigpending(&pend);
    fprintf(stderr, "SIGUSR1 handled=%d pending=%d (expected 1, 0)\n", handled, sigismember(&pend, SIGUSR1));
    return handled ? 0 : 1;
}
