/*
 * Class 2 of the paper's function library: output (vmsrs_printf family).
 *
 * C, because formatting consumes a va_list. Rust exports the entry points as naked
 * trampolines (src/output.rs) that jump here, so these definitions stay hidden.
 *
 * - A suppressed user's output is marked: each call is prefixed with
 *   "[vmsrs: suppressed user N] ", so its reader knows the user failed (paper Fig. 9).
 * - `%s` arguments that point into monitored memory are read through the caller's view
 *   (G3 for a normal user, G4 for a suppressed one) when any user is faulted; other
 *   arguments are values the caller already loaded.
 * - `%n` is refused (VMSRS_EINVAL): a store through a format argument bypasses monitoring.
 *   Positional (`%1$s`) formats are printed as by vfprintf, without the view.
 * - Every pointer libc would dereference (the stream, the format, each `%s`/`%ls` string) is
 *   checked through guarded reads BEFORE libc takes the stream's lock: a bad one is the
 *   calling user's memory error (VMSRS_EFAULT; under the unwind policy the user unwinds to
 *   its recovery point from here, holding no lock), never a fault inside vfprintf that
 *   would leave the stream locked for every other thread.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

#define VMSRS_ENULL (-1)
#define VMSRS_EINVAL (-12)
#define VMSRS_EFAULT (-20)
/* Positional formats may name arguments up to this position. */
#define MAX_POS 64

int vmsrs_user_suppressed(void);
uint64_t vmsrs_user_current(void);
int vmsrs__needs_view(const void *p);
size_t vmsrs__view_cstr(const char *p, size_t max, char *out, size_t cap);
void vmsrs__count_suppressed_output(void);
long vmsrs__probe_cstr(const char *p);
long vmsrs__probe_cstr_n(const char *p, size_t max);
int vmsrs__bad_pointer(const void *p);
int vmsrs__probe(const void *p, size_t n);
int vmsrs__settle(int status);
void vmsrs__enter(void);
void vmsrs__leave(void);
void *__libc_malloc(size_t);
void __libc_free(void *);

enum arg_kind { A_NONE, A_INT, A_LONG, A_LLONG, A_SIZE, A_INTMAX, A_PTRDIFF, A_DOUBLE, A_LDOUBLE,
                A_STR, A_WSTR, A_PTR, A_WINT, A_BAD };

struct spec {
    const char *start;
    size_t len;
    int star_width, star_prec;
    long prec; /* a literal precision, or -1 */
    enum arg_kind kind;
};

/* Parse one conversion at p (which points at '%'). Returns 0 on success. */
static int parse_spec(const char *p, struct spec *s) {
    const char *q = p + 1;
    memset(s, 0, sizeof *s);
    s->start = p;
    s->prec = -1;
    if (*q == '%') { s->kind = A_NONE; s->len = 2; return 0; }
    while (*q && strchr("-+ #0'I", *q)) q++;
    if (*q == '*') { s->star_width = 1; q++; } else while (*q >= '0' && *q <= '9') q++;
    if (*q == '$') return -2;
    if (*q == '.') {
        q++;
        s->prec = 0;
        if (*q == '*') { s->star_prec = 1; q++; }
        else while (*q >= '0' && *q <= '9') s->prec = s->prec < 100000000 ? s->prec * 10 + (*q++ - '0') : (q++, s->prec);
    }
    int h = 0, l = 0, L = 0, z = 0, j = 0, t = 0;
    for (;; q++) {
        if (*q == 'h') h++;
        else if (*q == 'l') l++;
        else if (*q == 'L' || *q == 'q') L++;
        else if (*q == 'z' || *q == 'Z') z++;
        else if (*q == 'j') j++;
        else if (*q == 't') t++;
        else break;
    }
    switch (*q) {
    case 'd': case 'i': case 'o': case 'u': case 'x': case 'X':
        s->kind = j ? A_INTMAX : z ? A_SIZE : t ? A_PTRDIFF : l >= 2 || L ? A_LLONG : l ? A_LONG : A_INT;
        (void)h;
        break;
    case 'c': s->kind = l ? A_WINT : A_INT; break;
    case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
        s->kind = L ? A_LDOUBLE : A_DOUBLE; break;
    case 's': s->kind = l ? A_WSTR : A_STR; break;
    case 'S': s->kind = A_WSTR; break;
    case 'C': s->kind = A_WINT; break;
    case 'p': s->kind = A_PTR; break;
    case 'm': s->kind = A_NONE; break;
    case 'n': return -1;
    default: return -1;
    }
    s->len = (size_t)(q - p) + 1;
    if (s->len > 62) return -1; /* print_one copies a conversion into 64 bytes */
    return 0;
}

