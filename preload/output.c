/*
 * The printf family, interposed (preload/src/output.rs exports each name as a naked
 * trampoline that jumps here with the argument registers untouched, so variadic calls keep
 * their ABI; these definitions stay hidden).
 *
 * Covered: printf, fprintf, vprintf, vfprintf, dprintf, vdprintf, puts, fputs, putchar (what
 * compilers emit for printf("x\n") and printf("x"): ECOSYSTEM pitfall 15), fwrite and fputc
 * (what they emit for fputs/fprintf of a constant string or a single %c), and the
 * _FORTIFY_SOURCE forms __printf_chk, __fprintf_chk, __vprintf_chk, __vfprintf_chk,
 * __dprintf_chk, __vdprintf_chk (their flag is passed on to glibc's).
 *
 * - In a program linked with -lvmsrs rather than preloaded, or on a thread that runs no
 *   user: glibc's function, after one call that reads the thread's user (vmsrs__output_mode).
 * - On a thread that runs a user (DESIGN §5: a fault inside a libc call made on the user's
 *   behalf never unwinds across libc's locks): every pointer libc will dereference (the
 *   stream, the format, each %s/%ls argument, the string of puts/fputs) is checked through
 *   guarded reads BEFORE libc takes the stream's lock. A bad one is the user's memory error,
 *   contained here with no lock held (vmsrs__settle): the call returns -1 (EOF for
 *   puts/fputs/putchar) with errno EFAULT, or, under the unwind policy, the user unwinds.
 *   Formats these checks do not parse (%n, conversions added with register_printf_function)
 *   are passed on with only the format string checked.
 * - A suppressed user's output is marked: each call is prefixed with
 *   "[vmsrs: suppressed user N] " under the stream's lock, and counted (suppressed_outputs),
 *   as vmsrs_printf does in linked mode.
 * - The vmsrs_printf shim (src/output.c) calls fprintf/vfprintf itself; while it runs
 *   (vmsrs__in_output) these are plain, so its output is marked once.
 *
 * glibc's functions are found once at load (vmsrs_i_resolve, dlsym(RTLD_NEXT), else libc's
 * handle), or on first use by a call that arrives earlier; if that fails too, glibc's _IO_*
 * aliases are used.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VMSRS_EFAULT (-20)

int vmsrs__output_mode(void);
void vmsrs__output_marked(void);
uint64_t vmsrs_user_current(void);
long vmsrs__probe_cstr(const char *p);
int vmsrs__probe(const void *p, size_t n);
int vmsrs__settle(int status);
/* src/output.c: the argument checks of vmsrs_printf, and its re-entry flag. */
int vmsrs__check_format_args(const char *fmt, va_list ap);
extern __thread int vmsrs__in_output __attribute__((tls_model("initial-exec")));

/* glibc's aliases, never interposed: the last resort before resolution. */
int _IO_vfprintf(FILE *, const char *, va_list);
int _IO_puts(const char *);
int _IO_fputs(const char *, FILE *);
int _IO_putc(int, FILE *);
size_t _IO_fwrite(const void *, size_t, size_t, FILE *);

typedef int (*vfprintf_fn)(FILE *, const char *, va_list);
typedef int (*vfprintf_chk_fn)(FILE *, int, const char *, va_list);
typedef int (*vdprintf_fn)(int, const char *, va_list);
typedef int (*vdprintf_chk_fn)(int, int, const char *, va_list);
typedef int (*puts_fn)(const char *);
typedef int (*fputs_fn)(const char *, FILE *);
typedef int (*putchar_fn)(int);
typedef size_t (*fwrite_fn)(const void *, size_t, size_t, FILE *);
typedef int (*fputc_fn)(int, FILE *);

static vfprintf_fn real_vfprintf;
static vfprintf_chk_fn real_vfprintf_chk;
static vdprintf_fn real_vdprintf;
static vdprintf_chk_fn real_vdprintf_chk;
static puts_fn real_puts;
static fputs_fn real_fputs;
static putchar_fn real_putchar;
static fwrite_fn real_fwrite;
static fputc_fn real_fputc;

static void *next(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
        void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        if (h != NULL) {
            p = dlsym(h, name);
            dlclose(h);
        }
    }
    return p;
}

