/*
 * watch_hw: an unmodified program (no vmsrs.h) whose two small globals are watched by hardware
 * watchpoints (tests/watch_hw.rs), under LD_PRELOAD=libvmsrs.so with
 *
 *   VMSRS_RANGE_0=symbol:limit  VMSRS_RANGE_1=symbol:small  VMSRS_WATCH=hw
 *   VMSRS_USER_CALL=request:-1  VMSRS_POLICY=unwind
 *
 * `limit` (8 bytes) and `small` (4 bytes) share one page with `hot`, which the main thread
 * writes often and nobody watches: the false sharing a page-protected range pays a trap for
 * on every store. Each call of request() is one user; a request that faults returns -1.
 *
 * The checks (each prints a line; the program exits 0 only if all hold):
 *   1. a normal request's store stays (G2);
 *   2. a faulting request's store is withdrawn for everyone (G3);
 *   3. two overlapping requests, byte-precise: the faulty one stores limit's low byte, the
 *      normal one then stores its high half and ends, then the faulty one faults: the low
 *      byte is restored, the high half stays;
 *   4. a faulting request's locked read-modify-write is withdrawn too;
 *   5. a thread that blocked every signal still has its store journaled (then withdrawn);
 *   6. a forked child watches its own copy: its faulting request is withdrawn in the child,
 *      its normal store stays in the child, and neither reaches the parent;
 *   7. after 20000 stores to the neighbour, a request, and 20000 more (where watch=auto moves
 *      the page to watchpoints), a faulting request's store is still withdrawn.
 *
 * `watch_hw dlopen LIB` instead loads LIB (c-examples/watch_hw_lib.c, with VMSRS_RANGE_2=
 * symbol:lib_limit pending until then) while two worker threads already run, creates a thread
 * (where libvmsrs arms ranges of libraries loaded since), then has the two old workers store
 * to lib_limit in a normal and a faulting request: their watchpoints came from arming's scan of
 * the process's threads, not from their own start.
 *
 * Regressions from the hostile review of watch=hw (each lost or kept a wrong value before):
 *   `watch_hw atomic`       4 threads x 10000 atomic increments of `limit`, no fault: none is
 *                           lost (the trap once put the old value back and lost the stores
 *                           that landed meanwhile);
 *   `watch_hw masked LIB`   a worker started with every signal blocked (SIGTRAP too) before
 *                           LIB's global is armed: its normal store stays, its faulting one
 *                           is withdrawn;
 *   `watch_hw cycles LIB`   LIB loaded and unloaded 6 times, each time a normal and a faulting
 *                           request: a freed watchpoint is reused (it once ran out at the fifth).
 *
 * SIGTRAPs that are not a perf watchpoint's (this nested guest sometimes loses a hit's DR6
 * bits, and the kernel then sends a plain TRAP_BRKPT SIGTRAP; forwarded to the program's
 * SIG_DFL, it left SIGTRAP at SIG_DFL and the next watchpoint killed the process):
 *   `watch_hw lostdr6`      a TRAP_BRKPT SIGTRAP as the kernel sends it for such a hit (queued
 *                           to this thread with rt_tgsigqueueinfo), then a normal and a faulting
 *                           request: the program survives, and the faulting store is withdrawn;
 *   `watch_hw icebp`        the program's own SIGTRAP handler still gets its own `int1` (also
 *                           one after bytes that decode with it as a store) and `int3`, and
 *                           the watchpoints still work after;
 *   `watch_hw int3`         with SIGTRAP at SIG_DFL, the program's own `int3` kills it at once
 *                           (it once went on, to die at the next watchpoint).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* One page: the watched words and the unwatched hot counter. `limit` and `small` are symbols
 * of their own (as a server's globals are), placed inside one page-aligned object. */
struct shared {
    long limit;
    int small;
    int pad;
    long hot;
    long spare;
};
__attribute__((aligned(4096))) struct shared page = {1, 1, 0, 1, 0};
/* (`pad`, `hotword` and `spare` only name more words for the refusal tests.) */
__asm__(".globl limit\n.type limit, @object\n.set limit, page\n.size limit, 8\n"
        ".globl small\n.type small, @object\n.set small, page + 8\n.size small, 4\n"
        ".globl pad\n.type pad, @object\n.set pad, page + 12\n.size pad, 4\n"
        ".globl hotword\n.type hotword, @object\n.set hotword, page + 16\n.size hotword, 8\n"
        ".globl spare\n.type spare, @object\n.set spare, page + 24\n.size spare, 8\n");
extern long limit;
extern int small;
#define hot (page.hot)

int *volatile wild;
static long *volatile lib_global;
static volatile int step;
static int failures;

static void fault(void) {
    wild = (int *)16;
    *wild = 1;
}

