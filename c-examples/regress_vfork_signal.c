/* A vfork child resets a signal to SIG_DFL before exec (the classic pattern of shells and
 * process spawners). The child shares the parent's memory, so the interposed signal() writes
 * libvmsrs's table of the PARENT's dispositions; the parent's kernel disposition is still
 * libvmsrs's trampoline, which now finds SIG_DFL in the table and drops the signal.
 * Expected: after the child, sigaction() in the parent reads back its own handler, and a
 * SIGUSR1 to the parent runs it (handled=1). Linked with -lvmsrs (interposes signal()). */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t handled;
static void on_usr1(int sig) { (void)sig; handled = 1; }
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    signal(SIGUSR1, on_usr1);
    pid_t pid = vfork();
    if (pid == 0) {
        signal(SIGUSR1, SIG_DFL);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    raise(SIGUSR1);
    fprintf(stderr, "parent reads back %s; SIGUSR1 handled=%d (expected its handler, 1)\n",
            old.sa_handler == on_usr1 ? "its handler" : old.sa_handler == SIG_DFL ? "SIG_DFL" : "something else", handled);
    return handled ? 0 : 1;
}
