/*
 * Regression cases from the hostile audit of the recovery core: each case once killed, hung
 * or silently lost a store. Run as `audit CASE`; prints "audit CASE: PASS" and exits 0 when
 * libvmsrs behaves as documented, anything else is a failure (tests/audit.rs runs each case
 * under a timeout, so a hang fails too).
 *
 *   store-bad-src       vmsrs_store with an unreadable source              (defect 1)
 *   load-bad-dst        vmsrs_load into an unwritable buffer, a user suppressed (defect 2)
 *   signal-reentry      a SIGALRM handler storing to granules the thread is storing to (3)
 *   fault-in-malloc     the first contained fault taken inside malloc, in children (4)
 *   fork-first-fault    fork while other threads take their first faults (4)
 *   unprofile-memory    profile/store/unprofile 64 MiB ten times; profile 1 GiB   (5)
 *   table-full          stores of a thread with no user while 4096 users are live (6)
 *   printf-wild         vmsrs_printf("%s", wild) under unwind, then printf elsewhere (7)
 *   kill-in-store       pthread_kill(SIGSEGV) at a thread inside monitored stores (8)
 *   handler-after-init  the program installs its own SIGSEGV handler after init (9)
 *   main-no-recovery    a fault on the main thread under unwind, no recovery point (10)
 *   kill-while-ending   SIGSEGV sent without pause at threads libvmsrs is ending (CI, stop 13)
 */
#define _GNU_SOURCE
#include <vmsrs.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_case;

/* A store through a pointer the compiler cannot see (so it is a real faulting store). */
static int *volatile wild;
static void wild_store(uintptr_t a) {
    wild = (int *)a;
    *wild = 1;
}

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "audit %s: FAIL at %s:%d: %s\n", g_case, __FILE__, __LINE__, #cond); \
            fflush(stderr);                                                                   \
            _exit(1);                                                                         \
        }                                                                                     \
    } while (0)

static void pass(void) {
    printf("audit %s: PASS\n", g_case);
    fflush(stdout);
    exit(0);
}

static int unwind_policy(void) {
    const char *p = getenv("VMSRS_POLICY");
    return p != NULL && strcmp(p, "unwind") == 0;
}

static void init(void) { CHECK(vmsrs_init_profile(NULL) == 0); }

static struct vmsrs_stats stats(void) {
    struct vmsrs_stats s;
    CHECK(vmsrs_stats(&s) == 0);
    return s;
}

static uint64_t rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)(sysconf(_SC_PAGESIZE) / 1024);
}

static uint64_t table[64];

/* ---- 1 and 2: bad buffers handed to the API are the user's memory error ---------------- */

