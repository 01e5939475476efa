/*
 * ECOSYSTEM pitfalls 2 and 3: allocation never recurses (libvmsrs's own Rust allocations and
 * thread-local state go to glibc directly, never through the interposed malloc).
 *
 * CHURN threads allocate, resize and free blocks of varied sizes and check their contents;
 * FAULTY threads, one after another, allocate heavily, fault (a wild read, contained: the
 * thread's implicit user is suppressed), then go on allocating and freeing (their frees are
 * withheld) and print one line (marked). Prints "churn ok N" per churn thread and "faulty
 * done N" per faulty thread; exit status 0 when every check passed. An unmodified program.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHURN 4
#define FAULTY 8
#define ROUNDS 20000

static int *volatile wild = (int *)16;
static __thread unsigned long tls_count;

static unsigned long next_rand(unsigned long *s) {
    *s = *s * 6364136223846793005UL + 1442695040888963407UL;
    return *s >> 33;
}

static void *churn(void *arg) {
    unsigned long seed = (unsigned long)(uintptr_t)arg + 1;
    char *slots[64] = {0};
    size_t sizes[64] = {0};
    int bad = 0;
    for (int i = 0; i < ROUNDS; i++) {
        unsigned k = next_rand(&seed) % 64;
        if (slots[k]) {
            for (size_t j = 0; j < sizes[k]; j++)
                if (slots[k][j] != (char)(k + j)) bad++;
            if (next_rand(&seed) % 2) {
                size_t n = 1 + next_rand(&seed) % 4000;
                char *q = realloc(slots[k], n);
                size_t keep = n < sizes[k] ? n : sizes[k];
                for (size_t j = keep; j < n; j++) q[j] = (char)(k + j);
                slots[k] = q;
                sizes[k] = n;
                continue;
            }
            free(slots[k]);
            slots[k] = NULL;
        } else {
            size_t n = 1 + next_rand(&seed) % 4000;
            slots[k] = (next_rand(&seed) % 3) ? malloc(n) : calloc(1, n);
            sizes[k] = n;
            for (size_t j = 0; j < n; j++) slots[k][j] = (char)(k + j);
        }
        tls_count++;
    }
    for (int k = 0; k < 64; k++) free(slots[k]);
    printf("churn %s %d\n", bad == 0 && tls_count > 0 ? "ok" : "CORRUPT", (int)(uintptr_t)arg);
    return NULL;
}

static void *faulty(void *arg) {
    char *keep[256];
    int sum = 0;
    for (int i = 0; i < 256; i++) {
        keep[i] = malloc(32 + i);
        memset(keep[i], i, 32 + i);
        if (i == 128) sum += *wild; /* contained: this thread's user is now suppressed */
    }
    for (int i = 0; i < 256; i++) {
        keep[i] = realloc(keep[i], 64 + i);
        free(keep[i]); /* withheld */
    }
    printf("faulty done %d %d\n", (int)(uintptr_t)arg, sum);
    return NULL;
}

int main(void) {
    pthread_t c[CHURN];
    for (int i = 0; i < CHURN; i++) pthread_create(&c[i], NULL, churn, (void *)(uintptr_t)i);
    for (int i = 0; i < FAULTY; i++) {
        pthread_t f;
        pthread_create(&f, NULL, faulty, (void *)(uintptr_t)i);
        pthread_join(f, NULL);
    }
    for (int i = 0; i < CHURN; i++) pthread_join(c[i], NULL);
    return 0;
}