#define STORE(var, name) __atomic_store_n(&var, (__typeof__(var))next(name), __ATOMIC_RELEASE)

void vmsrs_i_resolve(void) {
    STORE(real_vfprintf, "vfprintf");
    STORE(real_vfprintf_chk, "__vfprintf_chk");
    STORE(real_vdprintf, "vdprintf");
    STORE(real_vdprintf_chk, "__vdprintf_chk");
    STORE(real_puts, "puts");
    STORE(real_fputs, "fputs");
    STORE(real_putchar, "putchar");
    STORE(real_fwrite, "fwrite");
    STORE(real_fputc, "fputc");
}

/* The real function, resolving on first use (a call before our constructor ran). */
#define REAL(var) \
    (__atomic_load_n(&var, __ATOMIC_ACQUIRE) ? var : (vmsrs_i_resolve(), __atomic_load_n(&var, __ATOMIC_ACQUIRE)))

static int do_vfprintf(FILE *f, int flag, const char *fmt, va_list ap) {
    if (flag < 0) {
        vfprintf_fn r = REAL(real_vfprintf);
        return r ? r(f, fmt, ap) : _IO_vfprintf(f, fmt, ap);
    }
    vfprintf_chk_fn r = REAL(real_vfprintf_chk);
    return r ? r(f, flag, fmt, ap) : _IO_vfprintf(f, fmt, ap);
}

static int do_vdprintf(int fd, int flag, const char *fmt, va_list ap) {
    if (flag >= 0) {
        vdprintf_chk_fn r = REAL(real_vdprintf_chk);
        if (r) return r(fd, flag, fmt, ap);
    }
    vdprintf_fn r = REAL(real_vdprintf);
    if (r) return r(fd, fmt, ap);
    char buf[4096];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0) return n;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    return write(fd, buf, len) < 0 ? -1 : n;
}

static int do_puts(const char *s) {
    puts_fn r = REAL(real_puts);
    return r ? r(s) : _IO_puts(s);
}

static int do_fputs(const char *s, FILE *f) {
    fputs_fn r = REAL(real_fputs);
    return r ? r(s, f) : _IO_fputs(s, f);
}

static int do_putchar(int c) {
    putchar_fn r = REAL(real_putchar);
    return r ? r(c) : _IO_putc(c, stdout);
}

/* 0: the plain call; 1: check the pointers; 2: check and mark (see vmsrs__output_mode). */
static int mode(void) {
    int m = vmsrs__output_mode();
    return m != 0 && vmsrs__in_output ? 0 : m;
}

#define PREFIX "[vmsrs: suppressed user %llu] "

static int prefix_stream(FILE *f, ...) {
    va_list ap;
    va_start(ap, f);
    vmsrs__output_marked();
    int r = do_vfprintf(f, -1, PREFIX, ap);
    va_end(ap);
    return r;
}

/* Mark the calling user's output on f (f's lock held): the prefix, counted. */
static int mark_stream(FILE *f) { return prefix_stream(f, (unsigned long long)vmsrs_user_current()); }

static int prefix_fd(int fd, ...) {
    va_list ap;
    va_start(ap, fd);
    vmsrs__output_marked();
    int r = do_vdprintf(fd, -1, PREFIX, ap);
    va_end(ap);
    return r;
}

/* A bad pointer was found (noted by the probe): errno EFAULT, and the user's fault is
 * contained now, with no lock held (this may not return, under unwind). */
static int bad(int ret) {
    vmsrs__settle(VMSRS_EFAULT);
    errno = EFAULT;
    return ret;
}

/* Check the format and its pointer arguments: 0, or -1 for a bad pointer (noted). */
static int check_format(const char *fmt, va_list ap) {
    if (vmsrs__probe_cstr(fmt) < 0) return -1;
    return vmsrs__check_format_args(fmt, ap) == VMSRS_EFAULT ? -1 : 0;
}

static int slow_vfprintf(FILE *f, int flag, const char *fmt, va_list ap, int m) {
    if (vmsrs__probe(f, sizeof *f) != 0 || check_format(fmt, ap) != 0) return bad(-1);
    if (m < 2) return do_vfprintf(f, flag, fmt, ap);
    flockfile(f);
    int p = mark_stream(f);
    int r = do_vfprintf(f, flag, fmt, ap);
    funlockfile(f);
    return r < 0 || p < 0 ? r : r + p;
}