static void case_store_bad_src(void) {
    init();
    CHECK(vmsrs_profile(table, sizeof table, "table") == 0);
    memset(table, 0x11, sizeof table);
    volatile int rc = 0;
    int b = VMSRS_USER_BEGIN();
    if (b == VMSRS_FAULTED) {
        CHECK(unwind_policy());
        CHECK(rc == 0); /* unwound from inside the call */
    } else {
        CHECK(b == 0);
        rc = vmsrs_store(table, (void *)0x10, 64);
        CHECK(!unwind_policy());
        CHECK(rc == VMSRS_EFAULT);
        CHECK(vmsrs_user_suppressed() == 1);
        CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    }
    for (size_t i = 0; i < 64; i++) CHECK(((unsigned char *)table)[i] == 0x11);
    /* The same through memcpy, memset and assign. */
    b = VMSRS_USER_BEGIN();
    if (b == 0) {
        void *r = vmsrs_memcpy(table, (void *)0x10, 64);
        CHECK(!unwind_policy());
        CHECK(r == NULL && vmsrs_last_error() == VMSRS_EFAULT);
        CHECK(vmsrs_assign(table, (void *)0x10, 8) == VMSRS_EFAULT);
        CHECK(vmsrs_memset((void *)0x10, 0, 8) == NULL && vmsrs_last_error() == VMSRS_EFAULT);
        CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    } else {
        CHECK(b == VMSRS_FAULTED && unwind_policy());
    }
    struct vmsrs_stats s = stats();
    CHECK(s.faults_contained >= 2 && s.users_faulted >= 2);
    pass();
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void set_stage(int s) {
    pthread_mutex_lock(&mu);
    stage = s;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void wait_stage(int s) {
    pthread_mutex_lock(&mu);
    while (stage < s) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

/* A user that faults and stays suppressed until told to end. */
static void *suppressed_user(void *arg) {
    (void)arg;
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &m, NULL); /* timer signals go to the main thread */
    CHECK(vmsrs_user_begin() == 0);
    vmsrs_store64(&table[1], 0xBAD);
    CHECK(vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL) == 0);
    set_stage(1);
    wait_stage(2);
    CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    return NULL;
}

static void case_load_bad_dst(void) {
    init();
    CHECK(vmsrs_profile(table, sizeof table, "table") == 0);
    vmsrs_store64(&table[1], 7);
    pthread_t t;
    pthread_create(&t, NULL, suppressed_user, NULL);
    wait_stage(1);
    CHECK(stats().users_suppressed_now == 1);
    volatile int rc = 0;
    int b = VMSRS_USER_BEGIN();
    if (b == 0) {
        rc = vmsrs_load((void *)0x10, table, 16);
        CHECK(!unwind_policy());
        CHECK(rc == VMSRS_EFAULT);
        CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    } else {
        CHECK(b == VMSRS_FAULTED && unwind_policy() && rc == 0);
    }
    CHECK(vmsrs_load64(&table[1]) == 7); /* G3: the suppressed user's 0xBAD is not seen */
    set_stage(2);
    pthread_join(t, NULL);
    pass();
}

/* ---- 3: a signal handler that re-enters libvmsrs ------------------------------------- */

static volatile sig_atomic_t alarms;

static void on_alarm_store(int sig) {
    (void)sig;
    alarms++;
    uint64_t v = vmsrs_load64(&table[alarms % 4]);
    vmsrs_store64(&table[alarms % 4], v + 1);
    vmsrs_store32((uint32_t *)&table[4], (uint32_t)alarms);
}

static void case_signal_reentry(void) {
    init();
    CHECK(vmsrs_profile(table, sizeof table, "table") == 0);
    /* A suppressed user makes every load take the checked (locking) path too. */
    pthread_t t;
    pthread_create(&t, NULL, suppressed_user, NULL);
    wait_stage(1);
    signal(SIGALRM, on_alarm_store);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rounds = 0;
    do {
        CHECK(vmsrs_user_begin() == 0);
        for (int i = 0; i < 1000; i++) {
            vmsrs_store64(&table[i % 4], (uint64_t)i);
            (void)vmsrs_load64(&table[(i + 1) % 4]);
            vmsrs_store16((uint16_t *)&table[5] + 1, (uint16_t)i);
        }
        CHECK(vmsrs_user_end() == 0);
        rounds++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while (t1.tv_sec - t0.tv_sec < 2);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK(alarms > 20);
    set_stage(2);
    pthread_join(t, NULL);
    printf("audit signal-reentry: %ld rounds, %d alarms handled\n", rounds, (int)alarms);
    pass();
}

/* ---- 4: nothing reachable from the handler allocates ---------------------------------- */

static void on_alarm_fault(int sig) {
    (void)sig;
    /* The first faults are the ones that used to build tables; a few stay under the
     * same-pc limit, so oblivious skipping goes on. */
    if (++alarms <= 3) wild_store(16); /* contained: the store is skipped */
}

static void *volatile sink;

static void *malloc_loop(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        char *p = malloc(16 + (size_t)(i % 4096));
        char *q = malloc(100000 + (size_t)(i % 7) * 4096); /* large bins too */
        p[0] = q[0] = (char)i;
        sink = p; /* the pair cannot be optimised away */
        sink = q;
        free(p);
        free(q);
    }
    return NULL;
}

/* One child: faults arrive (from SIGALRM) while this process is inside malloc. */
static int fault_in_malloc_child(int threads) {
    init();
    signal(SIGALRM, on_alarm_fault);
    struct itimerval it = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &it, NULL);
    pthread_t t[8];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, malloc_loop, (void *)200000L);
    malloc_loop((void *)200000L);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    return alarms > 0 ? 0 : 3;
}

