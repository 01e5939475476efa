/*
 * ECOSYSTEM pitfall 14: symbol versions. The program's threads start (libvmsrs reaches
 * glibc's pthread_create through dlvsym), and a program that itself looks functions up with
 * dlsym(RTLD_NEXT)/dlvsym (as wrappers and profilers do) still gets working ones: the next
 * malloc/free/memcpy/printf after the executable are libvmsrs's, which forward to glibc's.
 * Prints "threads 4", "next malloc ok", "next printf 7", "dlvsym memcpy ok". Unmodified.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int started;

static void *run(void *arg) {
    (void)arg;
    __atomic_add_fetch(&started, 1, __ATOMIC_RELAXED);
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, run, NULL) != 0) return 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("threads %d\n", started);

    void *(*next_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    void (*next_free)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    int (*next_printf)(const char *, ...) = (int (*)(const char *, ...))dlsym(RTLD_NEXT, "printf");
    void *(*v_memcpy)(void *, const void *, size_t) =
        (void *(*)(void *, const void *, size_t))dlvsym(RTLD_NEXT, "memcpy", "GLIBC_2.14");
    if (!next_malloc || !next_free || !next_printf || !v_memcpy) {
        printf("lookup failed\n");
        return 1;
    }
    char *p = next_malloc(32);
    strcpy(p, "abc");
    printf("next malloc %s\n", strcmp(p, "abc") == 0 ? "ok" : "BAD");
    next_free(p);
    int n = next_printf("next printf %d\n", 7);
    fflush(stdout);
    char dst[16] = {0};
    volatile size_t len = 8;
    v_memcpy(dst, "12345678", len);
    printf("dlvsym memcpy %s %d\n", strcmp(dst, "12345678") == 0 ? "ok" : "BAD", n);
    return 0;
}
