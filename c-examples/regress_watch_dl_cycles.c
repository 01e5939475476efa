/*
 * regress_watch_dl_cycles: a library with a watched global (VMSRS_RANGE_N=symbol:lib_limit,
 * c-examples/watch_hw_lib.c) is loaded and unloaded again and again. Each time, a normal
 * request stores 100 and then a faulting request stores 9 and dereferences a wild pointer
 * (VMSRS_USER_CALL=request:-1, VMSRS_POLICY=unwind): the global must read 100 (G1, G3).
 *
 * A watched run that went with its library kept its slot in the region table (64 of them),
 * so from the 64th load on the global was no longer watched and the faulty 9 stayed.
 *
 * Usage: regress_watch_dl_cycles LIBRARY [LOADS]   (prints "dl_cycles: OK" and exits 0)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long *volatile limit;
static int *volatile wild;

__attribute__((noinline)) int request(int faulty)
{
    if (!faulty) {
        *limit = 100;
        return 0;
    }
    *limit = 9;
    wild = (int *)16;
    *wild = 1;
    return 0;
}

static void *run_request(void *arg)
{
    return (void *)(long)request((int)(long)arg);
}

/* A request in its own thread, as a server runs it; its return value. */
static int in_thread(int faulty)
{
    pthread_t t;
    void *rc;
    if (pthread_create(&t, NULL, run_request, (void *)(long)faulty) != 0 || pthread_join(t, &rc) != 0) {
        perror("pthread");
        exit(2);
    }
    return (int)(long)rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBRARY [LOADS]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int loads = argc > 2 ? atoi(argv[2]) : 100, failed = 0;
    for (int i = 0; i < loads; i++) {
        void *h = dlopen(argv[1], RTLD_NOW);
        if (!h) {
            printf("dlopen: %s\n", dlerror());
            return 2;
        }
        limit = dlsym(h, "lib_limit");
        /* The range is armed at the next interposed call that sees the library (a thread). */
        int normal = in_thread(0), faulty = in_thread(1);
        long v = *limit;
        if (normal != 0 || faulty != -1 || v != 100) {
            if (failed++ < 3)
                printf("FAIL: load %d: normal request %d, faulty request %d, lib_limit %ld (want 0, -1, 100)\n",
                       i, normal, faulty, v);
        }
        dlclose(h);
    }
    if (failed) {
        printf("dl_cycles: %d of %d loads failed\n", failed, loads);
        return 1;
    }
    printf("dl_cycles: OK (%d loads)\n", loads);
    return 0;
}