/* Wait for a child for at most `secs`; returns its status, or -1 (killed: it hung). */
static int wait_child(pid_t pid, int secs) {
    for (int i = 0; i < secs * 100; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void case_fault_in_malloc(void) {
    for (int trial = 0; trial < 20; trial++) {
        int threads = trial % 2 == 0 ? 0 : 3;
        pid_t pid = fork();
        if (pid == 0) _exit(fault_in_malloc_child(threads));
        int st = wait_child(pid, 60);
        if (!(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            fprintf(stderr, "audit fault-in-malloc: trial %d (%d threads): %s %d\n", trial, threads,
                    st == -1 ? "hung" : WIFSIGNALED(st) ? "killed by signal" : "exit", st == -1 ? 0 : WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            CHECK(0);
        }
    }
    pass();
}

static void *first_fault(void *arg) {
    (void)arg;
    int b = VMSRS_USER_BEGIN();
    if (b == VMSRS_FAULTED) return NULL; /* unwind policy */
    CHECK(b == 0);
    wild_store(24);
    CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    return NULL;
}

static void case_fork_first_fault(void) {
    init();
    int hung = 0;
    for (int i = 0; i < 200; i++) {
        pthread_t t;
        pthread_create(&t, NULL, first_fault, NULL);
        pid_t pid = fork();
        if (pid == 0) {
            /* The child's own first fault must not wait on anything the parent's threads held. */
            int b = VMSRS_USER_BEGIN();
            if (b == VMSRS_FAULTED) _exit(0); /* unwind policy */
            if (b != 0) _exit(4);
            wild_store(32);
            _exit(vmsrs_user_end() == VMSRS_FAULTED ? 0 : 5);
        }
        pthread_join(t, NULL);
        int st = wait_child(pid, 10);
        if (st == -1) hung++;
        else CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK(hung == 0);
    pass();
}

/* ---- 5: metadata is paid for written granules only, and given back -------------------- */

static void case_unprofile_memory(void) {
    init();
    size_t len = 64u << 20;
    char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(buf != MAP_FAILED);
    memset(buf, 1, len);
    uint64_t start = rss_kib();
    for (int round = 0; round < 10; round++) {
        CHECK(vmsrs_profile(buf, len, "big") == 0);
        CHECK(vmsrs_user_begin() == 0);
        for (size_t off = 0; off < len; off += 4096) vmsrs_store64((uint64_t *)(buf + off), (uint64_t)round);
        CHECK(vmsrs_user_end() == 0);
        CHECK(vmsrs_unprofile(buf) == 0);
    }
    uint64_t after_rounds = rss_kib();
    printf("audit unprofile-memory: RSS %llu KiB -> %llu KiB over 10 rounds of 64 MiB\n",
           (unsigned long long)start, (unsigned long long)after_rounds);
    CHECK(after_rounds < start + 64 * 1024);
    munmap(buf, len);

    /* 1 GiB, never touched: profiling it must not write metadata for every granule. */
    size_t big = 1ul << 30;
    char *huge = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(huge != MAP_FAILED);
    uint64_t before = rss_kib();
    CHECK(vmsrs_profile(huge, big, "huge") == 0);
    CHECK(vmsrs_user_begin() == 0);
    for (size_t off = 0; off < big; off += big / 64) vmsrs_store64((uint64_t *)(huge + off), 9);
    CHECK(vmsrs_user_end() == 0);
    uint64_t profiled = rss_kib();
    CHECK(vmsrs_unprofile(huge) == 0);
    uint64_t end = rss_kib();
    printf("audit unprofile-memory: 1 GiB profiled: RSS %llu -> %llu -> %llu KiB\n", (unsigned long long)before,
           (unsigned long long)profiled, (unsigned long long)end);
    CHECK(profiled < before + 64 * 1024);
    CHECK(*(uint64_t *)(huge + big / 64) == 9);
    pass();
}

/* ---- 6: no store is dropped when no user can be created ------------------------------- */

#define LIVE 4096
static pthread_barrier_t full;

static void *hold_user(void *arg) {
    int *ok = arg;
    *ok = vmsrs_user_begin() == 0;
    pthread_barrier_wait(&full); /* all users live */
    pthread_barrier_wait(&full); /* the userless stores are done */
    if (*ok) vmsrs_user_end();
    return NULL;
}

static void *userless_stores(void *arg) {
    (void)arg;
    vmsrs_store64(&table[2], 0x1234);
    uint64_t src[4] = {5, 6, 7, 8};
    CHECK(vmsrs_memcpy(&table[8], src, sizeof src) == &table[8]);
    CHECK(vmsrs_user_current() == 0);
    return NULL;
}

static void case_table_full(void) {
    init();
    CHECK(vmsrs_profile(table, sizeof table, "table") == 0);
    /* Fill the table: users held by threads with small stacks. */
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    static pthread_t th[LIVE];
    static int ok[LIVE];
    pthread_barrier_init(&full, NULL, LIVE + 1);
    for (int i = 0; i < LIVE; i++) CHECK(pthread_create(&th[i], &a, hold_user, &ok[i]) == 0);
    pthread_barrier_wait(&full);
    int live = 0;
    for (int i = 0; i < LIVE; i++) live += ok[i];
    CHECK(live == LIVE || stats().users_live == LIVE);
    uint64_t before = stats().unrecorded_stores;
    pthread_t t;
    pthread_create(&t, NULL, userless_stores, NULL);
    pthread_join(t, NULL);
    CHECK(table[2] == 0x1234);
    CHECK(table[8] == 5 && table[9] == 6 && table[10] == 7 && table[11] == 8);
    CHECK(stats().unrecorded_stores > before);
    pthread_barrier_wait(&full);
    for (int i = 0; i < LIVE; i++) pthread_join(th[i], NULL);
    CHECK(vmsrs_load64(&table[2]) == 0x1234);
    pass();
}

/* ---- 7: a bad %s never leaves a stream locked ----------------------------------------- */

static void *plain_printf(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) printf("audit printf-wild: other thread prints %d\n", i);
    fflush(stdout);
    return NULL;
}

static void case_printf_wild(void) {
    init();
    volatile int rc = 0;
    int b = VMSRS_USER_BEGIN();
    if (b == 0) {
        rc = vmsrs_printf("wild: %s\n", (char *)0x10);
        CHECK(!unwind_policy());
        CHECK(rc == VMSRS_EFAULT);
        rc = vmsrs_printf("wild: %2$s %1$d\n", 1, (char *)0x20);
        CHECK(rc == VMSRS_EFAULT);
        CHECK(vmsrs_fprintf((FILE *)0x30, "x\n") == VMSRS_EFAULT);
        CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    } else {
        CHECK(b == VMSRS_FAULTED && unwind_policy() && rc == 0);
    }
    CHECK(vmsrs_printf("audit printf-wild: %s %2d\n", "fine", 7) > 0);
    pthread_t t;
    pthread_create(&t, NULL, plain_printf, NULL);
    pthread_join(t, NULL);
    pass();
}

/* ---- 8: kill/raise signals are contained wherever they land --------------------------- */

static atomic_int stop;
static atomic_long worker_rounds;

static void *store_loop(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
            atomic_fetch_add(&worker_rounds, 1);
            continue;
        }
        for (int i = 0; i < 2000; i++) {
            vmsrs_store64(&table[i % 8], (uint64_t)i);
            uint64_t src[3] = {1, 2, 3};
            vmsrs_store(&table[16], src, sizeof src);
        }
        vmsrs_user_end();
        atomic_fetch_add(&worker_rounds, 1);
    }
    return NULL;
}

static void case_kill_in_store(void) {
    init();
    CHECK(vmsrs_profile(table, sizeof table, "table") == 0);
    pthread_t t;
    pthread_create(&t, NULL, store_loop, NULL);
    int kills = 0;
    for (int i = 0; i < 300; i++) {
        usleep(500);
        if (pthread_kill(t, SIGSEGV) == 0) kills++;
    }
    usleep(20000);
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    struct vmsrs_stats s = stats();
    printf("audit kill-in-store: %d kills, %llu contained, %ld rounds\n", kills,
           (unsigned long long)s.faults_contained, (long)atomic_load(&worker_rounds));
    CHECK(s.faults_contained >= 1);
    CHECK(s.faults_chained == 0);
    pass();
}

/* ---- 8b: a thread being ended is not ended again --------------------------------------
 * A thread with no recovery point is ended by its first contained signal (unwind policy);
 * its end runs the trampoline, glibc's pthread_exit and (on the process's first end) the
 * loader's dladdr, which holds the loader lock. A SIGSEGV sent in that window once ended the
 * thread a second time with the lock held: exit() then waited for it forever. */

static atomic_int spin_tid;

static void *spin_until_ended(void *arg) {
    (void)arg;
    atomic_store(&spin_tid, (int)gettid());
    for (;;) __asm__ volatile("" ::: "memory");
    return NULL;
}

static void case_kill_while_ending(void) {
    init();
    long kills = 0;
    for (int round = 0; round < 40; round++) {
        atomic_store(&spin_tid, 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, spin_until_ended, NULL) == 0);
        int tid;
        while ((tid = atomic_load(&spin_tid)) == 0) sched_yield();
        /* Until the thread is gone: every moment of its end gets a signal. */
        while (syscall(SYS_tgkill, getpid(), tid, SIGSEGV) == 0) kills++;
        CHECK(errno == ESRCH);
        CHECK(pthread_join(t, NULL) == 0);
    }
    /* The loader lock is free (a thread ended holding it would hang this call). */
    Dl_info info;
    CHECK(dladdr((void *)case_kill_while_ending, &info) != 0);
    struct vmsrs_stats s = stats();
    printf("audit kill-while-ending: %ld kills, %llu contained, %llu threads ended\n", kills,
           (unsigned long long)s.faults_contained, (unsigned long long)s.threads_ended);
    CHECK(s.threads_ended == 40);
    CHECK(s.faults_chained == 0);
    pass();
}

/* ---- 9: libvmsrs's handler stays first ------------------------------------------------ */

static volatile sig_atomic_t program_handler_calls, chaining_phase;

static void program_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)si;
    (void)uc;
    program_handler_calls++;
    if (!chaining_phase) {
        static const char msg[] = "audit handler-after-init: FAIL: the program's handler replaced libvmsrs's\n";
        write(2, msg, sizeof msg - 1);
        _exit(1);
    }
    printf("audit handler-after-init: the program's handler got the uncontained fault\n");
    pass();
}