/* Validate the whole format; sets *positional when it uses %N$. */
static int check_format(const char *fmt, int *positional) {
    *positional = 0;
    for (const char *p = fmt; (p = strchr(p, '%')) != NULL;) {
        struct spec s;
        int r = parse_spec(p, &s);
        if (r == -2) { *positional = 1; return 0; }
        if (r != 0) return VMSRS_EINVAL;
        p += s.len;
    }
    return 0;
}

/* Check a string argument libc will read, up to its precision `prec` (-1: to its NUL):
 * 0, or VMSRS_EFAULT (noted as a bad pointer). */
static int check_str(enum arg_kind k, const void *str, long prec) {
    if (str == NULL) return 0; /* glibc prints "(null)" */
    if (k == A_STR) {
        long n = prec >= 0 ? vmsrs__probe_cstr_n(str, (size_t)prec) : vmsrs__probe_cstr(str);
        return n < 0 ? VMSRS_EFAULT : 0;
    }
    long i = 0;
    for (const wchar_t *w = str; prec < 0 || i < prec; w++, i++) {
        if (vmsrs__probe(w, sizeof *w) != 0) return VMSRS_EFAULT;
        if (*w == 0) return 0;
    }
    return 0;
}

/* Consume one argument of kind k from ap, checking it if libc will dereference it. */
static int check_arg(enum arg_kind k, va_list *ap, long prec) {
    switch (k) {
    case A_NONE: return 0;
    case A_INT: case A_WINT: (void)va_arg(*ap, int); return 0;
    case A_LONG: (void)va_arg(*ap, long); return 0;
    case A_LLONG: (void)va_arg(*ap, long long); return 0;
    case A_SIZE: (void)va_arg(*ap, size_t); return 0;
    case A_INTMAX: (void)va_arg(*ap, intmax_t); return 0;
    case A_PTRDIFF: (void)va_arg(*ap, ptrdiff_t); return 0;
    case A_DOUBLE: (void)va_arg(*ap, double); return 0;
    case A_LDOUBLE: (void)va_arg(*ap, long double); return 0;
    case A_PTR: (void)va_arg(*ap, void *); return 0;
    case A_STR: case A_WSTR: return check_str(k, va_arg(*ap, const void *), prec);
    default: return VMSRS_EINVAL;
    }
}

/* Read a decimal position followed by '$' at *q; 0 if there is none. */
static int read_pos(const char **q) {
    int n = 0;
    while (**q >= '0' && **q <= '9' && n <= MAX_POS) n = n * 10 + (*(*q)++ - '0');
    if (**q != '$' || n < 1 || n > MAX_POS) return 0;
    (*q)++;
    return n;
}

/* Parse one positional conversion "%N$...": its argument position and kind, and the
 * positions of a "*M$" width and precision (0: none). Returns 0, or VMSRS_EINVAL. */
static int parse_positional(const char *p, struct spec *s, int *pos, int *wpos, int *ppos) {
    const char *q = p + 1;
    *pos = *wpos = *ppos = 0;
    if (*q == '%') { s->kind = A_NONE; s->len = 2; return 0; }
    if ((*pos = read_pos(&q)) == 0) return VMSRS_EINVAL;
    while (*q && strchr("-+ #0'I", *q)) q++;
    if (*q == '*') { q++; if ((*wpos = read_pos(&q)) == 0) return VMSRS_EINVAL; }
    else while (*q >= '0' && *q <= '9') q++;
    if (*q == '.') {
        q++;
        if (*q == '*') { q++; if ((*ppos = read_pos(&q)) == 0) return VMSRS_EINVAL; }
        else while (*q >= '0' && *q <= '9') q++;
    }
    /* Classify the length modifiers and conversion with the non-positional parser. */
    char tmp[16];
    size_t i = 0;
    tmp[i++] = '%';
    while (*q && strchr("hlLqjzZt", *q) && i < sizeof tmp - 2) tmp[i++] = *q++;
    if (*q == 0) return VMSRS_EINVAL;
    tmp[i++] = *q++;
    tmp[i] = 0;
    struct spec t;
    if (parse_spec(tmp, &t) != 0) return VMSRS_EINVAL;
    s->kind = t.kind;
    s->len = (size_t)(q - p);
    return 0;
}

