/*
 * containment.c -- fault containment policies of libvmsrs (DESIGN §5), one case per run:
 *
 *   same-pc       oblivious; a user faults again and again at ONE instruction: after
 *                 VMSRS_SAME_PC_LIMIT skips the fault escalates to unwind (VMSRS_USER_BEGIN()
 *                 returns VMSRS_FAULTED).
 *   budget        oblivious; faults at different instructions: after VMSRS_FAULT_BUDGET skips
 *                 the next one escalates to unwind.
 *   no-recovery   unwind; a user begun with vmsrs_user_begin() (no recovery point) faults:
 *                 its thread is ended, its writes withdrawn, and the process goes on.
 *   chain         VMSRS_CONTAIN_IMPLICIT=0; a thread that is no user faults: the program's
 *                 own SIGSEGV handler (installed before libvmsrs) runs.
 *   chain-default as chain, but the program has no handler: the default action kills it.
 *   implicit      default settings; a thread that never began a user faults: it is contained
 *                 as its own implicit user and goes on.
 *   sigfpe        oblivious; integer division by zero in a user: skipped, quotient 0.
 *   abort         VMSRS_SIGNALS includes ABRT; a user calls abort(): abort() cannot return,
 *                 so the user is unwound to its recovery point even under oblivious.
 *
 * Exit 0 when the case behaved as described, 1 with "FAIL: ..." otherwise.
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include "check.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t shared[4] = {11, 22, 33, 44};
static volatile int *volatile wild = (int *)16;

static struct vmsrs_stats stats(void) {
    struct vmsrs_stats s;
    CHECK(vmsrs_stats(&s) == 0, "vmsrs_stats");
    return s;
}

__attribute__((noinline)) static int bad_load(void) { return *wild; }
__attribute__((noinline)) static int bad_load_a(void) { return wild[1]; }
__attribute__((noinline)) static int bad_load_b(void) { return wild[2]; }
__attribute__((noinline)) static int bad_load_c(void) { return wild[3]; }
__attribute__((noinline)) static int bad_load_d(void) { return wild[4]; }
static int (*const bad_loads[])(void) = {bad_load_a, bad_load_b, bad_load_c, bad_load_d};

static void init(void) {
    CHECK(vmsrs_init_profile(NULL) == 0, "vmsrs_init_profile");
    CHECK(vmsrs_profile(shared, sizeof shared, "shared") == 0, "vmsrs_profile");
}

static volatile int iterations;

static void same_pc(void) {
    init();
    iterations = 0;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
        struct vmsrs_stats s = stats();
        printf("unwound after %d skipped faults at one pc (skipped=%llu unwinds=%llu)\n", iterations,
               (unsigned long long)s.instructions_skipped, (unsigned long long)s.unwinds);
        CHECK(iterations == 3, "expected 3 skips before escalation, got %d", iterations);
        CHECK(s.unwinds == 1 && s.instructions_skipped == 3, "counters");
        CHECK(vmsrs_load64(&shared[0]) == 11, "the faulty user's store must be withdrawn");
        return;
    }
    vmsrs_store64(&shared[0], 999);
    for (int i = 0; i < 100; i++) {
        (void)bad_load();
        iterations++;
    }
    CHECK(0, "a fault repeating at one pc never escalated");
}

static void budget(void) {
    init();
    iterations = 0;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
        struct vmsrs_stats s = stats();
        printf("unwound after %d skipped faults (budget 5)\n", iterations);
        CHECK(iterations == 5, "expected 5 skips before escalation, got %d", iterations);
        CHECK(s.unwinds == 1, "one unwind");
        return;
    }
    for (int i = 0; i < 100; i++) {
        (void)bad_loads[i % 4]();
        iterations++;
    }
    CHECK(0, "the fault budget never escalated");
}

static void *no_recovery_thread(void *arg) {
    (void)arg;
    CHECK(vmsrs_user_begin() == 0, "vmsrs_user_begin");
    vmsrs_store64(&shared[1], 777);
    (void)bad_load();
    CHECK(0, "the thread went on after an unwind fault without a recovery point");
    return NULL;
}

static void no_recovery(void) {
    init();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, no_recovery_thread, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    struct vmsrs_stats s = stats();
    printf("thread ended (threads_ended=%llu collected=%llu); process goes on; shared[1]=%llu\n",
           (unsigned long long)s.threads_ended, (unsigned long long)s.users_collected,
           (unsigned long long)vmsrs_load64(&shared[1]));
    CHECK(s.threads_ended == 1, "threads_ended");
    CHECK(s.users_collected == 1, "the ended thread's user must be collected");
    CHECK(shared[1] == 22, "raw memory must hold the original value after cleanup");
}

static sigjmp_buf program_jmp;
static volatile sig_atomic_t program_handler_ran;

static void program_handler(int sig) {
    (void)sig;
    program_handler_ran = 1;
    siglongjmp(program_jmp, 1);
}

static void chain(int with_handler) {
    if (with_handler) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = program_handler;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
    }
    init();
    if (sigsetjmp(program_jmp, 1) == 0) {
        (void)bad_load();
        CHECK(0, "a fault that libvmsrs does not own was skipped");
    }
    struct vmsrs_stats s = stats();
    printf("program handler ran=%d chained=%llu contained=%llu\n", (int)program_handler_ran,
           (unsigned long long)s.faults_chained, (unsigned long long)s.faults_contained);
    CHECK(program_handler_ran && s.faults_chained == 1 && s.faults_contained == 0, "chaining");
}

static void *implicit_thread(void *arg) {
    (void)arg;
    vmsrs_store64(&shared[2], 555); /* the thread's implicit user writes */
    int v = bad_load();             /* and faults: contained, the load yields 0 */
    CHECK(v == 0, "the skipped load must yield 0");
    CHECK(vmsrs_user_suppressed() == 1, "the implicit user must be suppressed");
    return NULL;
}

