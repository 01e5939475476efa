/*
 * ECOSYSTEM pitfall 12: threads made by pthread_create get an alternate signal stack (of at
 * least sysconf(_SC_SIGSTKSZ)), and a thread that overflows its stack is contained on it
 * (the process goes on). Prints "altstack ok SIZE-OK" from a fresh thread, then "overflow
 * thread joined" and "survived". An unmodified program.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static void *check_altstack(void *arg) {
    (void)arg;
    stack_t st;
    long min = sysconf(_SC_SIGSTKSZ);
    if (sigaltstack(NULL, &st) != 0) {
        puts("altstack query failed");
        return NULL;
    }
    int on = !(st.ss_flags & SS_DISABLE);
    printf("altstack %s %s\n", on ? "ok" : "MISSING", on && (long)st.ss_size >= min ? "SIZE-OK" : "SIZE-SMALL");
    return NULL;
}

static volatile int depth_limit = 1 << 30; /* never reached: the stack runs out first */

__attribute__((noinline)) static int recurse(int n) {
    volatile char frame[512];
    frame[0] = (char)n;
    if (n >= depth_limit) return frame[0];
    return recurse(n + 1) + frame[0];
}

static void *overflow(void *arg) {
    (void)arg;
    printf("overflow %d\n", recurse(0));
    return NULL;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, check_altstack, NULL);
    pthread_join(t, NULL);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    pthread_create(&t, &a, overflow, NULL);
    pthread_join(t, NULL);
    puts("overflow thread joined");
    pthread_create(&t, NULL, check_altstack, NULL);
    pthread_join(t, NULL);
    puts("survived");
    return 0;
}
