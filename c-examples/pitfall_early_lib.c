/*
 * ECOSYSTEM pitfalls 1 and 17: a library whose constructor runs BEFORE libvmsrs's (the test
 * lists it after libvmsrs.so in LD_PRELOAD: ld.so runs preloaded constructors in reverse
 * order) and that allocates, locks, prints, copies and calls dlsym/dlerror (which allocate)
 * there. Every call reaches libvmsrs's interposers before its own initialisation ran.
 * Built with -shared -fPIC; not an API user.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
volatile size_t early_n = 40; /* not a constant: memcpy/memset stay calls */

__attribute__((constructor)) static void early_ctor(void) {
    pthread_mutex_lock(&lock);
    char *a = malloc(early_n);
    char *b = calloc(4, early_n);
    memset(a, 'x', early_n);
    memcpy(b, a, early_n);
    memmove(b + 1, b, early_n - 1);
    b[early_n] = 0;
    void *al = NULL;
    int pm = posix_memalign(&al, 64, 100);
    char *r = realloc(a, 4 * early_n);
    void *sym = dlsym(RTLD_DEFAULT, "no_such_symbol_for_pitfall_1");
    const char *err = dlerror();
    printf("early ctor: len %zu posix_memalign %d aligned %d realloc %s dlsym %s dlerror %s\n", strlen(b), pm,
           ((unsigned long)al % 64) == 0, r != NULL ? "ok" : "failed", sym == NULL ? "null" : "found",
           err != NULL ? "set" : "unset");
    puts("early ctor: puts");
    fflush(stdout);
    free(r);
    free(b);
    free(al);
    pthread_mutex_unlock(&lock);
}