static void implicit(void) {
    init();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, implicit_thread, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    struct vmsrs_stats s = stats();
    printf("implicit user contained and collected at thread exit: shared[2]=%llu collected=%llu\n",
           (unsigned long long)vmsrs_load64(&shared[2]), (unsigned long long)s.users_collected);
    CHECK(vmsrs_load64(&shared[2]) == 33 && shared[2] == 33, "the implicit user's write must be withdrawn");
    CHECK(s.users_collected == 1, "collected at thread exit");
}

static volatile int zero;

static void sigfpe(void) {
    init();
    CHECK(VMSRS_USER_BEGIN() == 0, "begin");
    int q = 1000 / zero;
    printf("division by zero skipped, quotient %d, suppressed=%d\n", q, vmsrs_user_suppressed());
    CHECK(q == 0 && vmsrs_user_suppressed() == 1, "sigfpe containment");
    CHECK(vmsrs_user_end() == VMSRS_FAULTED, "end must report the fault");
}

static void abort_case(void) {
    init();
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) {
        struct vmsrs_stats s = stats();
        printf("abort() contained: unwound (unwinds=%llu), shared[3]=%llu\n", (unsigned long long)s.unwinds,
               (unsigned long long)vmsrs_load64(&shared[3]));
        CHECK(s.unwinds == 1, "one unwind");
        CHECK(vmsrs_load64(&shared[3]) == 44, "the aborting user's store must be withdrawn");
        return;
    }
    vmsrs_store64(&shared[3], 4444);
    abort();
}

int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "same-pc")) same_pc();
    else if (!strcmp(c, "budget")) budget();
    else if (!strcmp(c, "no-recovery")) no_recovery();
    else if (!strcmp(c, "chain")) chain(1);
    else if (!strcmp(c, "chain-default")) chain(0);
    else if (!strcmp(c, "implicit")) implicit();
    else if (!strcmp(c, "sigfpe")) sigfpe();
    else if (!strcmp(c, "abort")) abort_case();
    else {
        fprintf(stderr, "usage: %s same-pc|budget|no-recovery|chain|chain-default|implicit|sigfpe|abort\n", argv[0]);
        return 2;
    }
    printf("containment %s: PASS\n", c);
    return 0;
}
