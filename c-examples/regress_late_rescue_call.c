/* Regression from a hostile review (tests/regressions.rs): an unmodified program whose pthread
 * key destructor calls a rescue point (VMSRS_USER_CALL=work:-1) in glibc's destructor round
 * ROUND (1..4), after libvmsrs's thread-exit hook released the thread's alternate stack. The
 * call's user mapped a new one, which nothing freed in round 4 (2 mappings per thread, without
 * bound). Prints the mappings added; exit 0 when they did not grow with the threads.
 *
 * Usage: regress_late_rescue_call [THREADS] [ROUND] (default 300 4) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_key_t key;
static int touch_round;
static volatile int sink;

__attribute__((noinline)) int work(int x) {
    __asm__ volatile("nop; nop; nop; nop; nop");
    sink += x;
    return x * 3 + 1;
}

/* Keeps its key set through every round; calls the rescue point in round `touch_round`. */
static void late(void *v) {
    long round = (long)v;
    if (round == touch_round) work((int)round);
    if (round < 6) pthread_setspecific(key, (void *)(round + 1));
}

static void *th(void *x) {
    pthread_setspecific(key, x);
    return NULL;
}

static int mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300;
    touch_round = argc > 2 ? atoi(argv[2]) : 4;
    pthread_key_create(&key, late);
    pthread_t t0;
    pthread_create(&t0, NULL, th, (void *)9L);
    pthread_join(t0, NULL);
    int m0 = mappings();
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, th, (void *)1L);
        pthread_join(t, NULL);
    }
    int added = mappings() - m0;
    printf("rescue call in destructor round %d: %d threads, %d mappings added\n", touch_round, n, added);
    return added < 16 ? 0 : 1;
}
