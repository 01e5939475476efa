/*
 * ECOSYSTEM pitfall 15: printf that never reaches printf. Built with -O2
 * -D_FORTIFY_SOURCE=2, so the compiler emits puts, putchar, fputs, __printf_chk,
 * __fprintf_chk, __vfprintf_chk, __dprintf_chk and fwrite for these calls. A thread
 * faults (contained: its implicit user is suppressed) and then prints through each form:
 * every line it prints must be marked. Then it hands printf a bad %s pointer: the call fails
 * (-1, EFAULT) before glibc locks stdout, so the main thread can still print. The main
 * thread's own lines are not marked. An unmodified program.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int *volatile wild = (int *)32;
static const char *volatile bad_str = (const char *)40;

static void v_out(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static void vf_out(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
}

static void *faulty(void *arg) {
    (void)arg;
    int v = *wild; /* contained */
    printf("form puts\n");
    printf("P"); /* putchar('P'): marked on its own */
    printf("form putchar\n");
    fputs("form fputs\n", stdout);
    printf("form printf_chk %d\n", v);
    fprintf(stdout, "form fprintf_chk %d\n", v);
    v_out("form vprintf_chk %d\n", v);
    vf_out(stdout, "form vfprintf_chk %d\n", v);
    fflush(stdout);
    dprintf(1, "form dprintf_chk %d\n", v);
    errno = 0;
    int rc = printf("bad %s\n", bad_str);
    int e = errno;
    printf("bad pointer rc %d errno %s\n", rc, e == EFAULT ? "EFAULT" : "other");
    fflush(stdout);
    return NULL;
}

int main(void) {
    printf("main before\n");
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, faulty, NULL);
    pthread_join(t, NULL);
    printf("main after %d\n", 1);
    puts("main puts");
    return 0;
}
