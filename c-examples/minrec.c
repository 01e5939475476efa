/*
 * minrec.c -- the minimal recorder: the floor libvmsrs's store path is measured against
 * (scripts/bench.sh, c-examples/bench_floor.c). Not part of libvmsrs.
 *
 * It records what forward recovery needs at the least cost we know of, and nothing else: per
 * 8-byte granule an owner tag word, which is also the granule's lock (one xchg per store), and
 * per thread an undo log of (address, old value) appended at a user's first store to a granule.
 * Begin takes a fresh id from a thread-local counter (no shared line); commit is O(1) (the log
 * is dropped; tags keep the old id, which no user will have again). It has no restoration, no
 * integrity, no multi-version history and no loads: it is a floor, not a design.
 *
 * Built as a shared library and called through the PLT, like libvmsrs:
 *   gcc -O2 -shared -fPIC c-examples/minrec.c -o libminrec.so
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#define LOCKED UINT64_MAX
#define LOG_CAP (1u << 22) /* undo entries per thread; a benchmark user stays far below */

struct undo {
    uint64_t *addr;
    uint64_t old;
};

static uint64_t *base;
static _Atomic uint64_t *tags;
static size_t granules;
static atomic_uint_fast64_t threads;

static __thread struct undo *undo_log;
static __thread size_t undo_len;
static __thread uint64_t me, thread_ids;

/* Monitor [addr, addr + len): one tag word per 8 bytes. 0 on success, -1 on failure. */
int minrec_profile(void *addr, size_t len)
{
    void *t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return -1;
    base = addr;
    granules = len / 8;
    tags = t;
    return 0;
}

/* Begin a user on this thread. 0 on success, -1 when the undo log cannot be mapped. */
int minrec_begin(void)
{
    if (!undo_log) {
        void *l = mmap(NULL, LOG_CAP * sizeof(struct undo), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (l == MAP_FAILED)
            return -1;
        undo_log = l;
        thread_ids = (atomic_fetch_add(&threads, 1) + 1) << 40;
    }
    me = ++thread_ids;
    undo_len = 0;
    return 0;
}

/* The store of this thread's user: lock the granule (xchg), log its old value at the user's
 * first store to it, write, unlock with the user's id. */
void minrec_store64(uint64_t *p, uint64_t v)
{
    size_t g = (size_t)(p - base);
    if (g >= granules) {
        *p = v;
        return;
    }
    uint64_t owner;
    while ((owner = atomic_exchange_explicit(&tags[g], LOCKED, memory_order_acquire)) == LOCKED)
        __builtin_ia32_pause();
    if (owner != me && undo_len < LOG_CAP)
        undo_log[undo_len++] = (struct undo){p, *p};
    *p = v;
    atomic_store_explicit(&tags[g], me, memory_order_release);
}

/* End this thread's user normally: O(1). */
void minrec_commit(void)
{
    undo_len = 0;
}
