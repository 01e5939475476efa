/*
 * regress_watch_unmap_signal: a signal handler of the program increments a counter on a page
 * of a large watched global (VMSRS_RANGE_0=symbol:big, 6000 pages) every 20 us while the main
 * thread unmaps the global's last page, which gives the rest back to the program as private
 * memory (tens of milliseconds). Every increment must stay (G2): the count equals the
 * handler's runs. A handler's store landed in the old mapping after its page was copied, and
 * hundreds were lost.
 *
 * Prints "unmap_signal: OK" and exits 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#define PAGES 6000
__attribute__((aligned(4096))) long big[PAGES * 512] = {1};
static volatile long runs;
static volatile int stop;
static pthread_t main_thread;

static void on_usr1(int sig)
{
    (void)sig;
    big[1] += 1;
    runs++;
}

static void *send(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 20000};
    while (!stop) {
        pthread_kill(main_thread, SIGUSR1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void spin(void)
{
    for (volatile int k = 0; k < 3000000; k++)
        ;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    main_thread = pthread_self();
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 2;
    pthread_t t;
    if (pthread_create(&t, NULL, send, NULL) != 0)
        return 2;
    spin();
    if (munmap((char *)big + (PAGES - 1) * 4096L, 4096) != 0) {
        perror("munmap");
        return 2;
    }
    spin();
    stop = 1;
    pthread_join(t, NULL);
    /* Block the signal while reading both: no handler between the two loads. */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    long r = runs, v = big[1];
    if (r == 0 || v != r) {
        printf("FAIL: the handler ran %ld times, big[1] is %ld\n", r, v);
        return 1;
    }
    printf("unmap_signal: OK (%ld increments)\n", r);
    return 0;
}
