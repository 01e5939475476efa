/*
 * repro_torn_store.c -- minimal reproducer for a libvmsrs bug (found by `consistency
 * scenario3`; not one of the paper's experiments).
 *
 * Symptom: a monitored 4-byte store (VMSRS_SET / vmsrs_store32 / vmsrs_store of 4 bytes) to
 * an aligned int32 that shares its 8-byte granule with another field is not atomic: a
 * concurrent monitored load (VMSRS_GET) by another user can return a value that was never
 * stored, mixing bytes of the old and the new value (255 -> 256 read as 511 = 0x1FF).
 * No user faults at all here. On x86-64 the plain aligned 4-byte store is atomic, so the
 * library makes a correct program incorrect; with a faulted user it breaks G5 (Fig. 13).
 *
 * Likely cause: hv/src/store.rs write_raw() writes a partial granule (mask != 0xFF) one byte
 * at a time with write_volatile(u8), while readers on the lock-free paths (quiescent fast
 * path, or POLLUTED clear -> read_raw) read the granule without the stripe lock. A fix: write
 * the masked bytes with one atomic read-modify-write of the whole granule (e.g. a CAS loop
 * on the u64, or a 1/2/4-byte write_volatile of the naturally aligned sub-word when the mask
 * is one contiguous aligned run).
 *
 * Build: gcc -O2 -g -Wall -Wextra -Werror -pthread -I../include repro_torn_store.c \
 *            -L../target/release -lvmsrs -Wl,-rpath,$PWD/../target/release -o /tmp/repro3
 * Expected: "PASS", exit 0.  Observed (tree of this report): "FAIL: torn read ...", exit 1
 * (within a second on a 2-vCPU machine).
 */
#define _GNU_SOURCE
#include "vmsrs.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>

struct row {
    int32_t a; /* the field both threads use */
    int32_t b; /* shares a's granule, so a's store is a partial-granule store */
};

static struct row *row;
static atomic_int stop;

/* Reader and writer on different CPUs, so they really overlap (best effort). */
static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *writer(void *arg) {
    (void)arg;
    pin(1);
    vmsrs_user_begin();
    for (long i = 0; !atomic_load(&stop); i++) VMSRS_SET(row->a, (i & 1) ? 256 : 255);
    vmsrs_user_end();
    return NULL;
}

int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    row = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (row == MAP_FAILED) return 2;
    row->a = 255;
    if (vmsrs_profile(row, sizeof *row, "row") != 0) return 2;

    pthread_t t;
    pin(0);
    pthread_create(&t, NULL, writer, NULL);
    vmsrs_user_begin();
    int fail = 0;
    time_t deadline = time(NULL) + 5; /* read for up to 5 s */
    for (long i = 0; !fail && ((i & 0xFFFFF) != 0 || time(NULL) < deadline); i++) {
        int32_t v = VMSRS_GET(row->a);
        if (v != 255 && v != 256) {
            printf("FAIL: torn read %d (0x%x) after %ld reads; only 255 and 256 were stored\n", v, v, i);
            fail = 1;
        }
    }
    vmsrs_user_end();
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    puts(fail ? "FAIL" : "PASS");
    return fail;
}
