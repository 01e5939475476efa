/*
 * ECOSYSTEM pitfall 6: dlopen a library with RTLD_DEEPBIND (argv[1]) and pass blocks both
 * ways: allocated there, resized and freed here; allocated here, resized and freed there.
 * Prints "deepbind ok" when the contents survived. An unmodified program.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    void *(*lib_alloc)(size_t) = (void *(*)(size_t))dlsym(h, "lib_alloc");
    void *(*lib_grow)(void *, size_t) = (void *(*)(void *, size_t))dlsym(h, "lib_grow");
    void (*lib_free)(void *) = (void (*)(void *))dlsym(h, "lib_free");
    int ok = 1;
    for (int i = 0; i < 1000; i++) {
        char *a = lib_alloc(64 + i);
        a = realloc(a, 128 + i);
        ok &= a[0] == 'L' && a[63] == 'L';
        free(a);
        char *b = malloc(64 + i);
        memset(b, 'M', 64 + i);
        b = lib_grow(b, 256 + i);
        ok &= b[0] == 'M' && b[63 + i] == 'M';
        lib_free(b);
    }
    printf("deepbind %s\n", ok ? "ok" : "CORRUPT");
    dlclose(h);
    return !ok;
}