static int slow_vdprintf(int fd, int flag, const char *fmt, va_list ap, int m) {
    if (check_format(fmt, ap) != 0) return bad(-1);
    int p = m < 2 ? 0 : prefix_fd(fd, (unsigned long long)vmsrs_user_current());
    int r = do_vdprintf(fd, flag, fmt, ap);
    return r < 0 || p < 0 ? r : r + p;
}

int vmsrs_i___vfprintf_chk(FILE *f, int flag, const char *fmt, va_list ap) {
    int m = mode();
    return m == 0 ? do_vfprintf(f, flag, fmt, ap) : slow_vfprintf(f, flag, fmt, ap, m);
}

int vmsrs_i_vfprintf(FILE *f, const char *fmt, va_list ap) { return vmsrs_i___vfprintf_chk(f, -1, fmt, ap); }

int vmsrs_i_vprintf(const char *fmt, va_list ap) { return vmsrs_i_vfprintf(stdout, fmt, ap); }

int vmsrs_i___vprintf_chk(int flag, const char *fmt, va_list ap) { return vmsrs_i___vfprintf_chk(stdout, flag, fmt, ap); }

int vmsrs_i_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_i_vfprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_i___printf_chk(int flag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_i___vfprintf_chk(stdout, flag, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_i_fprintf(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_i_vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_i___fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_i___vfprintf_chk(f, flag, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_i___vdprintf_chk(int fd, int flag, const char *fmt, va_list ap) {
    int m = mode();
    return m == 0 ? do_vdprintf(fd, flag, fmt, ap) : slow_vdprintf(fd, flag, fmt, ap, m);
}

int vmsrs_i_vdprintf(int fd, const char *fmt, va_list ap) { return vmsrs_i___vdprintf_chk(fd, -1, fmt, ap); }

int vmsrs_i_dprintf(int fd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_i_vdprintf(fd, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_i___dprintf_chk(int fd, int flag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_i___vdprintf_chk(fd, flag, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_i_fputs(const char *s, FILE *f) {
    int m = mode();
    if (m == 0) return do_fputs(s, f);
    if (vmsrs__probe(f, sizeof *f) != 0 || vmsrs__probe_cstr(s) < 0) return bad(EOF);
    if (m < 2) return do_fputs(s, f);
    flockfile(f);
    mark_stream(f);
    int r = do_fputs(s, f);
    funlockfile(f);
    return r;
}

int vmsrs_i_puts(const char *s) {
    int m = mode();
    if (m == 0) return do_puts(s);
    if (vmsrs__probe_cstr(s) < 0) return bad(EOF);
    if (m < 2) return do_puts(s);
    flockfile(stdout);
    mark_stream(stdout);
    int r = do_puts(s);
    funlockfile(stdout);
    return r;
}

int vmsrs_i_putchar(int c) {
    if (mode() < 2) return do_putchar(c);
    flockfile(stdout);
    mark_stream(stdout);
    int r = do_putchar(c);
    funlockfile(stdout);
    return r;
}

int vmsrs_i_fputc(int c, FILE *f) {
    int m = mode();
    fputc_fn r = REAL(real_fputc);
    if (m == 0) return r ? r(c, f) : _IO_putc(c, f);
    if (vmsrs__probe(f, sizeof *f) != 0) return bad(EOF);
    if (m < 2) return r ? r(c, f) : _IO_putc(c, f);
    flockfile(f);
    mark_stream(f);
    int rc = r ? r(c, f) : _IO_putc(c, f);
    funlockfile(f);
    return rc;
}

size_t vmsrs_i_fwrite(const void *p, size_t size, size_t n, FILE *f) {
    int m = mode();
    fwrite_fn r = REAL(real_fwrite);
    if (r == NULL) r = _IO_fwrite;
    if (m == 0) return r(p, size, n, f);
    size_t bytes = size * n;
    if (vmsrs__probe(f, sizeof *f) != 0 || (n != 0 && bytes / n != size) || vmsrs__probe(p, bytes) != 0) {
        bad(0);
        return 0;
    }
    if (m < 2) return r(p, size, n, f);
    flockfile(f);
    mark_stream(f);
    size_t rc = r(p, size, n, f);
    funlockfile(f);
    return rc;
}
