/* A hammer thread sends SIGUSR1 (pthread_kill) to two workers as fast as it can; the handler
 * performs the operation named by argv[1], and the interrupted workers loop on the same one.
 * README: every function may be called from a signal handler, even one that interrupted
 * another libvmsrs call on the same thread. Expected: "done" within the time limit.
 * ops: store load memcpy user printf profile mix */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
static const char *op;
static uint64_t table[512];
static char ranges[16][4096] __attribute__((aligned(4096)));
static FILE *devnull;
static atomic_int stop;
static atomic_ulong handler_calls;

static void do_op(int in_handler, unsigned long i) {
    uint64_t *g = &table[(i * 7 + in_handler) % 512];
    if (!strcmp(op, "store") || !strcmp(op, "mix")) { vmsrs_store64(g, i); vmsrs_store32((uint32_t *)g + 1, (uint32_t)i); }
    if (!strcmp(op, "load") || !strcmp(op, "mix")) (void)vmsrs_load64(g);
    if (!strcmp(op, "memcpy") || !strcmp(op, "mix")) { char b[64]; memset(b, (int)i, 64); vmsrs_memcpy(&table[(i % 8) * 8], b, 64); vmsrs_assign(b, &table[8], 64); }
    if (!strcmp(op, "user") || !strcmp(op, "mix")) { if (vmsrs_user_begin() == 0) { vmsrs_store64(g, i); vmsrs_user_end(); } }
    if (!strcmp(op, "printf") || !strcmp(op, "mix")) vmsrs_fprintf(devnull, "%lu %s %d\n", i, "str", in_handler);
    if (!strcmp(op, "profile") || !strcmp(op, "mix")) {
        int k = (int)((i + in_handler * 8) % 16);
        if (vmsrs_profile(ranges[k], sizeof ranges[k], "r") == 0) { vmsrs_store64((uint64_t *)ranges[k], i); vmsrs_unprofile(ranges[k]); }
    }
}
static void on_usr1(int sig) { (void)sig; do_op(1, atomic_fetch_add(&handler_calls, 1)); }
static void *worker(void *a) {
    (void)a;
    for (unsigned long i = 0; !atomic_load(&stop); i++) do_op(0, i);
    return NULL;
}
int main(int argc, char **argv) {
    op = argc > 1 ? argv[1] : "mix";
    int secs = argc > 2 ? atoi(argv[2]) : 3;
    devnull = fopen("/dev/null", "w");
    if (vmsrs_init_profile(NULL) != 0) return 2;
    if (vmsrs_profile(table, sizeof table, "table") != 0) return 2;
    signal(SIGUSR1, on_usr1);
    pthread_t w[2];
    for (int i = 0; i < 2; i++) pthread_create(&w[i], NULL, worker, NULL);
    time_t t0 = time(NULL);
    unsigned long sent = 0;
    while (time(NULL) - t0 < secs) { pthread_kill(w[sent & 1], SIGUSR1); sent++; if ((sent & 63) == 0) usleep(10); }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    fprintf(stderr, "done %s: sent %lu, handler calls %lu\n", op, sent, atomic_load(&handler_calls));
    return 0;
}
