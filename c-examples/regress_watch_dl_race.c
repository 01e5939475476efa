/*
 * regress_watch_dl_race: a library with a watched global (VMSRS_RANGE_0=symbol:race_var,
 * c-examples/regress_watch_dl_race_lib.c) loaded and unloaded by one thread while others
 * create threads (libvmsrs arms a pending range then) or map and unmap memory.
 *
 * Modes (argv[2]; argv[1] is the library, argv[3] the number of loads):
 *   arm    one thread loads and unloads the library, another creates threads: before the
 *          first range was armed, dlclose did not exclude arming, which copied pages the
 *          loader had just unmapped (faults inside libvmsrs contained as the program's, then a
 *          hang: 3 of 20 runs);
 *   stale  one thread loads the library, creates a thread (its range is armed), unloads it;
 *          another maps three pages (often where the library's data was), fills them, forks
 *          a child that checks them (with argv[4] "fork"), and unmaps them. Each load is
 *          watched (a run whose library was unloaded by another thread, not yet noticed, was
 *          given back with that thread's pages at its munmap and never watched again: 10 to
 *          17 of 300 loads were), and the child reads what the parent stored.
 *
 * Prints "dl_race: OK" and exits 0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *library;
static int loads, forking;
static atomic_int done;
static atomic_int bad;

static void *nothing(void *arg)
{
    return arg;
}

static void *loader(void *arg)
{
    int with_thread = arg != NULL;
    for (int i = 0; i < loads; i++) {
        void *h = dlopen(library, RTLD_NOW);
        if (!h) {
            printf("FAIL: dlopen: %s\n", dlerror());
            atomic_store(&bad, 1);
            break;
        }
        if (with_thread) {
            pthread_t t;
            pthread_create(&t, NULL, nothing, NULL);
            pthread_join(t, NULL);
            long (*bump)(int) = (long (*)(int))dlsym(h, "race_bump");
            if (bump(3) != 3) {
                printf("FAIL: load %d: the library's global reads wrong\n", i);
                atomic_store(&bad, 1);
            }
        }
        dlclose(h);
    }
    atomic_store(&done, 1);
    return NULL;
}

static void *creator(void *arg)
{
    while (!atomic_load(&done)) {
        pthread_t t;
        pthread_create(&t, NULL, nothing, NULL);
        pthread_join(t, NULL);
    }
    return arg;
}

static void *mapper(void *arg)
{
    while (!atomic_load(&done)) {
        long *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            continue;
        for (int i = 0; i < 3 * 512; i++)
            p[i] = 0x5a5a;
        if (forking) {
            pid_t c = fork();
            if (c == 0) {
                for (int i = 0; i < 3 * 512; i++)
                    if (p[i] != 0x5a5a)
                        _exit(1);
                _exit(0);
            }
            int st;
            waitpid(c, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                printf("FAIL: a forked child read other bytes in its parent's mapping (status %#x)\n", st);
                atomic_store(&bad, 1);
            }
        }
        munmap(p, 3 * 4096);
    }
    return arg;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4 || (strcmp(argv[2], "arm") != 0 && strcmp(argv[2], "stale") != 0)) {
        fprintf(stderr, "usage: regress_watch_dl_race LIBRARY arm|stale LOADS [fork]\n");
        return 2;
    }
    library = argv[1];
    loads = atoi(argv[3]);
    forking = argc > 4 && strcmp(argv[4], "fork") == 0;
    int stale = strcmp(argv[2], "stale") == 0;
    pthread_t a, b;
    pthread_create(&a, NULL, loader, stale ? (void *)1 : NULL);
    pthread_create(&b, NULL, stale ? mapper : creator, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    if (atomic_load(&bad))
        return 1;
    printf("dl_race: OK\n");
    return 0;
}
