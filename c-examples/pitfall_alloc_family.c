/*
 * ECOSYSTEM pitfall 4: the whole allocator family round-trips. Prints one line per check of
 * results that do not depend on addresses (alignment, errno, sizes, contents), so the output
 * is the same with and without libvmsrs preloaded; "ALL OK" at the end when every check
 * passed. An unmodified program.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(what, cond)                                          \
    do {                                                           \
        int ok_ = (cond);                                          \
        printf("%-40s %s\n", what, ok_ ? "ok" : "FAILED");         \
        if (!ok_) failures++;                                      \
    } while (0)

static int aligned(void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

int main(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    volatile size_t big = SIZE_MAX / 2 + 1;

    char *m = malloc(100);
    CHECK("malloc usable >= 100", m && malloc_usable_size(m) >= 100);
    memset(m, 'a', 100);
    m = realloc(m, 5000);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= m[i] == 'a';
    CHECK("realloc keeps contents", m && same);
    CHECK("realloc usable >= 5000", malloc_usable_size(m) >= 5000);
    free(m);

    int *z = calloc(1000, sizeof(int));
    int zero = 1;
    for (int i = 0; i < 1000; i++) zero &= z[i] == 0;
    CHECK("calloc zeroed", z && zero);
    free(z);
    errno = 0;
    CHECK("calloc overflow -> NULL ENOMEM", calloc(big, 4) == NULL && errno == ENOMEM);

    for (size_t a = 8; a <= 4096; a *= 2) {
        void *p = NULL;
        char what[64];
        int rc = posix_memalign(&p, a, 123);
        snprintf(what, sizeof what, "posix_memalign %zu", a);
        CHECK(what, rc == 0 && p && aligned(p, a) && malloc_usable_size(p) >= 123);
        free(p);
        p = memalign(a, 77);
        snprintf(what, sizeof what, "memalign %zu", a);
        CHECK(what, p && aligned(p, a));
        free(p);
        p = aligned_alloc(a, a * 3);
        snprintf(what, sizeof what, "aligned_alloc %zu", a);
        CHECK(what, p && aligned(p, a));
        free(p);
    }
    void *keep = (void *)1;
    CHECK("posix_memalign 12 -> EINVAL", posix_memalign(&keep, 12, 10) == EINVAL && keep == (void *)1);
    CHECK("posix_memalign 4 -> EINVAL", posix_memalign(&keep, 4, 10) == EINVAL && keep == (void *)1);
    CHECK("posix_memalign huge -> ENOMEM", posix_memalign(&keep, 64, big) == ENOMEM && keep == (void *)1);

    void *v = valloc(10);
    CHECK("valloc page aligned", v && aligned(v, page));
    free(v);
    void *pv = pvalloc(10);
    CHECK("pvalloc page aligned, page usable", pv && aligned(pv, page) && malloc_usable_size(pv) >= page);
    free(pv);

    int *ra = reallocarray(NULL, 10, sizeof(int));
    for (int i = 0; i < 10; i++) ra[i] = i;
    ra = reallocarray(ra, 1000, sizeof(int));
    int kept = 1;
    for (int i = 0; i < 10; i++) kept &= ra[i] == i;
    CHECK("reallocarray grows and keeps", ra && kept);
    errno = 0;
    int *ra2 = reallocarray(ra, big, 4);
    CHECK("reallocarray overflow -> NULL ENOMEM", ra2 == NULL && errno == ENOMEM);
    if (ra2 == NULL) {
        CHECK("reallocarray overflow keeps block", ra[9] == 9);
        free(ra);
    }

    CHECK("malloc_usable_size(NULL) == 0", malloc_usable_size(NULL) == 0);
    free(NULL);
    CHECK("realloc(NULL, n) allocates", (m = realloc(NULL, 10)) != NULL);
    free(m);
    errno = 0;
    CHECK("malloc huge -> NULL ENOMEM", malloc(big) == NULL && errno == ENOMEM);

    printf("%s\n", failures == 0 ? "ALL OK" : "SOME FAILED");
    return failures != 0;
}
