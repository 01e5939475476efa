/* fork() while other threads are inside libvmsrs (stores to hot granules, faults, profile/
 * unprofile, malloc bookkeeping), then use the API in the child. libvmsrs registers only a
 * child-side atfork hook; its spin locks (granule, pool, stripe, bounds table) held by a
 * thread that did not come along stay locked in the child forever.
 * Expected: every child finishes its API calls and exits 0 (within 20 s even on a loaded machine).
 * Usage: fork_locks [forks] */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static uint64_t table[64];
static char spare[8][4096] __attribute__((aligned(4096)));
static atomic_int stop;
static void *storer(void *a) {
    long id = (long)a;
    for (unsigned long i = 0; !atomic_load(&stop); i++) {
        if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) continue;
        vmsrs_store64(&table[i % 64], i);
        if (i % 97 == 0) vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL);
        vmsrs_store64(&table[(i + 1) % 64], i);
        vmsrs_user_end();
        if (id == 1) { void *p = vmsrs_malloc(32); vmsrs_free(p); }
    }
    return NULL;
}
static void *profiler(void *a) {
    (void)a;
    for (unsigned long i = 0; !atomic_load(&stop); i++) {
        char *r = spare[i % 8];
        if (vmsrs_profile(r, 4096, "spare") == 0) { vmsrs_store64((uint64_t *)r, i); vmsrs_unprofile(r); }
    }
    return NULL;
}
static int wait_child(pid_t pid, int ms) {
    for (int i = 0; i < ms; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}
int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 200;
    if (vmsrs_init_profile(NULL) != 0) return 2;
    if (vmsrs_profile(table, sizeof table, "table") != 0) return 2;
    pthread_t th[3];
    pthread_create(&th[0], NULL, storer, (void *)0);
    pthread_create(&th[1], NULL, storer, (void *)1);
    pthread_create(&th[2], NULL, profiler, NULL);
    int hung = 0, failed = 0;
    for (int f = 0; f < forks; f++) {
        usleep(500);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30); /* a hang, not a slow machine */
            if (vmsrs_user_begin() != 0) _exit(3);
            for (int i = 0; i < 64; i++) vmsrs_store64(&table[i], 42);
            for (int i = 0; i < 64; i++) (void)vmsrs_load64(&table[i]);
            void *p = vmsrs_malloc(64); vmsrs_free(p);
            if (vmsrs_profile(spare[7], 4096, "c") == 0) vmsrs_unprofile(spare[7]);
            struct vmsrs_stats s; vmsrs_stats(&s);
            vmsrs_user_end();
            _exit(0);
        }
        int rc = wait_child(pid, 20000);
        if (rc == -1) hung++;
        else if (rc != 0) { failed++; fprintf(stderr, "child %d exit %d\n", f, rc); }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    fprintf(stderr, "forks=%d hung=%d failed=%d\n", forks, hung, failed);
    return hung || failed;
}
