/*
 * ECOSYSTEM pitfall 6: a library the program opens with RTLD_DEEPBIND. Its malloc/free/
 * memcpy bind to libc's directly (its own lookup scope comes first), so blocks cross the
 * boundary between glibc's functions and libvmsrs's interposers in both directions.
 */
#include <stdlib.h>
#include <string.h>

void *lib_alloc(size_t n) {
    char *p = malloc(n);
    if (p) memset(p, 'L', n);
    return p;
}

void *lib_grow(void *p, size_t n) { return realloc(p, n); }

void lib_free(void *p) { free(p); }
