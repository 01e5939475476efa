/*
 * ECOSYSTEM pitfall 7: fork while other threads allocate, print and copy (and one user is
 * suppressed, so libvmsrs holds fault state). FORKS children, each of which allocates,
 * copies, prints and exits; none may deadlock (the test's timeout) or crash. Prints
 * "forks ok N". An unmodified program.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 200
#define THREADS 3

static volatile int stop;
static int *volatile wild = (int *)24;
static FILE *devnull;

static void *busy(void *arg) {
    (void)arg;
    char src[4096];
    memset(src, 'b', sizeof src);
    while (!stop) {
        char *p = malloc(1 + rand() % 8192);
        memcpy(p, src, 100);
        fprintf(devnull, "busy %s\n", "thread");
        free(p);
    }
    return NULL;
}

static void *faulty(void *arg) {
    (void)arg;
    int v = *wild; /* contained: a suppressed user lives while the process forks */
    while (!stop) {
        free(malloc(64)); /* withheld */
        fprintf(devnull, "suppressed %d\n", v);
        usleep(1000);
    }
    return NULL;
}

int main(void) {
    devnull = fopen("/dev/null", "w");
    pthread_t t[THREADS + 1];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, busy, NULL);
    pthread_create(&t[THREADS], NULL, faulty, NULL);
    int ok = 0;
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            char *p = malloc(1000);
            memset(p, 'c', 1000);
            char *q = malloc(1000);
            memcpy(q, p, 1000);
            fprintf(devnull, "child %d %c\n", i, q[999]);
            int good = q[0] == 'c';
            free(p);
            free(q);
            _exit(good ? 0 : 3);
        }
        int st = 0;
        if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
        else printf("child %d: status %#x\n", i, st);
    }
    stop = 1;
    for (int i = 0; i <= THREADS; i++) pthread_join(t[i], NULL);
    printf("forks ok %d\n", ok);
    return ok != FORKS;
}