/* Check every argument of a positional format, in position order. */
static int check_positional(const char *fmt, va_list ap) {
    enum arg_kind kinds[MAX_POS + 1];
    int max = 0;
    for (int i = 0; i <= MAX_POS; i++) kinds[i] = A_NONE;
    for (const char *p = fmt; (p = strchr(p, '%')) != NULL;) {
        struct spec s;
        int pos, wpos, ppos;
        if (parse_positional(p, &s, &pos, &wpos, &ppos) != 0) return VMSRS_EINVAL;
        if (pos) { kinds[pos] = s.kind; if (pos > max) max = pos; }
        if (wpos) { kinds[wpos] = A_INT; if (wpos > max) max = wpos; }
        if (ppos) { kinds[ppos] = A_INT; if (ppos > max) max = ppos; }
        p += s.len;
    }
    va_list aq;
    va_copy(aq, ap);
    int rc = 0;
    for (int i = 1; i <= max && rc == 0; i++) rc = check_arg(kinds[i] == A_NONE ? A_INT : kinds[i], &aq, -1);
    va_end(aq);
    return rc;
}

/* Check every argument libc will dereference, before it takes any lock. */
static int check_args(const char *fmt, int positional, va_list ap) {
    if (positional) return check_positional(fmt, ap);
    va_list aq;
    va_copy(aq, ap);
    int rc = 0;
    for (const char *p = fmt; rc == 0 && (p = strchr(p, '%')) != NULL;) {
        struct spec s;
        parse_spec(p, &s);
        if (s.star_width) (void)va_arg(aq, int);
        long prec = s.prec;
        if (s.star_prec) {
            int v = va_arg(aq, int);
            prec = v < 0 ? -1 : v; /* a negative precision is taken as omitted */
        }
        rc = check_arg(s.kind, &aq, prec);
        p += s.len;
    }
    va_end(aq);
    return rc;
}

static int print_prefix(FILE *f) {
    if (!vmsrs_user_suppressed()) return 0;
    vmsrs__count_suppressed_output();
    return fprintf(f, "[vmsrs: suppressed user %llu] ", (unsigned long long)vmsrs_user_current());
}

/* Print one conversion with its arguments taken from ap. */
static int print_one(FILE *f, const struct spec *s, va_list *ap) {
    char one[64];
    size_t n = s->len < sizeof one - 1 ? s->len : sizeof one - 1;
    memcpy(one, s->start, n);
    one[n] = 0;
    int w = 0, pr = 0;
    if (s->star_width) w = va_arg(*ap, int);
    if (s->star_prec) pr = va_arg(*ap, int);
#define EMIT(val) \
    (s->star_width && s->star_prec ? fprintf(f, one, w, pr, val) \
     : s->star_width ? fprintf(f, one, w, val) : s->star_prec ? fprintf(f, one, pr, val) : fprintf(f, one, val))
    switch (s->kind) {
    case A_NONE: return fprintf(f, one, 0); /* %% and %m take no argument */
    case A_INT: return EMIT(va_arg(*ap, int));
    case A_LONG: return EMIT(va_arg(*ap, long));
    case A_LLONG: return EMIT(va_arg(*ap, long long));
    case A_SIZE: return EMIT(va_arg(*ap, size_t));
    case A_INTMAX: return EMIT(va_arg(*ap, intmax_t));
    case A_PTRDIFF: return EMIT(va_arg(*ap, ptrdiff_t));
    case A_DOUBLE: return EMIT(va_arg(*ap, double));
    case A_LDOUBLE: return EMIT(va_arg(*ap, long double));
    case A_WSTR: return EMIT(va_arg(*ap, wchar_t *));
    case A_PTR: return EMIT(va_arg(*ap, void *));
    case A_WINT: return EMIT(va_arg(*ap, wint_t));
    case A_STR: {
        const char *str = va_arg(*ap, const char *);
        if (str == NULL || !vmsrs__needs_view(str)) return EMIT(str);
        /* Read no further than the precision, as libc would (and as check_str probed). */
        long prec = s->star_prec ? (pr < 0 ? -1 : pr) : s->prec;
        size_t max = prec < 0 ? (size_t)-1 : (size_t)prec;
        char small[256];
        size_t len = vmsrs__view_cstr(str, max, small, sizeof small);
        if (len < sizeof small) return EMIT(small);
        char *big = __libc_malloc(len + 1);
        if (big == NULL) return EMIT(small);
        vmsrs__view_cstr(str, max, big, len + 1);
        int r = EMIT(big);
        __libc_free(big);
        return r;
    }
    default: return -1;
    }
#undef EMIT
}

