/*
 * ECOSYSTEM pitfall 5: a program that brings its own allocator (malloc, free, calloc, realloc
 * defined in the executable, as a statically linked jemalloc or tcmalloc does). libvmsrs
 * must say so once and stand back; the program runs as without it. Prints "own allocator
 * ok" when every block came from its own arena. An unmodified program.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static _Alignas(16) char arena[8 << 20];
static size_t top;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long frees;

void *malloc(size_t n) {
    pthread_mutex_lock(&lock);
    n = (n + 31) & ~(size_t)15;
    void *p = NULL;
    if (top + n <= sizeof arena) {
        *(size_t *)(arena + top) = n - 16;
        p = arena + top + 16;
        top += n;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void free(void *p) {
    if (p == NULL) return;
    if ((char *)p < arena || (char *)p >= arena + sizeof arena) {
        fputs("own allocator: free() of a block that is not ours\n", stderr);
        __builtin_trap();
    }
    __atomic_add_fetch(&frees, 1, __ATOMIC_RELAXED);
}

void *calloc(size_t a, size_t b) {
    void *p = malloc(a * b);
    if (p) memset(p, 0, a * b);
    return p;
}

void *realloc(void *p, size_t n) {
    void *q = malloc(n);
    if (p && q) {
        size_t old = *(size_t *)((char *)p - 16);
        memcpy(q, p, old < n ? old : n);
        free(p);
    }
    return q;
}

static int ours(void *p) { return (char *)p >= arena && (char *)p < arena + sizeof arena; }

static void *worker(void *arg) {
    char *p = malloc(100);
    if (p == NULL) return NULL;
    snprintf(p, 100, "worker %d", (int)(size_t)arg);
    p = realloc(p, 200);
    int ok = ours(p);
    free(p);
    return (void *)(size_t)ok;
}

int main(void) {
    int ok = 1;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(size_t)i);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        ok &= r != NULL;
    }
    char *s = strdup("from libc's strdup"); /* libc's internal malloc call resolves to ours */
    ok &= ours(s);
    free(s);
    printf("own allocator %s (%lu frees)\n", ok ? "ok" : "BYPASSED", frees);
    return !ok;
}
