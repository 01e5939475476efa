/* vmsrs_stats (and vmsrs_exposures) take the hv's exposure-table spin lock without entering
 * libvmsrs's signal-deferral window (no HvEntry), so a SIGALRM handler calling vmsrs_stats
 * that interrupts vmsrs_stats on the same thread spins forever on a lock its own thread
 * holds. README: "Every function may be called from a signal handler, even one that
 * interrupted another libvmsrs call on the same thread".
 * Usage: sig_stats_reentry [stats|exposures]. Expected: "done" after 2 s. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
static int use_exposures;
static volatile unsigned long hits;
static void call(void) {
    if (use_exposures) {
        struct vmsrs_exposure e[4];
        size_t total;
        vmsrs_exposures(e, 4, &total);
    } else {
        struct vmsrs_stats s;
        vmsrs_stats(&s);
    }
}
static void on_alarm(int sig) { (void)sig; call(); hits++; }
int main(int argc, char **argv) {
    use_exposures = argc > 1 && !strcmp(argv[1], "exposures");
    if (vmsrs_init_profile(NULL) != 0) return 2;
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 20}, {0, 20}};
    setitimer(ITIMER_REAL, &it, NULL);
    time_t t0 = time(NULL);
    unsigned long rounds = 0;
    while (time(NULL) - t0 < 2) { call(); rounds++; }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    fprintf(stderr, "done: %lu rounds, %lu handler calls\n", rounds, hits);
    return 0;
}