static int vfprintf_checked(FILE *f, const char *fmt, va_list ap) {
    if (f == NULL || fmt == NULL) return VMSRS_ENULL;
    if (vmsrs__probe(f, sizeof *f) != 0 || vmsrs__probe_cstr(fmt) < 0) return VMSRS_EFAULT;
    /* A stream is a glibc FILE: its flags carry _IO_MAGIC, and libc will take its lock. */
    if (((unsigned)f->_flags & 0xFFFF0000u) != 0xFBAD0000u) return vmsrs__bad_pointer(f);
    if (f->_lock != NULL && vmsrs__probe(f->_lock, 16) != 0) return VMSRS_EFAULT;
    int positional;
    int rc = check_format(fmt, &positional);
    if (rc != 0) return rc;
    rc = check_args(fmt, positional, ap);
    if (rc != 0) return rc;
    flockfile(f);
    int total = print_prefix(f);
    if (total < 0) total = 0;
    int view = 0;
    if (!positional) {
        for (const char *p = fmt; (p = strchr(p, '%')) != NULL;) {
            struct spec s;
            parse_spec(p, &s);
            if (s.kind == A_STR) { view = 1; break; }
            p += s.len;
        }
    }
    if (!view || !vmsrs__needs_view(NULL)) {
        int r = vfprintf(f, fmt, ap);
        funlockfile(f);
        return r < 0 ? r : total + r;
    }
    va_list aq;
    va_copy(aq, ap);
    const char *p = fmt;
    while (*p) {
        const char *pct = strchr(p, '%');
        size_t lit = pct ? (size_t)(pct - p) : strlen(p);
        if (lit) { fwrite(p, 1, lit, f); total += (int)lit; }
        if (!pct) break;
        struct spec s;
        parse_spec(pct, &s);
        int r = print_one(f, &s, &aq);
        if (r < 0) { total = r; break; }
        total += r;
        p = pct + s.len;
    }
    va_end(aq);
    funlockfile(f);
    return total;
}

/* Non-zero while this thread runs vfprintf_checked: the interposed printf family
 * (preload/output.c) is then plain, so the calls made here are neither checked nor marked
 * twice. Initial-exec: reading it never allocates. */
__thread int vmsrs__in_output __attribute__((tls_model("initial-exec")));

/* For the interposed printf family (preload/output.c): check every pointer argument of `fmt`
 * that libc will dereference (the format itself is checked by the caller). 0, VMSRS_EFAULT
 * (noted as the calling user's bad pointer), or VMSRS_EINVAL for a format these checks do
 * not parse (%n, unknown conversions): then nothing beyond the format was checked. */
int vmsrs__check_format_args(const char *fmt, va_list ap) {
    int positional;
    int rc = check_format(fmt, &positional);
    if (rc != 0) return rc;
    return check_args(fmt, positional, ap);
}

/* The entry points settle a bad pointer (the user's fault) only here, with no lock held. */
int vmsrs_c_vfprintf(FILE *f, const char *fmt, va_list ap) {
    vmsrs__enter(); /* a signal handler that prints too waits until this call is done */
    vmsrs__in_output++;
    int r = vfprintf_checked(f, fmt, ap);
    vmsrs__in_output--;
    vmsrs__leave();
    return vmsrs__settle(r);
}

int vmsrs_c_vprintf(const char *fmt, va_list ap) { return vmsrs_c_vfprintf(stdout, fmt, ap); }

int vmsrs_c_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_c_vfprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}

int vmsrs_c_fprintf(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vmsrs_c_vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}
