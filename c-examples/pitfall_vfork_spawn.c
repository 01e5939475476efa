/*
 * ECOSYSTEM pitfall 8: vfork and posix_spawn children share the parent's memory: they must
 * not allocate or touch libvmsrs's thread state. While other threads allocate, the program
 * runs ROUNDS children of each kind (argv[1], e.g. /bin/true). Prints "vfork ok N" and
 * "posix_spawn ok N". An unmodified program.
 */
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 50

extern char **environ;
static volatile int stop;

static void *busy(void *arg) {
    (void)arg;
    while (!stop) {
        char *p = malloc(1 + rand() % 4096);
        memset(p, 1, 1);
        free(p);
    }
    return NULL;
}

static int waited_ok(pid_t pid) {
    int st = 0;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, busy, NULL);
    char *args[] = {argv[1], NULL};
    int vok = 0, sok = 0;
    for (int i = 0; i < ROUNDS; i++) {
        pid_t pid = vfork();
        if (pid == 0) {
            execve(argv[1], args, environ);
            _exit(127);
        }
        vok += waited_ok(pid);
        pid_t sp = -1;
        if (posix_spawn(&sp, argv[1], NULL, NULL, args, environ) == 0) sok += waited_ok(sp);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf("vfork ok %d\nposix_spawn ok %d\n", vok, sok);
    return !(vok == ROUNDS && sok == ROUNDS);
}
