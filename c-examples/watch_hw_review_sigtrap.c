/* Regression test from the third hostile review of watch=hw (tests/watch_hw.rs). Unmodified
 * program: no vmsrs.h. `limit` is watched by a hardware watchpoint (VMSRS_WATCH=hw).
 *
 *   ign-perf    SIGTRAP at SIG_IGN, and the program's own perf write breakpoint (sigtrap) fires:
 *               the kernel drops an ignored TRAP_PERF; libvmsrs re-raised it at SIG_DFL (death);
 *   ign-queue   SIGTRAP at SIG_IGN, and a TRAP_TRACE SIGTRAP the program queues to itself:
 *               dropped by the kernel; libvmsrs re-raised it (death);
 *   supp-stray  (VMSRS_POLICY=oblivious) a suppressed user's store whose watchpoint hit comes as a
 *               plain TRAP_BRKPT SIGTRAP, as a hit with lost DR6 bits does (queued while SIGTRAP
 *               is blocked; the store's own TRAP_PERF merges into it): the store stayed in memory
 *               (G4: it must go to the user's shadow only).
 * Each prints one line ending in "ok" or "FAIL" and exits 0 only if it holds. */
#define _GNU_SOURCE
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

long limit __attribute__((aligned(64))) = 100;
long mine __attribute__((aligned(64))) = 0;
volatile int *volatile nullp;

/* Raw system calls: glibc's (and libvmsrs's interposed) sigprocmask never blocks SIGTRAP. */
static long raw(long n, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
static void trap_mask(int how) {
    unsigned long set = 1UL << (SIGTRAP - 1);
    raw(SYS_rt_sigprocmask, how, (long)&set, 0, 8);
}
static void queue_trap(int code) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGTRAP;
    si.si_code = code;
    raw(SYS_rt_tgsigqueueinfo, getpid(), raw(SYS_gettid, 0, 0, 0, 0), SIGTRAP, (long)&si);
}

/* One user per call. op 1: a normal store; op 2: fault, then (suppressed) store through the
 * stray path. */
__attribute__((noinline)) int request(long op) {
    char b[32];
    snprintf(b, sizeof b, "%ld", op);
    if (op == 2) {
        *nullp = 1; /* the user is suppressed from here on (oblivious) */
        trap_mask(SIG_BLOCK);
        queue_trap(1 /* TRAP_BRKPT */);
        *(volatile long *)&limit = 666;
        trap_mask(SIG_UNBLOCK);
        return 0;
    }
    *(volatile long *)&limit = op == 1 ? 8 : op;
    return b[0] == 'x';
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (strcmp(m, "supp-stray") == 0) {
        request(2);
        int ok = limit == 100;
        printf("%s: a suppressed user's store through a stray trap (limit=%ld)\n", m, limit);
        printf("%s\n", ok ? "ok" : "FAIL");
        return !ok;
    }
    request(7);
    signal(SIGTRAP, SIG_IGN);
    if (strcmp(m, "ign-perf") == 0) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.type = PERF_TYPE_BREAKPOINT;
        a.size = sizeof a;
        a.bp_type = HW_BREAKPOINT_W;
        a.bp_addr = (unsigned long)&mine;
        a.bp_len = 8;
        a.sample_period = 1;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        a.sigtrap = 1;
        a.remove_on_exec = 1;
        a.sig_data = 0x1234;
        if (syscall(SYS_perf_event_open, &a, 0, -1, -1, 0) < 0) {
            perror("perf_event_open");
            return 2;
        }
        *(volatile long *)&mine = 1;
    } else if (strcmp(m, "ign-queue") == 0) {
        queue_trap(2 /* TRAP_TRACE */);
    } else {
        fprintf(stderr, "usage: watch_hw_review_sigtrap ign-perf|ign-queue|supp-stray\n");
        return 2;
    }
    request(1);
    int ok = limit == 8;
    printf("%s: went on after an ignored SIGTRAP (limit=%ld)\n", m, limit);
    printf("%s\n", ok ? "ok" : "FAIL");
    return !ok;
}
