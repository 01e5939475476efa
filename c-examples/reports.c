/*
 * reports.c -- what an operator sees of contained faults (tests/reports.rs): the stderr block
 * with symbolized frames, the JSON Lines log (VMSRS_LOG_PATH), the metrics textfile
 * (VMSRS_METRICS_PATH), and the reporter thread's signal mask. Build it with -rdynamic so the
 * executable's functions are dynamic symbols (and with -fno-omit-frame-pointer for frames).
 *
 *   faults       users fault in several ways (NULL load in an exported function called
 *                through two others, wild store, division by zero, explicit suppression), one
 *                thread per user; prints "fault K done rc=R", then the counters of
 *                vmsrs_stats as "stat NAME VALUE" just before main returns.
 *   loop MS      as faults, repeated for MS milliseconds (metrics are rewritten meanwhile).
 *   fork         one fault in the parent, then a forked child (no exec) faults twice, makes
 *                one more libvmsrs call and lingers, then exits; prints "child PID".
 *   sigterm      mariadbd-style signal handling: every program thread blocks SIGTERM and a
 *                signal thread sigwait()s for it; a SIGTERM handler is also installed and
 *                must never run. Prints "reporter TID" (the vmsrs-report thread) and "ready",
 *                then waits for the test's kill(pid, SIGTERM); prints "sigwait got SIGTERM".
 *   init         only vmsrs_init_profile; prints "init rc=R".
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include "check.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t shared[8];
static volatile int *volatile null_ptr = NULL;
static volatile int *volatile wild_ptr = (int *)0x10;
static volatile int zero = 0;

/* Exported (with -rdynamic), never inlined: the report must name them. */
__attribute__((noinline)) int reports_null_load(void) { return *null_ptr + 1; }
__attribute__((noinline)) int reports_middle(int k) { return reports_null_load() + k; }
__attribute__((noinline)) int reports_wild_store(int v) {
    *wild_ptr = v;
    return v;
}
__attribute__((noinline)) int reports_divide(int v) { return v / zero; }

static int kind;

static void *user(void *arg) {
    (void)arg;
    int rc = VMSRS_USER_BEGIN();
    if (rc == VMSRS_FAULTED)
        return (void *)(intptr_t)1;
    CHECK(rc == 0, "begin: %d", rc);
    VMSRS_SET(shared[kind], (uint64_t)kind + 100);
    volatile int r = 0;
    switch (kind) {
    case 0: r = reports_middle(3); break;
    case 1: r = reports_wild_store(7); break;
    case 2: r = reports_divide(9); break;
    case 3: vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, (void *)0x1234); break;
    }
    (void)r;
    return (void *)(intptr_t)(vmsrs_user_end() == VMSRS_FAULTED);
}

static void fault_once(int k) {
    pthread_t t;
    void *res;
    kind = k;
    CHECK(pthread_create(&t, NULL, user, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, &res) == 0, "pthread_join");
    printf("fault %d done rc=%d\n", k, (int)(intptr_t)res);
    fflush(stdout);
}

static void init(void) {
    int rc = vmsrs_init_profile(NULL);
    CHECK(rc == 0, "vmsrs_init_profile: %d", rc);
    CHECK(vmsrs_profile(shared, sizeof shared, "shared") == 0, "vmsrs_profile");
}

static void print_stats(void) {
    struct vmsrs_stats s;
    CHECK(vmsrs_stats(&s) == 0, "vmsrs_stats");
#define P(f) printf("stat %s %llu\n", #f, (unsigned long long)s.f)
    P(faults_contained); P(faults_chained); P(instructions_skipped); P(unwinds); P(threads_ended);
    P(users_begun); P(users_committed); P(users_faulted); P(users_collected); P(users_live);
    P(restorations); P(history_entries); P(corruptions); P(unrecorded_stores); P(shadow_stores);
    P(frees_withheld); P(suppressed_outputs); P(bounds_faults); P(ranges); P(exposures);
#undef P
    fflush(stdout);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static volatile pid_t term_handler_tid;
static void on_term(int sig) {
    (void)sig;
    term_handler_tid = (pid_t)syscall(SYS_gettid);
}

static void *signal_thread(void *arg) {
    sigset_t *set = arg;
    int sig = 0;
    CHECK(sigwait(set, &sig) == 0, "sigwait");
    printf("sigwait got %s on tid %ld\n", sig == SIGTERM ? "SIGTERM" : "other", (long)syscall(SYS_gettid));
    fflush(stdout);
    return NULL;
}

static long reporter_tid(void) {
    DIR *d = opendir("/proc/self/task");
    CHECK(d, "opendir");
    struct dirent *e;
    long found = 0;
    while ((e = readdir(d))) {
        char path[300], comm[64] = {0};
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && strncmp(comm, "vmsrs-report", 12) == 0)
            found = atol(e->d_name);
        fclose(f);
    }
    closedir(d);
    return found;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "faults";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "init") == 0) {
        printf("init rc=%d\n", vmsrs_init_profile(NULL));
        return 0;
    }
    init();
    if (strcmp(mode, "faults") == 0) {
        for (int k = 0; k < 4; k++)
            fault_once(k);
        print_stats();
        return 0;
    }
    if (strcmp(mode, "loop") == 0) {
        long until = now_ms() + (argc > 2 ? atol(argv[2]) : 1000);
        while (now_ms() < until) {
            for (int k = 0; k < 4; k++)
                fault_once(k);
            usleep(5000);
        }
        print_stats();
        return 0;
    }
    if (strcmp(mode, "fork") == 0) {
        fault_once(0);
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            fault_once(0);
            fault_once(1);
            struct vmsrs_stats s;
            vmsrs_stats(&s); /* a libvmsrs call: the child's reporter starts here */
            usleep(300 * 1000);
            exit(0);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
        printf("child %d\n", (int)pid);
        return 0;
    }
    if (strcmp(mode, "sigterm") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        CHECK(sigaction(SIGTERM, &sa, NULL) == 0, "sigaction");
        static sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0, "pthread_sigmask");
        fault_once(0); /* the reporter has something to do */
        pthread_t t;
        CHECK(pthread_create(&t, NULL, signal_thread, &set) == 0, "pthread_create");
        long rt = reporter_tid();
        CHECK(rt != 0, "no vmsrs-report thread");
        printf("reporter %ld\nready\n", rt);
        fflush(stdout);
        CHECK(pthread_join(t, NULL) == 0, "pthread_join");
        CHECK(term_handler_tid == 0, "the SIGTERM handler ran on tid %d (reporter %ld)", (int)term_handler_tid, rt);
        return 0;
    }
    CHECK(0, "unknown mode %s", mode);
}