/* One user per call. */
__attribute__((noinline)) int request(int op) {
    switch (op) {
    case 1: /* normal */
        *(volatile long *)&limit = 100;
        return 0;
    case 2: /* faulty */
        *(volatile long *)&limit = 7;
        fault();
        return 0;
    case 3: /* faulty, overlapping op 4: its low byte, then it waits, then it faults */
        *(volatile unsigned char *)&limit = 0x11;
        step = 1;
        while (step != 2) {
        }
        fault();
        return 0;
    case 4: /* normal, overlapping op 3: the high half while op 3 is live */
        while (step != 1) {
        }
        ((volatile int *)&limit)[1] = 0x2222;
        step = 2;
        return 0;
    case 5: /* faulty: a locked read-modify-write */
        __atomic_fetch_add(&small, 41, __ATOMIC_SEQ_CST);
        fault();
        return 0;
    case 6: { /* faulty, every signal blocked (the watchpoint's SIGTRAP must still come) */
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        *(volatile int *)&small = 66;
        fault();
        return 0;
    }
    case 7: /* normal */
        *(volatile long *)&limit = 55;
        return 0;
    case 10: /* nothing: a request boundary (where libvmsrs may switch an auto range to hw) */
        return 0;
    case 8: /* normal, the library's global */
        *lib_global = 100;
        return 0;
    case 9: /* faulty, the library's global */
        *lib_global = 9;
        fault();
        return 0;
    }
    return 0;
}

static void *run_op(void *arg) { return (void *)(long)request((int)(long)arg); }

static int in_thread(int op) {
    pthread_t t;
    void *rc;
    pthread_create(&t, NULL, run_op, (void *)(long)op);
    pthread_join(t, &rc);
    return (int)(long)rc;
}

static void check(int ok, const char *what) {
    printf("%s: %s (limit=%#lx small=%d)\n", ok ? "ok" : "FAIL", what, limit, small);
    if (!ok) failures++;
}

/* A worker started before the library is loaded: runs one request when told to. */
static volatile int go[2];
static volatile long result[2];

static void *old_worker(void *arg) {
    long i = (long)arg;
    while (!go[i]) {
    }
    result[i] = request(i == 0 ? 8 : 9);
    return NULL;
}

static void *nothing(void *arg) { return arg; }

