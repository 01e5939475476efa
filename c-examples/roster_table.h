/*
 * roster_table.h -- the company roster of the paper's §5.1 experiments (VMSRS, SHI Yi et al.,
 * J. Software 2015), shared by roster.c and consistency.c.
 *
 * The roster is the server's shared data set: five employees with name, age, length of
 * service, apartment number and salary, with the values of the paper's Fig. 11(a) and
 * Fig. 12. It lives at the very end of an mmap'ed page that is followed by an inaccessible
 * guard page, so an index past the last employee is a real invalid access into a "memory
 * hole" (the paper's error set: pointer out of bounds, holes left by mmap).
 *
 * Every access by a user goes through the monitored API of vmsrs.h (VMSRS_GET/VMSRS_SET,
 * vmsrs_load, vmsrs_printf), so it also builds with -DVMSRS_DISABLE as the plain program.
 */
#ifndef ROSTER_TABLE_H
#define ROSTER_TABLE_H

#include "vmsrs.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct employee {
    char name[16];
    int32_t age;
    int32_t service;   /* length of service, in years */
    int32_t apartment; /* NO. of apartment */
    int32_t salary;
};

enum { N_EMPLOYEES = 5, JIM = 0, STEVEN = 1, ZHANG = 2, DIM = 3, HOWARD = 4 };

/* The server's data before any user ran (Fig. 11(a) and the unchanged rows of Fig. 12). */
static const struct employee ROSTER_INITIAL[N_EMPLOYEES] = {
    {"Jim Green", 24, 2, 2, 7500},
    {"Steven Jackson", 26, 3, 3, 9000},
    {"zhang FY", 31, 7, 2, 12500},
    {"Dim White", 27, 5, 1, 11700},
    {"Howard", 30, 4, 4, 10800},
};

/* Print "FAIL: ..." on stderr and exit 1: every internal check of the examples ends here. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void fail(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Map the roster at the end of a read-write page followed by a PROT_NONE guard page, and
 * fill it with ROSTER_INITIAL. */
static inline struct employee *roster_map(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail("mmap of the roster failed");
    if (mprotect(m + page, (size_t)page, PROT_NONE) != 0) fail("mprotect of the guard page failed");
    struct employee *t = (struct employee *)(m + page - sizeof ROSTER_INITIAL);
    memcpy(t, ROSTER_INITIAL, sizeof ROSTER_INITIAL);
    return t;
}

/* Start libvmsrs and monitor the roster (the paper's Init_profile + profile). */
static inline void roster_profile(struct employee *t) {
    int rc = vmsrs_init_profile(NULL);
    if (rc != 0) fail("vmsrs_init_profile: %s", vmsrs_strerror(rc));
    rc = vmsrs_profile(t, sizeof ROSTER_INITIAL, "roster");
    if (rc != 0) fail("vmsrs_profile: %s", vmsrs_strerror(rc));
}

/* One employee, read through the monitored API (the caller's view: G3, or G4 when
 * suppressed). */
static inline struct employee roster_get(const struct employee *t, int i) {
    struct employee e;
    int rc = vmsrs_load(&e, &t[i], sizeof e);
    if (rc != 0) fail("vmsrs_load: %s", vmsrs_strerror(rc));
    return e;
}

/* The whole roster as the calling user sees it. */
static inline void roster_snapshot(const struct employee *t, struct employee out[N_EMPLOYEES]) {
    int rc = vmsrs_load(out, t, sizeof(struct employee) * N_EMPLOYEES);
    if (rc != 0) fail("vmsrs_load: %s", vmsrs_strerror(rc));
}

/* Print a snapshot in the layout of the paper's Fig. 12. vmsrs_printf marks the lines of a
 * suppressed user. */
static inline void roster_print(const struct employee rows[N_EMPLOYEES]) {
    vmsrs_printf("-----\n");
    vmsrs_printf("%-15s %3s  %-17s  %-9s  %6s\n", "name", "age", "length of service", "NO. of ap", "salary");
    vmsrs_printf("-----\n");
    for (int i = 0; i < N_EMPLOYEES; i++) {
        /* The name as printable text even if the row holds garbage (Fig. 10(a)). */
        char name[sizeof rows[i].name + 1];
        size_t k = 0;
        for (; k < sizeof rows[i].name && rows[i].name[k] != 0; k++) {
            unsigned char c = (unsigned char)rows[i].name[k];
            name[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        name[k] = 0;
        vmsrs_printf("%-15s %3d  %-17d  %-9d  %6d\n", name, rows[i].age, rows[i].service,
                     rows[i].apartment, rows[i].salary);
    }
    vmsrs_printf("-----\n");
}

/* Compare a snapshot with the expected rows; print every difference and return their count. */
static inline int roster_diff(const char *who, const struct employee got[N_EMPLOYEES],
                              const struct employee want[N_EMPLOYEES]) {
    int bad = 0;
    for (int i = 0; i < N_EMPLOYEES; i++) {
        const struct employee *g = &got[i], *w = &want[i];
        if (memcmp(g->name, w->name, sizeof g->name) != 0 || g->age != w->age ||
            g->service != w->service || g->apartment != w->apartment || g->salary != w->salary) {
            fprintf(stderr,
                    "MISMATCH (%s) row %d: got {%.15s, %d, %d, %d, %d} want {%s, %d, %d, %d, %d}\n",
                    who, i, g->name, g->age, g->service, g->apartment, g->salary, w->name, w->age,
                    w->service, w->apartment, w->salary);
            bad++;
        }
    }
    return bad;
}

/* The salary of employee `idx` read through a plain pointer with no bounds check -- the
 * server bug of the experiments. For idx >= N_EMPLOYEES the pointer lands in the guard page
 * and the load is a real SIGSEGV. */
static inline int32_t roster_unchecked_salary(const struct employee *t, int idx) {
    const volatile int32_t *p = &t[idx].salary;
    return *p;
}

#endif /* ROSTER_TABLE_H */
