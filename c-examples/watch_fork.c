/*
 * watch_fork: an unmodified program whose monitored global must stay private to each process
 * across fork (httpd forks its children without exec). Under LD_PRELOAD=libvmsrs.so with
 * VMSRS_RANGE_0=symbol:shared_value the page of shared_value is a read-only mapping of a memfd
 * with a writable alias; a MAP_SHARED alias inherited as is would let parent and child see
 * each other's stores. Prints "fork ok" when every process saw only its own stores.
 *
 * Rounds: the parent stores, forks (while two threads of its own keep storing to a
 * neighbour of the global on the same page), the child checks it sees the parent's value,
 * stores its own and a grandchild does the same; each process then checks its value is its
 * own.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

long shared_value;
long neighbour; /* same page: stored by the threads below while the process forks */

static volatile int stop;

static void *storer(void *arg) {
    (void)arg;
    while (!stop) __atomic_add_fetch(&neighbour, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int check(const char *who, long want) {
    long got = *(volatile long *)&shared_value;
    if (got != want) {
        printf("%s: shared_value is %ld, want %ld\n", who, got, want);
        return 1;
    }
    return 0;
}

static int child_round(int depth) {
    long mine = 1000 + depth;
    if (check("child before its store", 100 + depth - 1)) return 1;
    *(volatile long *)&shared_value = mine;
    if (depth < 3) {
        *(volatile long *)&shared_value = 100 + depth;
        pid_t p = fork();
        if (p == 0) _exit(child_round(depth + 1));
        int st = 0;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;
        if (check("after its child", 100 + depth)) return 1;
        *(volatile long *)&shared_value = mine;
    }
    usleep(20000);
    return check("child at its end", mine);
}

int main(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, storer, NULL);
    int bad = 0;
    for (int round = 0; round < 10 && !bad; round++) {
        *(volatile long *)&shared_value = 100;
        pid_t p = fork();
        if (p == 0) _exit(child_round(1));
        usleep(5000);
        bad |= check("parent while its child runs", 100);
        int st = 0;
        waitpid(p, &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        bad |= check("parent after its child", 100);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf(bad ? "fork FAILED\n" : "fork ok\n");
    return bad;
}