static int dlopen_case(const char *lib) {
    pthread_t w[2], t;
    for (long i = 0; i < 2; i++) pthread_create(&w[i], NULL, old_worker, (void *)i);
    void *h = dlopen(lib, RTLD_NOW);
    if (h == NULL) {
        printf("FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    lib_global = dlsym(h, "lib_limit");
    /* Creating a thread arms the ranges of the libraries loaded since. */
    pthread_create(&t, NULL, nothing, NULL);
    pthread_join(t, NULL);
    go[0] = 1;
    pthread_join(w[0], NULL);
    go[1] = 1;
    pthread_join(w[1], NULL);
    int ok = result[0] == 0 && result[1] == -1 && *lib_global == 100;
    printf("%s: a library's global, watched by threads older than its arming (lib_limit=%ld)\n",
           ok ? "ok" : "FAIL", *lib_global);
    printf("watch_hw: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}

static void *atomic_adds(void *arg) {
    (void)arg;
    for (int i = 0; i < 10000; i++) __atomic_fetch_add(&limit, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int atomic_case(void) {
    pthread_t t[4];
    long start = limit;
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, atomic_adds, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    int ok = limit - start == 40000;
    printf("%s: 4 x 10000 atomic increments, none lost (limit=%ld)\n", ok ? "ok" : "FAIL", limit - start);
    printf("watch_hw: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}

static void *masked_worker(void *arg) {
    (void)arg;
    sigset_t segv;
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    pthread_sigmask(SIG_UNBLOCK, &segv, NULL); /* crashes are wanted, the rest stays blocked */
    while (!go[0]) {
    }
    result[0] = request(8);
    result[1] = request(9);
    return NULL;
}

static int masked_case(const char *lib) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_t w, t;
    pthread_create(&w, NULL, masked_worker, NULL);
    void *h = dlopen(lib, RTLD_NOW);
    if (h == NULL) {
        printf("FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    lib_global = dlsym(h, "lib_limit");
    pthread_create(&t, NULL, nothing, NULL); /* arms */
    pthread_join(t, NULL);
    go[0] = 1;
    pthread_join(w, NULL);
    int ok = result[0] == 0 && result[1] == -1 && *lib_global == 100;
    printf("%s: a worker with SIGTRAP blocked since before arming (lib_limit=%ld)\n", ok ? "ok" : "FAIL", *lib_global);
    printf("watch_hw: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}

static int cycles_case(const char *lib) {
    int fails = 0;
    for (int c = 0; c < 6; c++) {
        void *h = dlopen(lib, RTLD_NOW);
        if (h == NULL) {
            printf("FAIL: dlopen: %s\n", dlerror());
            return 1;
        }
        lib_global = dlsym(h, "lib_limit");
        pthread_t t;
        pthread_create(&t, NULL, nothing, NULL); /* arms */
        pthread_join(t, NULL);
        int r1 = in_thread(8), r2 = in_thread(9);
        int ok = r1 == 0 && r2 == -1 && *lib_global == 100;
        printf("%s: load %d: lib_limit=%ld\n", ok ? "ok" : "FAIL", c, *lib_global);
        fails += !ok;
        dlclose(h);
    }
    printf("watch_hw: %s\n", fails ? "FAIL" : "OK");
    return fails != 0;
}

/* A SIGTRAP as the kernel sends it for a debug exception with no cause in DR6. */
static void queue_trap_brkpt(void) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGTRAP;
    si.si_code = 1; /* TRAP_BRKPT */
    si.si_addr = (void *)queue_trap_brkpt;
    syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGTRAP, &si);
}

static int lostdr6_case(void) {
    queue_trap_brkpt();
    int r1 = in_thread(1);
    queue_trap_brkpt();
    int r2 = in_thread(2);
    int ok = r1 == 0 && r2 == -1 && limit == 100;
    printf("%s: after TRAP_BRKPT SIGTRAPs, a normal and a faulting request (limit=%ld)\n",
           ok ? "ok" : "FAIL", limit);
    printf("watch_hw: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}

static volatile int own_traps[2];

static void own_trap(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    own_traps[si->si_code == 1 ? 0 : 1]++;
}

static int icebp_case(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_trap;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &sa, NULL);
    __asm__ volatile(".byte 0xf1"); /* int1 */
    /* An int1 whose preceding bytes end in one that decodes with it as a store (`80 00 f1`,
     * add byte [rax], 0xF1): it is still the program's (it once was taken for a watchpoint's). */
    __asm__ volatile("movl $0x800000, %%eax\n\t.byte 0xf1" ::: "eax", "memory");
    __asm__ volatile("int3");
    int r1 = in_thread(1), r2 = in_thread(2);
    int ok = own_traps[0] == 2 && own_traps[1] == 1 && r1 == 0 && r2 == -1 && limit == 100;
    printf("%s: the program's handler got its int1 (%d) and int3 (%d); then limit=%ld\n",
           ok ? "ok" : "FAIL", own_traps[0], own_traps[1], limit);
    printf("watch_hw: %s\n", ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}

static int int3_case(void) {
    __asm__ volatile("int3");
    printf("FAIL: the program went on after its own int3 with SIGTRAP at SIG_DFL\n");
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "atomic") == 0) return atomic_case();
    if (argc == 2 && strcmp(argv[1], "lostdr6") == 0) return lostdr6_case();
    if (argc == 2 && strcmp(argv[1], "icebp") == 0) return icebp_case();
    if (argc == 2 && strcmp(argv[1], "int3") == 0) return int3_case();
    if (argc == 3 && strcmp(argv[1], "masked") == 0) return masked_case(argv[2]);
    if (argc == 3 && strcmp(argv[1], "cycles") == 0) return cycles_case(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dlopen") == 0) return dlopen_case(argv[2]);
    int rc = in_thread(1);
    check(rc == 0 && limit == 100, "1 a normal request's store stays");
    rc = in_thread(2);
    check(rc == -1 && limit == 100, "2 a faulting request's store is withdrawn");

    pthread_t a, b;
    void *ra, *rb;
    pthread_create(&a, NULL, run_op, (void *)3L);
    pthread_create(&b, NULL, run_op, (void *)4L);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    check((long)ra == -1 && (long)rb == 0 && limit == 0x0000222200000064L,
          "3 overlapping requests: the faulty low byte withdrawn, the normal high half kept");

    rc = in_thread(5);
    check(rc == -1 && small == 1, "4 a faulting locked add is withdrawn");
    rc = in_thread(6);
    check(rc == -1 && small == 1, "5 a store with every signal blocked is journaled and withdrawn");

    for (int i = 0; i < 20000; i++) *(volatile long *)&hot += 1;
    in_thread(10);
    for (int i = 0; i < 20000; i++) *(volatile long *)&hot += 1;
    check(hot == 40001, "the hot neighbour was written 2 x 20000 times, a request in between");
    long kept = limit;
    rc = in_thread(2);
    check(rc == -1 && limit == kept, "7 after the hot neighbour, a faulting request's store is still withdrawn");

    long before = limit;
    pid_t child = fork();
    if (child == 0) {
        int r2 = in_thread(2);
        int ok = r2 == -1 && limit == before;
        int r7 = in_thread(7);
        ok = ok && r7 == 0 && limit == 55;
        printf("%s: 6 child: faulting request withdrawn, normal store kept (limit=%ld)\n", ok ? "ok" : "FAIL",
               limit);
        fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0 && limit == before,
          "6 the child's stores never reach the parent");

    printf("watch_hw: %s\n", failures ? "FAIL" : "OK");
    return failures ? 1 : 0;
}