static void *userless_fault(void *arg) {
    (void)arg;
    wild_store(40); /* not contained (VMSRS_CONTAIN_IMPLICIT=0): chained */
    return NULL;
}

static void case_handler_after_init(void) {
    init();
    CHECK(vmsrs_profile(table, sizeof table, "table") == 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = program_segv;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGSEGV, &sa, &old) == 0);
    /* The program reads back what it set. */
    struct sigaction now;
    CHECK(sigaction(SIGSEGV, NULL, &now) == 0 && now.sa_sigaction == program_segv);
    /* A user's fault is still contained. */
    CHECK(vmsrs_user_begin() == 0);
    vmsrs_store64(&table[3], 0xBAD);
    wild_store(8);
    CHECK(vmsrs_user_end() == VMSRS_FAULTED);
    CHECK(program_handler_calls == 0);
    CHECK(vmsrs_load64(&table[3]) == 0);
    CHECK(stats().faults_contained == 1);
    /* signal() too, then a fault no user owns goes to the program's handler. */
    CHECK(signal(SIGBUS, SIG_DFL) != SIG_ERR);
    chaining_phase = 1;
    pthread_t t;
    pthread_create(&t, NULL, userless_fault, NULL);
    pthread_join(t, NULL);
    CHECK(0); /* not reached: program_segv exits */
}

/* ---- 10: the main thread is never ended alone ----------------------------------------- */

static void case_main_no_recovery(void) {
    init();
    CHECK(vmsrs_user_begin() == 0); /* no recovery point */
    wild_store(48);
    /* Not reached under unwind: the process must end with the signal, not exit 0. */
    printf("audit main-no-recovery: main thread went on\n");
    exit(0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: audit CASE\n");
        return 2;
    }
    g_case = argv[1];
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {
        {"store-bad-src", case_store_bad_src},
        {"load-bad-dst", case_load_bad_dst},
        {"signal-reentry", case_signal_reentry},
        {"fault-in-malloc", case_fault_in_malloc},
        {"fork-first-fault", case_fork_first_fault},
        {"unprofile-memory", case_unprofile_memory},
        {"table-full", case_table_full},
        {"printf-wild", case_printf_wild},
        {"kill-in-store", case_kill_in_store},
        {"handler-after-init", case_handler_after_init},
        {"main-no-recovery", case_main_no_recovery},
        {"kill-while-ending", case_kill_while_ending},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].run();
            return 1;
        }
    }
    fprintf(stderr, "audit: unknown case %s\n", argv[1]);
    return 2;
}
