/*
 * bad_input.c -- every libvmsrs entry point, called from C with bad input, must return its
 * documented error (include/vmsrs.h); none may crash, and no bad call may lose recovery data
 * (DESIGN.md section 3).
 *
 * Usage: bad_input <case>      (bad_input list prints the cases)
 *
 * Each case runs in its own process (the init cases need a fresh, uninitialised library).
 * Every check prints one line "ok <function> <case> -> <result>"; the first failed check
 * prints "FAIL <function> <case>: ..." and exits 1 (set BAD_INPUT_KEEP_GOING=1 to run every
 * check and exit 1 at the end instead).
 */
#define _GNU_SOURCE
#include "vmsrs.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ----- reporting ------------------------------------------------------------------------ */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int keep_going;
static int failures;

static const char *code_name(int c)
{
    static __thread char other[32];
    switch (c) {
    case VMSRS_OK: return "0";
    case VMSRS_FAULTED: return "VMSRS_FAULTED";
    case VMSRS_ENULL: return "VMSRS_ENULL";
    case VMSRS_EZEROLEN: return "VMSRS_EZEROLEN";
    case VMSRS_EUNINIT: return "VMSRS_EUNINIT";
    case VMSRS_EALREADY: return "VMSRS_EALREADY";
    case VMSRS_EOVERLAP: return "VMSRS_EOVERLAP";
    case VMSRS_ENOTPROFILED: return "VMSRS_ENOTPROFILED";
    case VMSRS_ENOUSER: return "VMSRS_ENOUSER";
    case VMSRS_EINUSER: return "VMSRS_EINUSER";
    case VMSRS_ETOOMANY: return "VMSRS_ETOOMANY";
    case VMSRS_ENOMEM: return "VMSRS_ENOMEM";
    case VMSRS_ECONFIG: return "VMSRS_ECONFIG";
    case VMSRS_EINVAL: return "VMSRS_EINVAL";
    case VMSRS_ERANGE: return "VMSRS_ERANGE";
    case VMSRS_ECORRUPT: return "VMSRS_ECORRUPT";
    case VMSRS_EIO: return "VMSRS_EIO";
    case VMSRS_EINTERNAL: return "VMSRS_EINTERNAL";
    case VMSRS_ENOTSUP: return "VMSRS_ENOTSUP";
    case VMSRS_ENOFAULT: return "VMSRS_ENOFAULT";
    case VMSRS_EBADRANGE: return "VMSRS_EBADRANGE";
    case VMSRS_EFAULT: return "VMSRS_EFAULT";
    default:
        snprintf(other, sizeof other, "%d", c);
        return other;
    }
}

static void say_ok(const char *fn, const char *cs, const char *result)
{
    pthread_mutex_lock(&out_mu);
    printf("ok %s %s -> %s\n", fn, cs, result);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

static void say_fail(const char *fn, const char *cs, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say_fail(const char *fn, const char *cs, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_mu);
    printf("FAIL %s %s: ", fn, cs);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    if (!keep_going)
        exit(1);
    __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
}

/* An int-returning call must return exactly `want`. */
static void expect_code(const char *fn, const char *cs, int got, int want)
{
    if (got != want)
        say_fail(fn, cs, "expected %s, got %s", code_name(want), code_name(got));
    else
        say_ok(fn, cs, code_name(got));
}

/* A value check: `got` must equal `want`. */
static void expect_u64(const char *fn, const char *cs, uint64_t got, uint64_t want)
{
    char shown[40];
    if (got != want) {
        say_fail(fn, cs, "expected 0x%llx, got 0x%llx", (unsigned long long)want,
                 (unsigned long long)got);
    } else {
        snprintf(shown, sizeof shown, "0x%llx", (unsigned long long)got);
        say_ok(fn, cs, shown);
    }
}

/* A small integer result (a flag, a count): `got` must equal `want`. */
static void expect_int(const char *fn, const char *cs, long got, long want)
{
    char shown[32];
    if (got != want) {
        say_fail(fn, cs, "expected %ld, got %ld", want, got);
    } else {
        snprintf(shown, sizeof shown, "%ld", got);
        say_ok(fn, cs, shown);
    }
}

/* A counter that must not have changed between two snapshots. */
static void expect_unchanged(const char *fn, const char *cs, uint64_t after, uint64_t before)
{
    if (after != before)
        say_fail(fn, cs, "changed from %llu to %llu", (unsigned long long)before, (unsigned long long)after);
    else
        say_ok(fn, cs, "unchanged");
}

/* A property check; `shown` is what the ok line reports. */
static void expect_true(const char *fn, const char *cs, int cond, const char *shown, const char *why)
{
    if (!cond)
        say_fail(fn, cs, "%s", why);
    else
        say_ok(fn, cs, shown);
}

/* A pointer-returning call that must fail: NULL and vmsrs_last_error() == want. */
static void expect_null_err(const char *fn, const char *cs, const void *got, int want)
{
    int le = vmsrs_last_error();
    char shown[64];
    if (got != NULL || le != want) {
        say_fail(fn, cs, "expected NULL with last_error %s, got %p with last_error %s",
                 code_name(want), got, code_name(le));
    } else {
        snprintf(shown, sizeof shown, "NULL+%s", code_name(le));
        say_ok(fn, cs, shown);
    }
}

/* A pointer-returning call that must succeed with `want`. */
static void expect_ptr(const char *fn, const char *cs, const void *got, const void *want)
{
    if (got != want)
        say_fail(fn, cs, "expected %p, got %p", want, got);
    else
        say_ok(fn, cs, got == NULL ? "NULL" : "ptr");
}

/* ----- helpers -------------------------------------------------------------------------- */

#define NONEXISTENT_ENV "/nonexistent-vmsrs-bad-input/none.env"

static char tmp_paths[8][256];
static int n_tmp_paths;

static void remove_tmp_files(void)
{
    for (int i = 0; i < n_tmp_paths; i++)
        unlink(tmp_paths[i]);
}

/* Write `text` to a new temporary file and return its path (removed at exit). */
static const char *write_env_file(const char *text)
{
    const char *dir = getenv("TMPDIR");
    char *path = tmp_paths[n_tmp_paths];
    snprintf(path, sizeof tmp_paths[0], "%s/vmsrs-bad-input-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        perror("write");
        exit(2);
    }
    close(fd);
    if (n_tmp_paths == 0)
        atexit(remove_tmp_files);
    n_tmp_paths++;
    return path;
}

static void init_ok(void)
{
    expect_code("vmsrs_init_profile", "setup", vmsrs_init_profile(NULL), VMSRS_OK);
}

static struct vmsrs_stats stats_now(const char *cs)
{
    struct vmsrs_stats s;
    memset(&s, 0, sizeof s);
    int r = vmsrs_stats(&s);
    if (r != 0)
        say_fail("vmsrs_stats", cs, "expected 0, got %s", code_name(r));
    return s;
}

/* A page that was mapped and is not any more. */
static void *unmapped_page(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    munmap(p, 4096);
    return p;
}

/* Run `fn(arg)` on a new thread and wait for it. */
static void on_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0) {
        perror("pthread_create");
        exit(2);
    }
    pthread_join(t, NULL);
}

/* Make vmsrs_last_error() == VMSRS_ERANGE on this thread (through a throwaway faulted user),
 * so a following check proves the call under test set VMSRS_ENULL itself. */
static void prime_last_error(const char *cs)
{
    char *p = vmsrs_malloc(8);
    expect_code("vmsrs_user_begin", cs, vmsrs_user_begin(), VMSRS_OK);
    expect_null_err("vmsrs_ptr_add", cs, vmsrs_ptr_add(p, 100), VMSRS_ERANGE);
    expect_code("vmsrs_user_end", cs, vmsrs_user_end(), VMSRS_FAULTED);
    vmsrs_free(p);
}

/* Read `n` words of a monitored table as a normal reader on a fresh thread (no user). */
struct reader_job {
    const uint64_t *table;
    const uint64_t *want;
    size_t n;
    const char *cs;
};

static void *reader_thread(void *arg)
{
    struct reader_job *j = arg;
    char cs[160];
    for (size_t i = 0; i < j->n; i++) {
        uint64_t v = vmsrs_load64(&j->table[i]);
        if (v != j->want[i]) {
            snprintf(cs, sizeof cs, "%s[%zu]", j->cs, i);
            say_fail("vmsrs_load64", cs, "normal reader expected 0x%llx, got 0x%llx",
                     (unsigned long long)j->want[i], (unsigned long long)v);
        }
    }
    say_ok("vmsrs_load64", j->cs, "expected");
    return NULL;
}

static void read_as_normal(const char *cs, const uint64_t *table, const uint64_t *want, size_t n)
{
    struct reader_job j = { table, want, n, cs };
    on_thread(reader_thread, &j);
}

static volatile uintptr_t bad_addr = 8; /* never mapped: a real SIGSEGV */

/* ----- case: uninit --------------------------------------------------------------------- */

static uint64_t u_table[8] __attribute__((aligned(64))) = { 1, 2, 3, 4, 5, 6, 7, 8 };

static void case_uninit(void)
{
    struct vmsrs_stats st;
    struct vmsrs_exposure ex[4];
    struct vmsrs_fault_info fi;
    size_t total = 77;
    void *area = NULL;
    size_t alen = 0;

    expect_code("vmsrs_last_error", "fresh_thread", vmsrs_last_error(), 0);
    expect_code("vmsrs_profile", "uninit", vmsrs_profile(u_table, sizeof u_table, "t"), VMSRS_EUNINIT);
    expect_code("vmsrs_unprofile", "uninit", vmsrs_unprofile(u_table), VMSRS_EUNINIT);
    expect_code("vmsrs_user_begin", "uninit", vmsrs_user_begin(), VMSRS_EUNINIT);
    expect_code("VMSRS_USER_BEGIN", "uninit", VMSRS_USER_BEGIN(), VMSRS_EUNINIT);
    expect_code("vmsrs_user_end", "uninit", vmsrs_user_end(), VMSRS_EUNINIT);
    expect_code("vmsrs_crash_suppression", "uninit",
                vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), VMSRS_EUNINIT);
    expect_code("vmsrs_stats", "uninit", vmsrs_stats(&st), VMSRS_EUNINIT);
    expect_code("vmsrs_exposures", "uninit_cap0", vmsrs_exposures(NULL, 0, &total), VMSRS_EUNINIT);
    expect_code("vmsrs_exposures", "uninit_cap4", vmsrs_exposures(ex, 4, &total), VMSRS_EUNINIT);
    expect_code("vmsrs_debug_recovery_area", "uninit",
                vmsrs_debug_recovery_area(u_table, &area, &alen), VMSRS_EUNINIT);
    expect_code("vmsrs_last_fault", "uninit", vmsrs_last_fault(&fi), VMSRS_ENOFAULT);
    expect_u64("vmsrs_user_current", "uninit", vmsrs_user_current(), 0);
    expect_int("vmsrs_user_suppressed", "uninit", vmsrs_user_suppressed(), 0);
    expect_code("vmsrs_user_end", "uninit_after_failed_begin", vmsrs_user_end(), VMSRS_EUNINIT);

    /* Argument checks that need no runtime still hold before init. */
    uint8_t buf[32];
    expect_code("vmsrs_load", "uninit_null_src", vmsrs_load(buf, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_store", "uninit_zero_len", vmsrs_store(u_table, buf, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_ptr_check", "uninit_null", vmsrs_ptr_check(NULL, 1), VMSRS_ENULL);
    expect_code("vmsrs_ptr_check", "uninit_zero_len", vmsrs_ptr_check(u_table, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_ptr_check", "uninit_plain", vmsrs_ptr_check(u_table, sizeof u_table), 0);
    expect_ptr("vmsrs_ptr_add", "uninit_plain", vmsrs_ptr_add(u_table, 24), (char *)u_table + 24);
    expect_null_err("vmsrs_ptr_add", "uninit_null", vmsrs_ptr_add(NULL, 1), VMSRS_ENULL);

    /* Loads and stores before init are plain accesses, on static and heap memory. */
    vmsrs_store64(&u_table[1], 0x1122334455667788ull);
    expect_u64("raw", "uninit_store64_static", u_table[1], 0x1122334455667788ull);
    expect_u64("vmsrs_load64", "uninit_static", vmsrs_load64(&u_table[1]), 0x1122334455667788ull);
    vmsrs_store32((uint32_t *)((char *)u_table + 13), 0xdeadbeefu);
    expect_u64("vmsrs_load32", "uninit_misaligned", vmsrs_load32((uint32_t *)((char *)u_table + 13)),
               0xdeadbeefu);
    vmsrs_store16((uint16_t *)((char *)u_table + 33), 0xabcd);
    expect_u64("vmsrs_load16", "uninit_misaligned", vmsrs_load16((uint16_t *)((char *)u_table + 33)),
               0xabcd);
    vmsrs_store8((uint8_t *)u_table + 47, 0x5e);
    expect_u64("vmsrs_load8", "uninit", vmsrs_load8((uint8_t *)u_table + 47), 0x5e);

    uint8_t *heap = malloc(64);
    for (int i = 0; i < 64; i++)
        heap[i] = (uint8_t)i;
    vmsrs_store64((uint64_t *)(heap + 8), 0x0102030405060708ull);
    uint64_t hv;
    memcpy(&hv, heap + 8, 8);
    expect_u64("raw", "uninit_store64_heap", hv, 0x0102030405060708ull);
    expect_u64("vmsrs_load64", "uninit_heap", vmsrs_load64((uint64_t *)(heap + 8)), 0x0102030405060708ull);
    memset(buf, 0xee, sizeof buf);
    expect_code("vmsrs_store", "uninit_heap", vmsrs_store(heap + 16, buf, 16), 0);
    expect_true("raw", "uninit_store_heap", memcmp(heap + 16, buf, 16) == 0, "equal", "bytes differ");
    memset(buf, 0, sizeof buf);
    expect_code("vmsrs_load", "uninit_heap", vmsrs_load(buf, heap, 32), 0);
    expect_true("vmsrs_load", "uninit_heap_bytes", memcmp(buf, heap, 32) == 0, "equal", "bytes differ");
    expect_code("vmsrs_assign", "uninit_overlap", vmsrs_assign(heap + 1, heap, 8), 0);
    expect_u64("raw", "uninit_assign_memmove", heap[8], 7);
    expect_ptr("vmsrs_memset", "uninit", vmsrs_memset(heap + 40, 0x77, 8), heap + 40);
    expect_u64("raw", "uninit_memset", heap[47], 0x77);
    expect_ptr("vmsrs_memcpy", "uninit", vmsrs_memcpy(heap + 48, u_table, 8), heap + 48);
    expect_true("raw", "uninit_memcpy", memcmp(heap + 48, u_table, 8) == 0, "equal", "bytes differ");
    expect_ptr("vmsrs_memmove", "uninit", vmsrs_memmove(heap + 49, heap + 48, 8), heap + 49);
    expect_u64("raw", "uninit_memmove", heap[49], ((uint8_t *)u_table)[0]);
    free(heap);

    /* Use before init changed nothing: init now succeeds and the library works. */
    expect_code("vmsrs_init_profile", "after_uninit_use", vmsrs_init_profile(NULL), VMSRS_OK);
    expect_code("vmsrs_profile", "after_uninit_use", vmsrs_profile(u_table, sizeof u_table, "t"), 0);
    st = stats_now("after_uninit_use");
    expect_u64("vmsrs_stats", "after_uninit_use_ranges", st.ranges, 1);
    expect_u64("vmsrs_stats", "after_uninit_use_users_begun", st.users_begun, 0);
}

/* ----- cases: init ---------------------------------------------------------------------- */

static const char GOOD_ENV[] = "# a valid file\nVMSRS_POLICY=oblivious\n";

/* After a failed init nothing is initialised: every entry point still says EUNINIT and no
 * fault handler was installed. */
static void expect_still_uninit(const char *cs)
{
    struct vmsrs_stats st;
    struct sigaction sa;
    expect_code("vmsrs_stats", cs, vmsrs_stats(&st), VMSRS_EUNINIT);
    expect_code("vmsrs_profile", cs, vmsrs_profile(u_table, sizeof u_table, NULL), VMSRS_EUNINIT);
    expect_code("vmsrs_user_begin", cs, vmsrs_user_begin(), VMSRS_EUNINIT);
    expect_code("vmsrs_crash_suppression", cs, vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL),
                VMSRS_EUNINIT);
    sigaction(SIGSEGV, NULL, &sa);
    expect_true("sigaction", cs, sa.sa_handler == SIG_DFL && !(sa.sa_flags & SA_SIGINFO), "SIG_DFL",
                "a SIGSEGV handler was installed by a failed init");
}

/* A later good init succeeds, then a second init is refused. */
static void expect_good_init_then_already(const char *cs, const char *env_file)
{
    char c2[96];
    expect_code("vmsrs_init_profile", cs, vmsrs_init_profile(env_file), VMSRS_OK);
    snprintf(c2, sizeof c2, "%s_second_init", cs);
    expect_code("vmsrs_init_profile", c2, vmsrs_init_profile(env_file), VMSRS_EALREADY);
    snprintf(c2, sizeof c2, "%s_works", cs);
    expect_code("vmsrs_profile", c2, vmsrs_profile(u_table, sizeof u_table, "t"), 0);
    struct vmsrs_stats st = stats_now(c2);
    expect_u64("vmsrs_stats", c2, st.ranges, 1);
}

static void case_init_missing_file(void)
{
    expect_code("vmsrs_init_profile", "missing_file", vmsrs_init_profile(NONEXISTENT_ENV), VMSRS_EIO);
    expect_still_uninit("after_missing_file");
    expect_code("vmsrs_init_profile", "empty_path", vmsrs_init_profile(""), VMSRS_EIO);
    expect_still_uninit("after_empty_path");
    expect_code("vmsrs_init_profile", "directory_as_file", vmsrs_init_profile("/"), VMSRS_EIO);
    expect_still_uninit("after_directory_as_file");
    setenv("VMSRS_ENV_FILE", NONEXISTENT_ENV, 1);
    expect_code("vmsrs_init_profile", "missing_file_from_environment", vmsrs_init_profile(NULL), VMSRS_EIO);
    unsetenv("VMSRS_ENV_FILE");
    expect_still_uninit("after_missing_file_from_environment");
    expect_good_init_then_already("good_file_after_eio", write_env_file(GOOD_ENV));
}

static void case_init_bad_policy(void)
{
    const char *bad = write_env_file("VMSRS_POLICY=sometimes\n");
    expect_code("vmsrs_init_profile", "bad_policy_value", vmsrs_init_profile(bad), VMSRS_ECONFIG);
    expect_still_uninit("after_bad_policy_value");
    const char *bad2 = write_env_file("VMSRS_FAULT_BUDGET=lots\n");
    expect_code("vmsrs_init_profile", "bad_number_value", vmsrs_init_profile(bad2), VMSRS_ECONFIG);
    expect_still_uninit("after_bad_number_value");
    setenv("VMSRS_POLICY", "sometimes", 1);
    expect_code("vmsrs_init_profile", "bad_policy_in_environment", vmsrs_init_profile(NULL), VMSRS_ECONFIG);
    expect_still_uninit("after_bad_policy_in_environment");
    /* The process environment overrides the file, for bad values too. */
    expect_code("vmsrs_init_profile", "bad_environment_overrides_good_file",
                vmsrs_init_profile(write_env_file(GOOD_ENV)), VMSRS_ECONFIG);
    unsetenv("VMSRS_POLICY");
    expect_still_uninit("after_bad_environment_overrides_good_file");
    expect_good_init_then_already("good_file_after_bad_value", write_env_file(GOOD_ENV));
}

static void case_init_syntax_error(void)
{
    const char *bad = write_env_file("VMSRS_POLICY oblivious\n");
    expect_code("vmsrs_init_profile", "missing_equals", vmsrs_init_profile(bad), VMSRS_ECONFIG);
    expect_still_uninit("after_missing_equals");
    const char *bad2 = write_env_file("VMSRS_POLICY=\"oblivious\n");
    expect_code("vmsrs_init_profile", "unterminated_quote", vmsrs_init_profile(bad2), VMSRS_ECONFIG);
    expect_still_uninit("after_unterminated_quote");
    expect_good_init_then_already("null_env_after_syntax_error", NULL);
}

static void case_init_unsupported_host(void)
{
    const char *f = write_env_file("VMSRS_HOST=process\n");
    expect_code("vmsrs_init_profile", "unsupported_host", vmsrs_init_profile(f), VMSRS_ENOTSUP);
    expect_still_uninit("after_unsupported_host");
    expect_good_init_then_already("good_file_after_enotsup", write_env_file(GOOD_ENV));
}

static void case_init_twice(void)
{
    expect_code("vmsrs_init_profile", "first", vmsrs_init_profile(NULL), VMSRS_OK);
    expect_code("vmsrs_init_profile", "second_null", vmsrs_init_profile(NULL), VMSRS_EALREADY);
    expect_code("vmsrs_init_profile", "second_good_file", vmsrs_init_profile(write_env_file(GOOD_ENV)),
                VMSRS_EALREADY);
    expect_code("vmsrs_init_profile", "second_missing_file", vmsrs_init_profile(NONEXISTENT_ENV),
                VMSRS_EALREADY);
    expect_code("vmsrs_init_profile", "second_bad_file",
                vmsrs_init_profile(write_env_file("VMSRS_POLICY=sometimes\n")), VMSRS_EALREADY);
    expect_code("vmsrs_profile", "after_second_init", vmsrs_profile(u_table, sizeof u_table, "t"), 0);
    expect_code("vmsrs_user_begin", "after_second_init", vmsrs_user_begin(), 0);
    vmsrs_store64(&u_table[0], 99);
    expect_code("vmsrs_user_end", "after_second_init", vmsrs_user_end(), 0);
    expect_u64("vmsrs_load64", "after_second_init", vmsrs_load64(&u_table[0]), 99);
}

/* A readable environment file whose path is not UTF-8 (Linux paths are bytes). */
static void case_init_non_utf8_path(void)
{
    const char *dir = getenv("TMPDIR");
    char *path = tmp_paths[n_tmp_paths];
    snprintf(path, sizeof tmp_paths[0], "%s/vmsrs-bad-input-\xff\xfe-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, GOOD_ENV, strlen(GOOD_ENV)) != (ssize_t)strlen(GOOD_ENV)) {
        perror("mkstemp/write");
        exit(2);
    }
    close(fd);
    if (n_tmp_paths == 0)
        atexit(remove_tmp_files);
    n_tmp_paths++;
    expect_code("vmsrs_init_profile", "non_utf8_path", vmsrs_init_profile(path), VMSRS_OK);
}

/* ----- case: null ----------------------------------------------------------------------- */

static uint64_t n_table[8] __attribute__((aligned(64))) = { 11, 12, 13, 14, 15, 16, 17, 18 };
static uint64_t n_table2[2] __attribute__((aligned(64))) = { 21, 22 };

static void case_null(void)
{
    uint8_t buf[64], before[64];
    struct vmsrs_exposure ex[4];
    size_t total = 99;
    void *area = NULL;
    size_t alen = 0;
    uint64_t orig[8];

    init_ok();
    memcpy(orig, n_table, sizeof orig);
    expect_code("vmsrs_profile", "setup", vmsrs_profile(n_table, sizeof n_table, "n_table"), 0);

    expect_code("vmsrs_profile", "null_addr", vmsrs_profile(NULL, 8, "x"), VMSRS_ENULL);
    expect_code("vmsrs_profile", "null_addr_null_name", vmsrs_profile(NULL, 8, NULL), VMSRS_ENULL);
    expect_code("vmsrs_profile", "null_name_is_allowed", vmsrs_profile(n_table2, sizeof n_table2, NULL), 0);
    expect_code("vmsrs_unprofile", "null_name_range", vmsrs_unprofile(n_table2), 0);
    expect_code("vmsrs_unprofile", "null", vmsrs_unprofile(NULL), VMSRS_ENULL);

    memset(buf, 0x5a, sizeof buf);
    memcpy(before, buf, sizeof buf);
    expect_code("vmsrs_load", "null_dst", vmsrs_load(NULL, n_table, 8), VMSRS_ENULL);
    expect_code("vmsrs_load", "null_src", vmsrs_load(buf, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_load", "null_both", vmsrs_load(NULL, NULL, 8), VMSRS_ENULL);
    expect_true("vmsrs_load", "null_src_dst_untouched", memcmp(buf, before, sizeof buf) == 0, "untouched",
                "the destination was written by a failed load");
    expect_code("vmsrs_store", "null_dst", vmsrs_store(NULL, buf, 8), VMSRS_ENULL);
    expect_code("vmsrs_store", "null_src", vmsrs_store(n_table, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_assign", "null_dst", vmsrs_assign(NULL, n_table, 8), VMSRS_ENULL);
    expect_code("vmsrs_assign", "null_src", vmsrs_assign(n_table, NULL, 8), VMSRS_ENULL);
    expect_true("raw", "null_store_table_untouched", memcmp(n_table, orig, sizeof orig) == 0, "untouched",
                "the table was written by a failed store");

    expect_code("vmsrs_stats", "null", vmsrs_stats(NULL), VMSRS_ENULL);
    expect_code("vmsrs_last_fault", "null", vmsrs_last_fault(NULL), VMSRS_ENULL);
    expect_code("vmsrs_exposures", "null_out_cap4", vmsrs_exposures(NULL, 4, &total), VMSRS_ENULL);
    expect_code("vmsrs_exposures", "null_out_cap0", vmsrs_exposures(NULL, 0, &total), 0);
    expect_u64("vmsrs_exposures", "null_out_cap0_total", total, 0);
    expect_code("vmsrs_exposures", "null_out_cap0_null_total", vmsrs_exposures(NULL, 0, NULL), 0);
    expect_code("vmsrs_exposures", "null_total", vmsrs_exposures(ex, 4, NULL), 0);

    prime_last_error("prime_memcpy_dst");
    expect_null_err("vmsrs_memcpy", "null_dst", vmsrs_memcpy(NULL, buf, 8), VMSRS_ENULL);
    prime_last_error("prime_memcpy_src");
    expect_null_err("vmsrs_memcpy", "null_src", vmsrs_memcpy(buf, NULL, 8), VMSRS_ENULL);
    prime_last_error("prime_memcpy_src_monitored_dst");
    expect_null_err("vmsrs_memcpy", "null_src_monitored_dst", vmsrs_memcpy(n_table, NULL, 8), VMSRS_ENULL);
    prime_last_error("prime_memset");
    expect_null_err("vmsrs_memset", "null_dst", vmsrs_memset(NULL, 0, 8), VMSRS_ENULL);
    prime_last_error("prime_memmove_dst");
    expect_null_err("vmsrs_memmove", "null_dst", vmsrs_memmove(NULL, buf, 8), VMSRS_ENULL);
    prime_last_error("prime_memmove_src");
    expect_null_err("vmsrs_memmove", "null_src", vmsrs_memmove(buf, NULL, 8), VMSRS_ENULL);
    prime_last_error("prime_ptr_add");
    expect_null_err("vmsrs_ptr_add", "null", vmsrs_ptr_add(NULL, 1), VMSRS_ENULL);
    prime_last_error("prime_ptr_add_zero");
    expect_null_err("vmsrs_ptr_add", "null_delta0", vmsrs_ptr_add(NULL, 0), VMSRS_ENULL);
    expect_true("raw", "null_memcpy_table_untouched", memcmp(n_table, orig, sizeof orig) == 0,
                "untouched", "the table was written by a failed memcpy");

    expect_code("vmsrs_ptr_check", "null", vmsrs_ptr_check(NULL, 1), VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", "null_addr", vmsrs_debug_recovery_area(NULL, &area, &alen),
                VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", "null_area", vmsrs_debug_recovery_area(n_table, NULL, &alen),
                VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", "null_len", vmsrs_debug_recovery_area(n_table, &area, NULL),
                VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", "valid", vmsrs_debug_recovery_area(n_table, &area, &alen), 0);
    expect_true("vmsrs_debug_recovery_area", "valid_outputs", area != NULL && alen > 0, "set",
                "area or len not set");

    vmsrs_free(NULL);
    say_ok("vmsrs_free", "null", "no-op");
    void *r = vmsrs_realloc(NULL, 16);
    expect_true("vmsrs_realloc", "null_is_malloc", r != NULL, "ptr", "realloc(NULL, 16) returned NULL");
    vmsrs_free(r);

    /* A NULL argument inside a user is an error of the call, not a fault of the user. */
    expect_code("vmsrs_user_begin", "null_in_user", vmsrs_user_begin(), 0);
    vmsrs_store64(&n_table[0], 0xabc);
    expect_code("vmsrs_store", "null_in_user", vmsrs_store(NULL, buf, 8), VMSRS_ENULL);
    expect_null_err("vmsrs_memcpy", "null_in_user", vmsrs_memcpy(n_table, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_ptr_check", "null_in_user", vmsrs_ptr_check(NULL, 8), VMSRS_ENULL);
    expect_null_err("vmsrs_ptr_add", "null_in_user", vmsrs_ptr_add(NULL, 8), VMSRS_ENULL);
    expect_int("vmsrs_user_suppressed", "null_in_user", vmsrs_user_suppressed(), 0);
    expect_code("vmsrs_user_end", "null_in_user", vmsrs_user_end(), 0);
    expect_u64("vmsrs_load64", "null_in_user_committed", vmsrs_load64(&n_table[0]), 0xabc);
}

/* ----- case: last_error_scope ----------------------------------------------------------- */

/* vmsrs_last_error() is "the status of the last failed call on this thread among the
 * functions that report failure by returning NULL": failures of int-returning functions
 * (which return their status) must not replace it. */
static void case_last_error_scope(void)
{
    uint8_t buf[8];
    init_ok();
    expect_code("vmsrs_profile", "setup", vmsrs_profile(n_table2, sizeof n_table2, "t"), 0);
    expect_null_err("vmsrs_memcpy", "null_dst", vmsrs_memcpy(NULL, n_table2, 8), VMSRS_ENULL);
    expect_code("vmsrs_profile", "duplicate", vmsrs_profile(n_table2, sizeof n_table2, NULL), VMSRS_EOVERLAP);
    expect_int("vmsrs_last_error", "after_profile_failure", vmsrs_last_error(), VMSRS_ENULL);
    expect_code("vmsrs_load", "zero_len", vmsrs_load(buf, n_table2, 0), VMSRS_EZEROLEN);
    expect_int("vmsrs_last_error", "after_load_failure", vmsrs_last_error(), VMSRS_ENULL);
    expect_code("vmsrs_user_end", "without_begin", vmsrs_user_end(), VMSRS_ENOUSER);
    expect_int("vmsrs_last_error", "after_user_end_failure", vmsrs_last_error(), VMSRS_ENULL);
}

/* ----- case: zero_len ------------------------------------------------------------------- */

static uint64_t z_table[8] __attribute__((aligned(64))) = { 31, 32, 33, 34, 35, 36, 37, 38 };

static void case_zero_len(void)
{
    uint8_t buf[64], before[64];
    uint64_t orig[8];
    struct vmsrs_exposure ex[2];
    size_t total = 5;
    uint8_t *heap = malloc(64);

    init_ok();
    memcpy(orig, z_table, sizeof orig);
    memset(heap, 0x42, 64);
    expect_code("vmsrs_profile", "zero_len", vmsrs_profile(z_table, 0, "z"), VMSRS_EZEROLEN);
    struct vmsrs_stats st0 = stats_now("zero_len_no_range");
    expect_u64("vmsrs_stats", "zero_len_no_range", st0.ranges, 0);
    expect_code("vmsrs_profile", "setup", vmsrs_profile(z_table, sizeof z_table, "z"), 0);

    memset(buf, 0x5a, sizeof buf);
    memcpy(before, buf, sizeof buf);
    expect_code("vmsrs_load", "zero_len", vmsrs_load(buf, z_table, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_load", "zero_len_unprofiled", vmsrs_load(buf, heap, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_store", "zero_len", vmsrs_store(z_table, buf, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_store", "zero_len_unprofiled", vmsrs_store(heap, buf, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_assign", "zero_len", vmsrs_assign(z_table, &z_table[1], 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_ptr_check", "zero_len", vmsrs_ptr_check(z_table, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_ptr_check", "zero_len_unprofiled", vmsrs_ptr_check(heap, 0), VMSRS_EZEROLEN);
    expect_true("vmsrs_load", "zero_len_dst_untouched", memcmp(buf, before, sizeof buf) == 0, "untouched",
                "a zero-length load wrote its destination");

    expect_ptr("vmsrs_memcpy", "zero_len_returns_dst", vmsrs_memcpy(z_table, buf, 0), z_table);
    expect_ptr("vmsrs_memcpy", "zero_len_unprofiled", vmsrs_memcpy(heap, buf, 0), heap);
    expect_ptr("vmsrs_memset", "zero_len_returns_dst", vmsrs_memset(z_table, 0xff, 0), z_table);
    expect_ptr("vmsrs_memmove", "zero_len_returns_dst", vmsrs_memmove(z_table, buf, 0), z_table);
    expect_ptr("vmsrs_memcpy", "zero_len_null_both", vmsrs_memcpy(NULL, NULL, 0), NULL);
    expect_ptr("vmsrs_memset", "zero_len_null", vmsrs_memset(NULL, 0, 0), NULL);
    expect_true("raw", "zero_len_table_untouched", memcmp(z_table, orig, sizeof orig) == 0, "untouched",
                "a zero-length call wrote the table");
    for (int i = 0; i < 64; i++)
        if (heap[i] != 0x42) {
            say_fail("raw", "zero_len_heap_untouched", "heap[%d] = 0x%x", i, heap[i]);
            break;
        }
    say_ok("raw", "zero_len_heap_untouched", "untouched");
    expect_code("vmsrs_exposures", "zero_cap", vmsrs_exposures(ex, 0, &total), 0);
    expect_u64("vmsrs_exposures", "zero_cap_total", total, 0);

    /* Inside a user: zero lengths neither record history nor fault the user. */
    struct vmsrs_stats s1 = stats_now("zero_len_in_user_before");
    expect_code("vmsrs_user_begin", "zero_len_in_user", vmsrs_user_begin(), 0);
    expect_code("vmsrs_store", "zero_len_in_user", vmsrs_store(z_table, buf, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_ptr_check", "zero_len_in_user", vmsrs_ptr_check(z_table, 0), VMSRS_EZEROLEN);
    expect_ptr("vmsrs_memset", "zero_len_in_user", vmsrs_memset(z_table, 1, 0), z_table);
    struct vmsrs_stats s2 = stats_now("zero_len_in_user_after");
    expect_unchanged("vmsrs_stats", "zero_len_no_history", s2.history_entries, s1.history_entries);
    expect_int("vmsrs_user_suppressed", "zero_len_in_user", vmsrs_user_suppressed(), 0);
    expect_code("vmsrs_user_end", "zero_len_in_user", vmsrs_user_end(), 0);
    expect_true("raw", "zero_len_in_user_table_untouched", memcmp(z_table, orig, sizeof orig) == 0,
                "untouched", "a zero-length call in a user wrote the table");
    free(heap);
}

/* ----- case: huge_len ------------------------------------------------------------------- */

static uint64_t h_table[8] __attribute__((aligned(64)));

static void case_huge_len(void)
{
    init_ok();
    uint8_t *t = (uint8_t *)h_table;
    uint8_t *heap = malloc(32);
    expect_code("vmsrs_profile", "size_max_wraps", vmsrs_profile(t, SIZE_MAX, NULL), VMSRS_EINVAL);
    expect_code("vmsrs_profile", "wraps_from_top", vmsrs_profile((void *)(UINTPTR_MAX - 15), 32, NULL),
                VMSRS_EINVAL);
    int r = vmsrs_profile((void *)(UINTPTR_MAX - 15), 16, NULL);
    expect_true("vmsrs_profile", "ends_at_top_of_address_space", r == VMSRS_EINVAL || r == VMSRS_EBADRANGE,
                code_name(r), "expected VMSRS_EINVAL or VMSRS_EBADRANGE");
    expect_code("vmsrs_profile", "huge_to_size_max", vmsrs_profile(t, SIZE_MAX - (uintptr_t)t, NULL),
                VMSRS_EBADRANGE);
    expect_code("vmsrs_profile", "huge_2_62", vmsrs_profile(t, (size_t)1 << 62, NULL), VMSRS_EBADRANGE);
    expect_code("vmsrs_profile", "low_unmapped_page", vmsrs_profile((void *)4096, 4096, NULL),
                VMSRS_EBADRANGE);
    struct vmsrs_stats st = stats_now("huge_len_no_range");
    expect_u64("vmsrs_stats", "huge_len_no_range", st.ranges, 0);

    expect_ptr("vmsrs_malloc", "size_max", vmsrs_malloc(SIZE_MAX), NULL);
    void *c = vmsrs_calloc(SIZE_MAX, 2);
    expect_ptr("vmsrs_calloc", "overflow", c, NULL);
    c = vmsrs_calloc(2, SIZE_MAX / 2 + 1);
    expect_ptr("vmsrs_calloc", "overflow_other_order", c, NULL);

    /* Huge lengths to the pointer checks are judged, never dereferenced. */
    expect_code("vmsrs_profile", "setup", vmsrs_profile(h_table, sizeof h_table, "h"), 0);
    expect_code("vmsrs_ptr_check", "size_max_unknown_memory", vmsrs_ptr_check(heap, SIZE_MAX), 0);
    expect_code("vmsrs_user_begin", "ptr_check_size_max", vmsrs_user_begin(), 0);
    expect_code("vmsrs_ptr_check", "size_max_in_range", vmsrs_ptr_check(t, SIZE_MAX), VMSRS_ERANGE);
    expect_int("vmsrs_user_suppressed", "ptr_check_size_max", vmsrs_user_suppressed(), 1);
    expect_code("vmsrs_user_end", "ptr_check_size_max", vmsrs_user_end(), VMSRS_FAULTED);
    expect_code("vmsrs_user_begin", "ptr_add_max", vmsrs_user_begin(), 0);
    expect_null_err("vmsrs_ptr_add", "ptrdiff_max", vmsrs_ptr_add(t, PTRDIFF_MAX), VMSRS_ERANGE);
    expect_code("vmsrs_user_end", "ptr_add_max", vmsrs_user_end(), VMSRS_FAULTED);
    expect_code("vmsrs_user_begin", "ptr_add_min", vmsrs_user_begin(), 0);
    expect_null_err("vmsrs_ptr_add", "ptrdiff_min", vmsrs_ptr_add(t + 8, PTRDIFF_MIN), VMSRS_ERANGE);
    expect_code("vmsrs_user_end", "ptr_add_min", vmsrs_user_end(), VMSRS_FAULTED);
    expect_ptr("vmsrs_ptr_add", "one_past_end_allowed", vmsrs_ptr_add(t, sizeof h_table),
               t + sizeof h_table);
    free(heap);
}

/* ----- case: realloc_bounds ------------------------------------------------------------- */

/* A failed realloc leaves the block live (as realloc does), with its bounds still known. */
static void case_realloc_bounds(void)
{
    init_ok();
    char *blk = vmsrs_malloc(16);
    expect_true("vmsrs_malloc", "setup", blk != NULL, "ptr", "malloc(16) failed");
    expect_code("vmsrs_user_begin", "before_realloc", vmsrs_user_begin(), 0);
    expect_code("vmsrs_ptr_check", "before_failed_realloc", vmsrs_ptr_check(blk, 64), VMSRS_ERANGE);
    expect_code("vmsrs_user_end", "before_realloc", vmsrs_user_end(), VMSRS_FAULTED);
    void *q = vmsrs_realloc(blk, SIZE_MAX);
    expect_ptr("vmsrs_realloc", "size_max_fails", q, NULL);
    expect_code("vmsrs_user_begin", "after_failed_realloc", vmsrs_user_begin(), 0);
    expect_code("vmsrs_ptr_check", "in_bounds_after_failed_realloc", vmsrs_ptr_check(blk, 16), 0);
    expect_code("vmsrs_ptr_check", "bounds_kept_after_failed_realloc", vmsrs_ptr_check(blk, 64),
                VMSRS_ERANGE);
    expect_code("vmsrs_user_end", "after_failed_realloc", vmsrs_user_end(), VMSRS_FAULTED);
    vmsrs_free(blk);
}

/* ----- case: overlap -------------------------------------------------------------------- */

static uint8_t o_arena[512] __attribute__((aligned(64)));

struct granule_writer {
    uint8_t *base;
};

static void *granule_writer_b(void *arg)
{
    uint8_t *p = ((struct granule_writer *)arg)->base;
    expect_code("vmsrs_user_begin", "shared_granule_b", vmsrs_user_begin(), 0);
    vmsrs_store8(p + 2, 0xb1); /* range 1 */
    vmsrs_store8(p + 5, 0xb2); /* range 2 */
    vmsrs_store8(p + 1, 0xb3); /* over A's store to range 1 */
    vmsrs_store8(p + 6, 0xb4); /* A stores over this one later */
    expect_code("vmsrs_user_end", "shared_granule_b", vmsrs_user_end(), 0);
    return NULL;
}

struct granule_reader {
    const uint8_t *base;
    const uint8_t *want;
    const char *cs;
};

static void *granule_reader(void *arg)
{
    struct granule_reader *g = arg;
    for (int i = 0; i < 8; i++) {
        uint8_t v = vmsrs_load8(g->base + i);
        if (v != g->want[i])
            say_fail("vmsrs_load8", g->cs, "byte %d: expected 0x%x, got 0x%x", i, g->want[i], v);
    }
    say_ok("vmsrs_load8", g->cs, "expected");
    return NULL;
}

static void case_overlap(void)
{
    uint8_t *a = o_arena;
    for (int i = 0; i < 512; i++)
        a[i] = (uint8_t)(i * 7 + 1);
    init_ok();
    expect_code("vmsrs_profile", "base", vmsrs_profile(a + 128, 64, "base"), 0);
    expect_code("vmsrs_profile", "exact_duplicate", vmsrs_profile(a + 128, 64, "dup"), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "partial_from_left", vmsrs_profile(a + 96, 40, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "partial_from_right", vmsrs_profile(a + 184, 16, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "one_byte_from_left", vmsrs_profile(a + 120, 9, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "one_byte_from_right", vmsrs_profile(a + 191, 1, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "contained", vmsrs_profile(a + 140, 8, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "containing", vmsrs_profile(a + 64, 256, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "same_start_shorter", vmsrs_profile(a + 128, 1, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "same_start_longer", vmsrs_profile(a + 128, 100, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", "same_end_shorter", vmsrs_profile(a + 180, 12, NULL), VMSRS_EOVERLAP);
    struct vmsrs_stats st = stats_now("after_overlaps");
    expect_u64("vmsrs_stats", "overlaps_add_no_range", st.ranges, 1);

    expect_code("vmsrs_profile", "adjacent_after", vmsrs_profile(a + 192, 8, NULL), 0);
    expect_code("vmsrs_unprofile", "adjacent_after", vmsrs_unprofile(a + 192), 0);
    expect_code("vmsrs_profile", "adjacent_before", vmsrs_profile(a + 120, 8, NULL), 0);
    expect_code("vmsrs_unprofile", "adjacent_before", vmsrs_unprofile(a + 120), 0);

    /* Unmapped memory. */
    void *gone = unmapped_page();
    expect_code("vmsrs_profile", "unmapped_page", vmsrs_profile(gone, 4096, NULL), VMSRS_EBADRANGE);
    expect_code("vmsrs_profile", "unmapped_inside_page", vmsrs_profile((char *)gone + 100, 10, NULL),
                VMSRS_EBADRANGE);
    char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(two + 4096, 4096);
    expect_code("vmsrs_profile", "half_unmapped", vmsrs_profile(two + 4000, 200, NULL), VMSRS_EBADRANGE);
    expect_code("vmsrs_profile", "mapped_half", vmsrs_profile(two, 4096, NULL), 0);
    expect_code("vmsrs_unprofile", "mapped_half", vmsrs_unprofile(two), 0);
    munmap(two, 4096);

    expect_code("vmsrs_profile", "noncanonical_address", vmsrs_profile((void *)0x800000000000ull, 4096, NULL),
                VMSRS_EBADRANGE);

    /* Wrapping ranges. */
    expect_code("vmsrs_profile", "wraps_from_top", vmsrs_profile((void *)(UINTPTR_MAX - 15), 32, NULL),
                VMSRS_EINVAL);
    expect_code("vmsrs_profile", "wraps_size_max", vmsrs_profile(a, SIZE_MAX, NULL), VMSRS_EINVAL);
    st = stats_now("after_bad_ranges");
    expect_u64("vmsrs_stats", "bad_ranges_add_no_range", st.ranges, 1);
    expect_code("vmsrs_unprofile", "base", vmsrs_unprofile(a + 128), 0);
}

/* ----- case: shared_granule ------------------------------------------------------------- */

static void case_shared_granule(void)
{
    uint8_t *a = o_arena;
    for (int i = 0; i < 512; i++)
        a[i] = (uint8_t)(i * 7 + 1);
    init_ok();
    /* Two ranges sharing one 8-byte granule: [g, g+3) and [g+3, g+8). */
    uint8_t *g = a + 256;
    expect_code("vmsrs_profile", "shared_granule_first", vmsrs_profile(g, 3, "g1"), 0);
    expect_code("vmsrs_profile", "shared_granule_second", vmsrs_profile(g + 3, 5, "g2"), 0);
    expect_code("vmsrs_profile", "shared_granule_overlap_byte", vmsrs_profile(g + 2, 2, NULL),
                VMSRS_EOVERLAP);
    struct vmsrs_stats st = stats_now("shared_granule");
    expect_u64("vmsrs_stats", "shared_granule_ranges", st.ranges, 2);

    /* Both ranges are monitored independently, byte by byte, inside the shared granule. */
    uint8_t orig[8], want[8];
    memcpy(orig, g, 8);
    expect_code("vmsrs_user_begin", "shared_granule_a", vmsrs_user_begin(), 0);
    vmsrs_store8(g + 0, 0xa1);
    vmsrs_store8(g + 4, 0xa2);
    vmsrs_store8(g + 1, 0xa3);
    struct granule_writer w = { g };
    on_thread(granule_writer_b, &w);
    vmsrs_store8(g + 6, 0xa4);
    vmsrs_store16((uint16_t *)(g + 2), 0xa6a5); /* straddles the two ranges */
    expect_code("vmsrs_crash_suppression", "shared_granule_a",
                vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), 0);
    memcpy(want, orig, 8);
    want[1] = 0xb3;
    want[2] = 0xb1;
    want[5] = 0xb2;
    want[6] = 0xb4;
    struct granule_reader rd = { g, want, "shared_granule_while_a_faulted" };
    on_thread(granule_reader, &rd);
    expect_code("vmsrs_user_end", "shared_granule_a", vmsrs_user_end(), VMSRS_FAULTED);
    rd.cs = "shared_granule_after_a_ended";
    on_thread(granule_reader, &rd);
    expect_true("raw", "shared_granule_after_cleanup", memcmp(g, want, 8) == 0, "expected",
                "raw memory after A's cleanup differs");
    expect_code("vmsrs_unprofile", "shared_granule_first", vmsrs_unprofile(g), 0);
    expect_code("vmsrs_unprofile", "shared_granule_second", vmsrs_unprofile(g + 3), 0);

}

/* ----- case: too_many_ranges ------------------------------------------------------------ */

static uint8_t m_space[16 * 300] __attribute__((aligned(64)));

static void case_too_many_ranges(void)
{
    char cs[48];
    int i, r = 0;
    init_ok();
    for (i = 0; i < 256; i++) {
        r = vmsrs_profile(m_space + 16 * i, 1 + (size_t)(i % 15), NULL);
        if (r != 0) {
            snprintf(cs, sizeof cs, "range_%d", i);
            expect_code("vmsrs_profile", cs, r, 0);
        }
    }
    say_ok("vmsrs_profile", "256_ranges", "0");
    expect_code("vmsrs_profile", "range_257", vmsrs_profile(m_space + 16 * 256, 8, NULL), VMSRS_ETOOMANY);
    expect_code("vmsrs_profile", "range_257_overlapping", vmsrs_profile(m_space, 8, NULL), VMSRS_EOVERLAP);
    struct vmsrs_stats st = stats_now("too_many");
    expect_u64("vmsrs_stats", "too_many_ranges", st.ranges, 256);
    expect_code("vmsrs_unprofile", "one_of_256", vmsrs_unprofile(m_space + 16 * 100), 0);
    expect_code("vmsrs_profile", "after_unprofile", vmsrs_profile(m_space + 16 * 256, 8, NULL), 0);
    /* The full table still monitors: a faulty user's stores are withdrawn. */
    uint8_t orig = m_space[16 * 255];
    expect_code("vmsrs_user_begin", "full_table", vmsrs_user_begin(), 0);
    vmsrs_store8(m_space + 16 * 255, (uint8_t)(orig + 1));
    vmsrs_store8(m_space + 16 * 256, 0x5a);
    expect_code("vmsrs_crash_suppression", "full_table", vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), 0);
    expect_code("vmsrs_user_end", "full_table", vmsrs_user_end(), VMSRS_FAULTED);
    expect_u64("raw", "full_table_restored", m_space[16 * 255], orig);
    expect_u64("raw", "full_table_restored_new_range", m_space[16 * 256], 0);
}

/* ----- case: own_state ------------------------------------------------------------------ */

static uint64_t s_table[4] __attribute__((aligned(64))) = { 81, 82, 83, 84 };

/* libvmsrs's own state (here: the recovery data vmsrs_debug_recovery_area points at) can
 * never be profiled: "VMSRS_EINVAL (... or lies in libvmsrs's own state)". */
static void case_own_state(void)
{
    void *area = NULL;
    size_t alen = 0;
    init_ok();
    expect_code("vmsrs_profile", "setup", vmsrs_profile(s_table, sizeof s_table, "s"), 0);
    expect_code("vmsrs_debug_recovery_area", "metadata", vmsrs_debug_recovery_area(&s_table[1], &area, &alen), 0);
    expect_code("vmsrs_profile", "granule_metadata", vmsrs_profile(area, alen, "meta"), VMSRS_EINVAL);
    expect_code("vmsrs_user_begin", "history", vmsrs_user_begin(), 0);
    vmsrs_store64(&s_table[0], 0xdead);
    expect_code("vmsrs_debug_recovery_area", "history", vmsrs_debug_recovery_area(&s_table[0], &area, &alen), 0);
    expect_code("vmsrs_profile", "history_entry", vmsrs_profile(area, alen, "entry"), VMSRS_EINVAL);
    expect_code("vmsrs_crash_suppression", "history", vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), 0);
    expect_code("vmsrs_user_end", "history", vmsrs_user_end(), VMSRS_FAULTED);
    expect_u64("raw", "restored", s_table[0], 81);
    struct vmsrs_stats st = stats_now("own_state");
    expect_u64("vmsrs_stats", "own_state_ranges", st.ranges, 1);
    expect_u64("vmsrs_stats", "own_state_corruptions", st.corruptions, 0);
}

/* ----- case: unprofile ------------------------------------------------------------------ */

static uint64_t p_space[10] __attribute__((aligned(64))) = { 40, 41, 42, 43, 44, 45, 46, 47, 48, 49 };
static uint64_t *const p_table = p_space + 1;

struct sync2 {
    pthread_barrier_t b;
};

static void *unprofile_faulty_user(void *arg)
{
    struct sync2 *s = arg;
    expect_code("vmsrs_user_begin", "unprofile_polluted_f", vmsrs_user_begin(), 0);
    for (int i = 0; i < 8; i++)
        vmsrs_store64(&p_table[i], 0xf000 + (uint64_t)i);
    expect_code("vmsrs_crash_suppression", "unprofile_polluted_f",
                vmsrs_crash_suppression(VMSRS_KIND_SEGV, &p_table[3]), 0);
    pthread_barrier_wait(&s->b); /* faulted, not ended */
    pthread_barrier_wait(&s->b); /* main has unprofiled */
    expect_code("vmsrs_user_end", "unprofile_polluted_f", vmsrs_user_end(), VMSRS_FAULTED);
    return NULL;
}

static void case_unprofile(void)
{
    uint8_t local[16];
    uint64_t orig[8];
    uint8_t *t = (uint8_t *)p_table;
    init_ok();
    memcpy(orig, p_table, sizeof orig);
    expect_code("vmsrs_unprofile", "nothing_profiled", vmsrs_unprofile(t), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_profile", "setup", vmsrs_profile(t, 64, "p"), 0);
    expect_code("vmsrs_unprofile", "inside_not_start", vmsrs_unprofile(t + 1), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", "granule_inside", vmsrs_unprofile(t + 8), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", "last_byte", vmsrs_unprofile(t + 63), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", "just_past_end", vmsrs_unprofile(t + 64), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", "just_before_start", vmsrs_unprofile(t - 1), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", "unknown_stack", vmsrs_unprofile(local), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", "null", vmsrs_unprofile(NULL), VMSRS_ENULL);
    struct vmsrs_stats st = stats_now("after_bad_unprofiles");
    expect_u64("vmsrs_stats", "bad_unprofiles_keep_range", st.ranges, 1);
    void *area = NULL;
    size_t alen = 0;
    expect_code("vmsrs_debug_recovery_area", "unprofiled_addr",
                vmsrs_debug_recovery_area(local, &area, &alen), VMSRS_ENOTPROFILED);

    /* The range still works after the bad unprofiles: a faulty user's stores are withdrawn. */
    expect_code("vmsrs_user_begin", "still_monitored", vmsrs_user_begin(), 0);
    vmsrs_store64(&p_table[2], 0xbad);
    expect_code("vmsrs_unprofile", "inside_while_user", vmsrs_unprofile(t + 16), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_crash_suppression", "still_monitored",
                vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), 0);
    read_as_normal("still_monitored_while_faulted", p_table, orig, 8);
    expect_code("vmsrs_user_end", "still_monitored", vmsrs_user_end(), VMSRS_FAULTED);
    expect_true("raw", "still_monitored_after_cleanup", memcmp(p_table, orig, sizeof orig) == 0, "original",
                "raw memory differs from the original after cleanup");

    expect_code("vmsrs_unprofile", "start", vmsrs_unprofile(t), 0);
    expect_code("vmsrs_unprofile", "twice", vmsrs_unprofile(t), VMSRS_ENOTPROFILED);
    st = stats_now("after_unprofile");
    expect_u64("vmsrs_stats", "after_unprofile_ranges", st.ranges, 0);

    /* Unprofile of a range polluted by a faulted (not yet ended) user restores it first. */
    expect_code("vmsrs_profile", "polluted", vmsrs_profile(t, 64, "p"), 0);
    struct sync2 s;
    pthread_barrier_init(&s.b, NULL, 2);
    pthread_t f;
    pthread_create(&f, NULL, unprofile_faulty_user, &s);
    pthread_barrier_wait(&s.b);
    expect_code("vmsrs_unprofile", "polluted", vmsrs_unprofile(t), 0);
    expect_true("raw", "unprofile_restores_polluted", memcmp(p_table, orig, sizeof orig) == 0, "original",
                "unprofile left a faulted user's values in memory");
    pthread_barrier_wait(&s.b);
    pthread_join(f, NULL);
    expect_true("raw", "unprofile_polluted_after_end", memcmp(p_table, orig, sizeof orig) == 0, "original",
                "memory changed when the faulted user ended after unprofile");
}

/* ----- case: users ---------------------------------------------------------------------- */

static uint64_t us_table[4] __attribute__((aligned(64))) = { 51, 52, 53, 54 };

static void *end_without_begin_thread(void *arg)
{
    (void)arg;
    expect_code("vmsrs_user_end", "without_begin_other_thread", vmsrs_user_end(), VMSRS_ENOUSER);
    expect_u64("vmsrs_user_current", "without_begin_other_thread", vmsrs_user_current(), 0);
    expect_code("vmsrs_user_begin", "other_thread", vmsrs_user_begin(), 0);
    expect_code("vmsrs_user_begin", "double_other_thread", vmsrs_user_begin(), VMSRS_EINUSER);
    expect_code("vmsrs_user_end", "other_thread", vmsrs_user_end(), 0);
    expect_code("vmsrs_user_end", "twice_other_thread", vmsrs_user_end(), VMSRS_ENOUSER);
    return NULL;
}

static void case_users(void)
{
    init_ok();
    expect_code("vmsrs_user_end", "without_begin", vmsrs_user_end(), VMSRS_ENOUSER);
    on_thread(end_without_begin_thread, NULL);
    expect_code("vmsrs_profile", "setup", vmsrs_profile(us_table, sizeof us_table, "us"), 0);

    /* A thread's implicit user is not an explicit one: end without begin still fails. */
    vmsrs_store64(&us_table[3], 0x1111);
    uint64_t implicit = vmsrs_user_current();
    expect_true("vmsrs_user_current", "implicit_user", implicit != 0, "non-zero", "no implicit user");
    expect_code("vmsrs_user_end", "implicit_user_is_not_begun", vmsrs_user_end(), VMSRS_ENOUSER);
    expect_true("vmsrs_user_current", "implicit_user_kept", vmsrs_user_current() == implicit, "same",
                "a refused end changed the implicit user");

    expect_code("vmsrs_user_begin", "first", vmsrs_user_begin(), 0);
    uint64_t first = vmsrs_user_current();
    expect_true("vmsrs_user_current", "first", first != 0 && first != implicit, "new id",
                "begin did not give a new user id");
    vmsrs_store64(&us_table[0], 0x2222);
    expect_code("vmsrs_user_begin", "double_begin", vmsrs_user_begin(), VMSRS_EINUSER);
    expect_code("VMSRS_USER_BEGIN", "double_begin_macro", VMSRS_USER_BEGIN(), VMSRS_EINUSER);
    expect_true("vmsrs_user_current", "after_double_begin", vmsrs_user_current() == first, "same",
                "a refused begin changed the current user");
    expect_int("vmsrs_user_suppressed", "after_double_begin", vmsrs_user_suppressed(), 0);
    vmsrs_store64(&us_table[1], 0x3333);
    expect_code("vmsrs_user_end", "first_after_double_begin", vmsrs_user_end(), 0);
    expect_code("vmsrs_user_end", "twice", vmsrs_user_end(), VMSRS_ENOUSER);
    uint64_t want[4] = { 0x2222, 0x3333, 53, 0x1111 };
    read_as_normal("committed_after_double_begin", us_table, want, 4);

    /* The same with the recovery-point macro. */
    int r = VMSRS_USER_BEGIN();
    expect_code("VMSRS_USER_BEGIN", "first_macro", r, 0);
    expect_code("VMSRS_USER_BEGIN", "double_begin_macro_after_macro", VMSRS_USER_BEGIN(), VMSRS_EINUSER);
    expect_code("vmsrs_user_begin", "double_begin_after_macro", vmsrs_user_begin(), VMSRS_EINUSER);
    vmsrs_store64(&us_table[2], 0x4444);
    expect_code("vmsrs_user_end", "macro_user", vmsrs_user_end(), 0);
    want[2] = 0x4444;
    read_as_normal("committed_after_macro_double_begin", us_table, want, 4);
    struct vmsrs_stats st = stats_now("users");
    expect_u64("vmsrs_stats", "users_faulted", st.users_faulted, 0);
    expect_u64("vmsrs_stats", "users_suppressed_now", st.users_suppressed_now, 0);
}

/* A refused VMSRS_USER_BEGIN() must not replace the running user's recovery point: under the
 * unwind policy a later fault returns to the first call site. */
static void case_double_begin_unwind(void)
{
    static volatile int phase;
    static volatile int unwound_to_second;
    expect_code("vmsrs_init_profile", "unwind_policy",
                vmsrs_init_profile(write_env_file("VMSRS_POLICY=unwind\n")), 0);
    phase = 0;
    int r = VMSRS_USER_BEGIN();
    if (r == VMSRS_FAULTED) {
        expect_code("VMSRS_USER_BEGIN", "unwound_to_first_site", r, VMSRS_FAULTED);
        expect_true("VMSRS_USER_BEGIN", "unwound_after_fault", phase == 2, "phase 2",
                    "unwound before the fault");
        expect_code("vmsrs_user_end", "after_unwind", vmsrs_user_end(), VMSRS_ENOUSER);
        expect_u64("vmsrs_user_current", "after_unwind", vmsrs_user_current(), 0);
        return;
    }
    expect_code("VMSRS_USER_BEGIN", "first", r, 0);
    phase = 1;
    int r2 = VMSRS_USER_BEGIN();
    if (r2 == VMSRS_FAULTED || unwound_to_second) {
        unwound_to_second = 1;
        say_fail("VMSRS_USER_BEGIN", "refused_begin_keeps_recovery_point",
                 "the fault unwound to the refused second VMSRS_USER_BEGIN()");
        return;
    }
    expect_code("VMSRS_USER_BEGIN", "double_begin_unwind", r2, VMSRS_EINUSER);
    phase = 2;
    *(volatile int *)bad_addr = 1; /* SIGSEGV: unwind to the first site */
    say_fail("VMSRS_USER_BEGIN", "unwind", "the fault did not unwind");
}

/* ----- case: crash_kind ----------------------------------------------------------------- */

static uint64_t k_table[2] __attribute__((aligned(64))) = { 61, 62 };

static void *invalid_kind_no_user(void *arg)
{
    (void)arg;
    expect_code("vmsrs_crash_suppression", "invalid_kind_no_user", vmsrs_crash_suppression(99, NULL),
                VMSRS_EINVAL);
    expect_u64("vmsrs_user_current", "invalid_kind_creates_no_user", vmsrs_user_current(), 0);
    return NULL;
}

static void case_crash_kind(void)
{
    static const int bad[] = { 99, -1, 2, 3, 5, 9, 10, 12, 13, INT_MIN, INT_MAX };
    static const int good[] = { VMSRS_KIND_EXPLICIT, VMSRS_KIND_BOUNDS, VMSRS_KIND_ILL, VMSRS_KIND_ABRT,
                                VMSRS_KIND_BUS, VMSRS_KIND_FPE, VMSRS_KIND_SEGV };
    char cs[64];
    struct vmsrs_fault_info fi;
    init_ok();
    expect_code("vmsrs_profile", "setup", vmsrs_profile(k_table, sizeof k_table, "k"), 0);
    expect_code("vmsrs_user_begin", "invalid_kinds", vmsrs_user_begin(), 0);
    vmsrs_store64(&k_table[0], 0x7777);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cs, sizeof cs, "kind_%d", bad[i]);
        expect_code("vmsrs_crash_suppression", cs, vmsrs_crash_suppression(bad[i], NULL), VMSRS_EINVAL);
    }
    expect_int("vmsrs_user_suppressed", "after_invalid_kinds", vmsrs_user_suppressed(), 0);
    expect_code("vmsrs_last_fault", "after_invalid_kinds", vmsrs_last_fault(&fi), VMSRS_ENOFAULT);
    expect_code("vmsrs_user_end", "after_invalid_kinds", vmsrs_user_end(), 0);
    uint64_t want[2] = { 0x7777, 62 };
    read_as_normal("invalid_kinds_lose_nothing", k_table, want, 2);
    on_thread(invalid_kind_no_user, NULL);

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(cs, sizeof cs, "valid_kind_%d", good[i]);
        expect_code("vmsrs_user_begin", cs, vmsrs_user_begin(), 0);
        uint64_t u = vmsrs_user_current();
        vmsrs_store64(&k_table[1], 0x8000 + (uint64_t)i);
        expect_code("vmsrs_crash_suppression", cs, vmsrs_crash_suppression(good[i], &k_table[1]), 0);
        snprintf(cs, sizeof cs, "valid_kind_%d_idempotent", good[i]);
        expect_code("vmsrs_crash_suppression", cs, vmsrs_crash_suppression(good[i], NULL), 0);
        snprintf(cs, sizeof cs, "valid_kind_%d", good[i]);
        expect_int("vmsrs_user_suppressed", cs, vmsrs_user_suppressed(), 1);
        expect_code("vmsrs_last_fault", cs, vmsrs_last_fault(&fi), 0);
        expect_true("vmsrs_last_fault", cs,
                    fi.signal == good[i] && fi.user == u && fi.action == VMSRS_ACTION_EXPLICIT, "matches",
                    "last fault does not describe the explicit entry");
        expect_code("vmsrs_user_end", cs, vmsrs_user_end(), VMSRS_FAULTED);
        read_as_normal(cs, k_table, want, 2);
    }
}

/* ----- case: strerror ------------------------------------------------------------------- */

static void check_strerror(const char *when)
{
    char cs[64];
    const char *unknown = vmsrs_strerror(12345);
    for (int c = VMSRS_EFAULT; c <= VMSRS_FAULTED; c++) {
        const char *s = vmsrs_strerror(c);
        snprintf(cs, sizeof cs, "%s_%s", when, code_name(c));
        expect_true("vmsrs_strerror", cs, s != NULL && s[0] != '\0' && (unknown == NULL || strcmp(s, unknown) != 0),
                    "non-empty", "NULL, empty, or the unknown-code string for a known code");
    }
    static const int unknown_codes[] = { 2, 3, -21, -22, -100, 1000, INT_MIN, INT_MAX, 12345 };
    for (size_t i = 0; i < sizeof unknown_codes / sizeof unknown_codes[0]; i++) {
        const char *s = vmsrs_strerror(unknown_codes[i]);
        snprintf(cs, sizeof cs, "%s_unknown_%d", when, unknown_codes[i]);
        expect_true("vmsrs_strerror", cs, s != NULL && strcmp(s, "unknown libvmsrs status") == 0,
                    "unknown libvmsrs status", "not the documented unknown-code string");
    }
}

static void case_strerror(void)
{
    check_strerror("before_init");
    init_ok();
    check_strerror("after_init");
}

/* ----- case: last_fault ----------------------------------------------------------------- */

static void case_last_fault(void)
{
    struct vmsrs_fault_info fi;
    memset(&fi, 0xa5, sizeof fi);
    init_ok();
    expect_code("vmsrs_last_fault", "before_any_fault", vmsrs_last_fault(&fi), VMSRS_ENOFAULT);
    expect_code("vmsrs_last_fault", "null_before_any_fault", vmsrs_last_fault(NULL), VMSRS_ENULL);
    expect_code("vmsrs_user_begin", "explicit_fault", vmsrs_user_begin(), 0);
    expect_code("vmsrs_last_fault", "in_user_before_fault", vmsrs_last_fault(&fi), VMSRS_ENOFAULT);
    uint64_t u = vmsrs_user_current();
    expect_code("vmsrs_crash_suppression", "explicit_fault",
                vmsrs_crash_suppression(VMSRS_KIND_SEGV, (void *)0x1234), 0);
    expect_code("vmsrs_last_fault", "after_fault", vmsrs_last_fault(&fi), 0);
    expect_true("vmsrs_last_fault", "after_fault_fields",
                fi.signal == VMSRS_KIND_SEGV && fi.addr == 0x1234 && fi.user == u &&
                    fi.action == VMSRS_ACTION_EXPLICIT && fi.sequence == 1 && fi.pc == 0,
                "matches", "fields do not describe the explicit fault");
    expect_code("vmsrs_user_end", "explicit_fault", vmsrs_user_end(), VMSRS_FAULTED);
    expect_code("vmsrs_last_fault", "null_after_fault", vmsrs_last_fault(NULL), VMSRS_ENULL);
}

/* ----- case: recovery ------------------------------------------------------------------- */

#define R_WORDS 16
#define R_BYTES (R_WORDS * sizeof(uint64_t))
/* The table sits inside a larger static block, so its neighbours are mapped memory. */
static uint64_t r_space[R_WORDS + 4] __attribute__((aligned(64)));
static uint64_t *const r_table = r_space + 2;
static uint64_t r_orig[R_WORDS];
static uint64_t r_mine[R_WORDS];

/* Every bad call of the other cases, against the live table. None may disturb user A. */
static void bad_calls(const char *where, int on_users_thread)
{
    char cs[128];
#define CS(name) (snprintf(cs, sizeof cs, "%s@%s", (name), where), cs)
    uint8_t buf[64];
    uint8_t *t = (uint8_t *)r_table;
    struct vmsrs_exposure ex[4];
    struct vmsrs_fault_info fi;
    size_t total;
    void *area;
    size_t alen;
    memset(buf, 0x5a, sizeof buf);

    expect_code("vmsrs_init_profile", CS("again_null"), vmsrs_init_profile(NULL), VMSRS_EALREADY);
    expect_code("vmsrs_init_profile", CS("again_missing_file"), vmsrs_init_profile(NONEXISTENT_ENV),
                VMSRS_EALREADY);
    expect_code("vmsrs_profile", CS("null_addr"), vmsrs_profile(NULL, 8, "x"), VMSRS_ENULL);
    expect_code("vmsrs_profile", CS("zero_len"), vmsrs_profile(t, 0, "x"), VMSRS_EZEROLEN);
    expect_code("vmsrs_profile", CS("duplicate"), vmsrs_profile(t, R_BYTES, "dup"), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", CS("contained"), vmsrs_profile(t + 9, 4, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", CS("containing"), vmsrs_profile(t - 8, R_BYTES + 16, NULL),
                VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", CS("partial_left"), vmsrs_profile(t - 4, 8, NULL), VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", CS("partial_right"), vmsrs_profile(t + R_BYTES - 4, 8, NULL),
                VMSRS_EOVERLAP);
    expect_code("vmsrs_profile", CS("unmapped"), vmsrs_profile(unmapped_page(), 4096, NULL), VMSRS_EBADRANGE);
    expect_code("vmsrs_profile", CS("wraps"), vmsrs_profile(t, SIZE_MAX, NULL), VMSRS_EINVAL);
    expect_code("vmsrs_unprofile", CS("null"), vmsrs_unprofile(NULL), VMSRS_ENULL);
    expect_code("vmsrs_unprofile", CS("inside_range"), vmsrs_unprofile(t + 8), VMSRS_ENOTPROFILED);
    expect_code("vmsrs_unprofile", CS("unknown"), vmsrs_unprofile(buf), VMSRS_ENOTPROFILED);
    if (on_users_thread) {
        expect_code("vmsrs_user_begin", CS("double_begin"), vmsrs_user_begin(), VMSRS_EINUSER);
        expect_code("VMSRS_USER_BEGIN", CS("double_begin_macro"), VMSRS_USER_BEGIN(), VMSRS_EINUSER);
    } else {
        expect_code("vmsrs_user_end", CS("end_without_begin"), vmsrs_user_end(), VMSRS_ENOUSER);
        expect_code("vmsrs_user_begin", CS("begin"), vmsrs_user_begin(), 0);
        expect_code("vmsrs_user_begin", CS("double_begin"), vmsrs_user_begin(), VMSRS_EINUSER);
        expect_code("vmsrs_user_end", CS("end"), vmsrs_user_end(), 0);
        expect_code("vmsrs_user_end", CS("end_twice"), vmsrs_user_end(), VMSRS_ENOUSER);
    }
    expect_code("vmsrs_crash_suppression", CS("kind_99"), vmsrs_crash_suppression(99, NULL), VMSRS_EINVAL);
    expect_code("vmsrs_crash_suppression", CS("kind_-1"), vmsrs_crash_suppression(-1, t), VMSRS_EINVAL);
    expect_code("vmsrs_load", CS("null_dst"), vmsrs_load(NULL, t, 8), VMSRS_ENULL);
    expect_code("vmsrs_load", CS("null_src"), vmsrs_load(buf, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_load", CS("zero_len"), vmsrs_load(buf, t, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_store", CS("null_src"), vmsrs_store(t, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_store", CS("null_dst"), vmsrs_store(NULL, buf, 8), VMSRS_ENULL);
    expect_code("vmsrs_store", CS("zero_len"), vmsrs_store(t, buf, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_assign", CS("null_src"), vmsrs_assign(t, NULL, 8), VMSRS_ENULL);
    expect_code("vmsrs_assign", CS("null_dst"), vmsrs_assign(NULL, t, 8), VMSRS_ENULL);
    expect_code("vmsrs_assign", CS("zero_len"), vmsrs_assign(t, t + 8, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_stats", CS("null"), vmsrs_stats(NULL), VMSRS_ENULL);
    expect_code("vmsrs_last_fault", CS("null"), vmsrs_last_fault(NULL), VMSRS_ENULL);
    expect_code("vmsrs_last_fault", CS("no_fault_yet"), vmsrs_last_fault(&fi), VMSRS_ENOFAULT);
    expect_code("vmsrs_exposures", CS("null_out_cap4"), vmsrs_exposures(NULL, 4, &total), VMSRS_ENULL);
    expect_code("vmsrs_exposures", CS("null_out_cap0"), vmsrs_exposures(NULL, 0, &total), 0);
    expect_code("vmsrs_exposures", CS("valid"), vmsrs_exposures(ex, 4, &total), 0);
    expect_null_err("vmsrs_memcpy", CS("null_src"), vmsrs_memcpy(t, NULL, 8), VMSRS_ENULL);
    expect_null_err("vmsrs_memcpy", CS("null_dst"), vmsrs_memcpy(NULL, t, 8), VMSRS_ENULL);
    expect_null_err("vmsrs_memset", CS("null_dst"), vmsrs_memset(NULL, 0, 8), VMSRS_ENULL);
    expect_null_err("vmsrs_memmove", CS("null_src"), vmsrs_memmove(t, NULL, 8), VMSRS_ENULL);
    expect_null_err("vmsrs_memmove", CS("null_dst"), vmsrs_memmove(NULL, t, 8), VMSRS_ENULL);
    expect_ptr("vmsrs_memcpy", CS("zero_len"), vmsrs_memcpy(t, buf, 0), t);
    expect_ptr("vmsrs_memset", CS("zero_len"), vmsrs_memset(t, 0, 0), t);
    expect_null_err("vmsrs_ptr_add", CS("null"), vmsrs_ptr_add(NULL, 1), VMSRS_ENULL);
    expect_ptr("vmsrs_ptr_add", CS("in_range"), vmsrs_ptr_add(t, 8), t + 8);
    expect_code("vmsrs_ptr_check", CS("null"), vmsrs_ptr_check(NULL, 1), VMSRS_ENULL);
    expect_code("vmsrs_ptr_check", CS("zero_len"), vmsrs_ptr_check(t, 0), VMSRS_EZEROLEN);
    expect_code("vmsrs_ptr_check", CS("in_range"), vmsrs_ptr_check(t, R_BYTES), 0);
    expect_code("vmsrs_debug_recovery_area", CS("null_addr"), vmsrs_debug_recovery_area(NULL, &area, &alen),
                VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", CS("null_area"), vmsrs_debug_recovery_area(t, NULL, &alen),
                VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", CS("null_len"), vmsrs_debug_recovery_area(t, &area, NULL),
                VMSRS_ENULL);
    expect_code("vmsrs_debug_recovery_area", CS("unprofiled"), vmsrs_debug_recovery_area(buf, &area, &alen),
                VMSRS_ENOTPROFILED);
    const char *s = vmsrs_strerror(-999);
    expect_true("vmsrs_strerror", CS("unknown"), s != NULL && *s != '\0', "non-empty", "NULL or empty");
#undef CS
}

static void *bad_calls_thread(void *arg)
{
    (void)arg;
    /* While A is active (not faulted) a normal user sees A's stores (G3). */
    read_as_normal("other_thread_sees_active_a", r_table, r_mine, R_WORDS);
    bad_calls("other_thread", 0);
    return NULL;
}

static void case_recovery(void)
{
    for (int i = 0; i < R_WORDS; i++) {
        r_table[i] = 0x1000 + (uint64_t)i;
        r_orig[i] = r_table[i];
        r_mine[i] = 0xa000 + (uint64_t)i;
    }
    init_ok();
    expect_code("vmsrs_profile", "setup", vmsrs_profile(r_table, R_BYTES, "r_table"), 0);

    expect_code("vmsrs_user_begin", "user_a", vmsrs_user_begin(), 0);
    uint64_t a = vmsrs_user_current();
    for (int i = 0; i < 8; i++)
        vmsrs_store64(&r_table[i], r_mine[i]);
    expect_code("vmsrs_store", "user_a", vmsrs_store(&r_table[8], &r_mine[8], 4 * sizeof(uint64_t)), 0);
    expect_ptr("vmsrs_memcpy", "user_a", vmsrs_memcpy(&r_table[12], &r_mine[12], 4 * sizeof(uint64_t)),
               &r_table[12]);
    struct vmsrs_stats before = stats_now("before_bad_calls");

    bad_calls("user_a_thread", 1);
    on_thread(bad_calls_thread, NULL);

    struct vmsrs_stats after = stats_now("after_bad_calls");
    expect_unchanged("vmsrs_stats", "bad_calls_keep_history", after.history_entries, before.history_entries);
    expect_u64("vmsrs_stats", "bad_calls_keep_ranges", after.ranges, 1);
    expect_u64("vmsrs_stats", "bad_calls_fault_nobody", after.users_faulted, 0);
    expect_u64("vmsrs_stats", "bad_calls_no_corruption", after.corruptions, 0);
    expect_true("vmsrs_user_current", "user_a_survives_bad_calls", vmsrs_user_current() == a, "same",
                "a bad call changed the current user");
    expect_int("vmsrs_user_suppressed", "user_a_survives_bad_calls", vmsrs_user_suppressed(), 0);
    for (int i = 0; i < R_WORDS; i++)
        if (vmsrs_load64(&r_table[i]) != r_mine[i])
            say_fail("vmsrs_load64", "user_a_view_after_bad_calls", "word %d lost", i);
    say_ok("vmsrs_load64", "user_a_view_after_bad_calls", "A's values");

    /* Fault A: its writes are withdrawn; restoration still works. */
    expect_code("vmsrs_crash_suppression", "user_a", vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), 0);
    expect_int("vmsrs_user_suppressed", "user_a_faulted", vmsrs_user_suppressed(), 1);
    read_as_normal("normal_reader_while_a_faulted", r_table, r_orig, R_WORDS);
    for (int i = 0; i < R_WORDS; i++)
        if (vmsrs_load64(&r_table[i]) != r_mine[i])
            say_fail("vmsrs_load64", "faulted_a_sees_own_stores", "word %d", i);
    say_ok("vmsrs_load64", "faulted_a_sees_own_stores", "A's values");
    expect_code("vmsrs_user_end", "user_a", vmsrs_user_end(), VMSRS_FAULTED);

    expect_code("vmsrs_user_begin", "user_b", vmsrs_user_begin(), 0);
    for (int i = 0; i < R_WORDS; i++)
        if (vmsrs_load64(&r_table[i]) != r_orig[i])
            say_fail("vmsrs_load64", "user_b_reads_original", "word %d: 0x%llx", i,
                     (unsigned long long)vmsrs_load64(&r_table[i]));
    say_ok("vmsrs_load64", "user_b_reads_original", "original");
    expect_code("vmsrs_user_end", "user_b", vmsrs_user_end(), 0);
    read_as_normal("normal_reader_after_a_ended", r_table, r_orig, R_WORDS);
    expect_true("raw", "original_after_cleanup", memcmp(r_table, r_orig, R_BYTES) == 0, "original",
                "raw memory still holds A's values after its end");
    struct vmsrs_stats end = stats_now("end");
    expect_u64("vmsrs_stats", "corruptions", end.corruptions, 0);
    expect_u64("vmsrs_stats", "users_faulted", end.users_faulted, 1);
    expect_u64("vmsrs_stats", "users_collected", end.users_collected, 1);
    expect_true("vmsrs_stats", "restorations", end.restorations > 0, "> 0", "no restoration counted");
    expect_u64("vmsrs_stats", "users_suppressed_now", end.users_suppressed_now, 0);
}

/* ----- case: plain ---------------------------------------------------------------------- */

static uint64_t pl_table[4] __attribute__((aligned(64))) = { 71, 72, 73, 74 };
static uint8_t *pl_heap;
static uint8_t pl_ref_f[128];
static pthread_barrier_t pl_barrier;

/* Plain-access battery on `h` (unprofiled, 128 bytes); `ref` mirrors it with libc calls. */
static void plain_ops(const char *who, uint8_t *h, uint8_t ref[128])
{
    char cs[96];
#define PCS(name) (snprintf(cs, sizeof cs, "%s_%s", who, (name)), cs)
    uint8_t tmp[64];
    for (int i = 0; i < 128; i++)
        h[i] = (uint8_t)(i ^ 0x3c);
    memcpy(ref, h, 128);

    vmsrs_store64((uint64_t *)h, 0x8877665544332211ull);
    memcpy(ref, &(uint64_t){ 0x8877665544332211ull }, 8);
    expect_u64("vmsrs_load64", PCS("aligned"), vmsrs_load64((uint64_t *)h), 0x8877665544332211ull);
    vmsrs_store64((uint64_t *)(h + 9), 0x0123456789abcdefull);
    memcpy(ref + 9, &(uint64_t){ 0x0123456789abcdefull }, 8);
    expect_u64("vmsrs_load64", PCS("misaligned"), vmsrs_load64((uint64_t *)(h + 9)), 0x0123456789abcdefull);
    vmsrs_store32((uint32_t *)(h + 21), 0xcafef00d);
    memcpy(ref + 21, &(uint32_t){ 0xcafef00d }, 4);
    expect_u64("vmsrs_load32", PCS("misaligned"), vmsrs_load32((uint32_t *)(h + 21)), 0xcafef00d);
    vmsrs_store16((uint16_t *)(h + 27), 0xbeef);
    memcpy(ref + 27, &(uint16_t){ 0xbeef }, 2);
    expect_u64("vmsrs_load16", PCS("misaligned"), vmsrs_load16((uint16_t *)(h + 27)), 0xbeef);
    vmsrs_store8(h + 31, 0x99);
    ref[31] = 0x99;
    expect_u64("vmsrs_load8", PCS("byte"), vmsrs_load8(h + 31), 0x99);

    for (int i = 0; i < 24; i++)
        tmp[i] = (uint8_t)(0xd0 + i);
    expect_code("vmsrs_store", PCS("block"), vmsrs_store(h + 40, tmp, 24), 0);
    memcpy(ref + 40, tmp, 24);
    memset(tmp, 0, sizeof tmp);
    expect_code("vmsrs_load", PCS("block"), vmsrs_load(tmp, h + 40, 24), 0);
    expect_true("vmsrs_load", PCS("block_bytes"), memcmp(tmp, ref + 40, 24) == 0, "equal", "bytes differ");
    expect_code("vmsrs_assign", PCS("overlap_forward"), vmsrs_assign(h + 50, h + 40, 20), 0);
    memmove(ref + 50, ref + 40, 20);
    expect_code("vmsrs_assign", PCS("overlap_backward"), vmsrs_assign(h + 38, h + 44, 20), 0);
    memmove(ref + 38, ref + 44, 20);
    expect_ptr("vmsrs_memset", PCS("block"), vmsrs_memset(h + 70, 0xcd, 10), h + 70);
    memset(ref + 70, 0xcd, 10);
    expect_ptr("vmsrs_memcpy", PCS("block"), vmsrs_memcpy(h + 80, h, 16), h + 80);
    memcpy(ref + 80, ref, 16);
    expect_ptr("vmsrs_memmove", PCS("overlap"), vmsrs_memmove(h + 2, h, 30), h + 2);
    memmove(ref + 2, ref, 30);
    expect_ptr("vmsrs_memcpy", PCS("from_monitored"), vmsrs_memcpy(h + 100, &pl_table[1], 8), h + 100);
    memcpy(ref + 100, &(uint64_t){ 72 }, 8);
    expect_true("raw", PCS("all_bytes_plain"), memcmp(h, ref, 128) == 0, "equal",
                "unprofiled memory differs from the plain-libc reference");
    memset(tmp, 0, sizeof tmp);
    expect_code("vmsrs_load", PCS("all"), vmsrs_load(tmp, h + 64, 64), 0);
    expect_true("vmsrs_load", PCS("all_bytes"), memcmp(tmp, ref + 64, 64) == 0, "equal", "bytes differ");

    uint64_t stack_word = 5;
    vmsrs_store64(&stack_word, 6);
    expect_u64("vmsrs_load64", PCS("stack"), vmsrs_load64(&stack_word), 6);
#undef PCS
}

static void *plain_faulty_user(void *arg)
{
    (void)arg;
    expect_code("vmsrs_user_begin", "faulty_f", vmsrs_user_begin(), 0);
    vmsrs_store64(&pl_table[0], 0xf00);
    expect_code("vmsrs_crash_suppression", "faulty_f", vmsrs_crash_suppression(VMSRS_KIND_EXPLICIT, NULL), 0);
    struct vmsrs_stats s0 = stats_now("faulted_f_before");
    plain_ops("faulted_user", pl_heap + 128, pl_ref_f);
    struct vmsrs_stats s1 = stats_now("faulted_f_after");
    expect_unchanged("vmsrs_stats", "faulted_user_plain_no_shadow", s1.shadow_stores, s0.shadow_stores);
    expect_unchanged("vmsrs_stats", "faulted_user_plain_no_history", s1.history_entries, s0.history_entries);
    vmsrs_store64(&pl_table[2], 0xf02); /* a monitored store goes to the shadow */
    struct vmsrs_stats s2 = stats_now("faulted_f_shadow");
    expect_true("vmsrs_stats", "faulted_user_monitored_store_shadowed", s2.shadow_stores > s1.shadow_stores,
                "shadowed", "shadow_stores did not grow");
    pthread_barrier_wait(&pl_barrier); /* F is faulted and done */
    pthread_barrier_wait(&pl_barrier); /* main is done */
    expect_code("vmsrs_user_end", "faulty_f", vmsrs_user_end(), VMSRS_FAULTED);
    return NULL;
}

static void case_plain(void)
{
    init_ok();
    pl_heap = malloc(256);
    expect_code("vmsrs_profile", "setup", vmsrs_profile(pl_table, sizeof pl_table, "pl"), 0);
    uint8_t ref[128];
    plain_ops("no_fault", pl_heap, ref);

    pthread_barrier_init(&pl_barrier, NULL, 2);
    pthread_t f;
    pthread_create(&f, NULL, plain_faulty_user, NULL);
    pthread_barrier_wait(&pl_barrier);
    expect_u64("vmsrs_load64", "monitored_withdrawn", vmsrs_load64(&pl_table[0]), 71);
    struct vmsrs_stats s0 = stats_now("other_faulted_before");
    expect_u64("vmsrs_stats", "one_user_suppressed", s0.users_suppressed_now, 1);
    plain_ops("other_faulted", pl_heap, ref);
    struct vmsrs_stats s1 = stats_now("other_faulted_after");
    expect_unchanged("vmsrs_stats", "plain_no_history", s1.history_entries, s0.history_entries);
    expect_unchanged("vmsrs_stats", "plain_no_restorations", s1.restorations, s0.restorations);
    pthread_barrier_wait(&pl_barrier);
    pthread_join(f, NULL);
    /* The faulted user's plain stores to unprofiled memory are not withdrawn. */
    expect_true("raw", "faulted_users_plain_stores_kept", memcmp(pl_heap + 128, pl_ref_f, 128) == 0, "kept",
                "a faulted user's stores to unprofiled memory were changed at its end");
    expect_true("raw", "normal_users_plain_stores_kept", memcmp(pl_heap, ref, 128) == 0, "kept",
                "unprofiled memory changed when the faulted user ended");
    uint64_t want[4] = { 71, 72, 73, 74 };
    read_as_normal("monitored_after_f_ended", pl_table, want, 4);
    free(pl_heap);
}

/* ----- case: output --------------------------------------------------------------------- */

static void case_output(void)
{
    init_ok();
    int n = -7;
    int r = vmsrs_printf("bad_input %s%n\n", "percent_n", &n);
    char shown[32];
    snprintf(shown, sizeof shown, "%d", r);
    expect_true("vmsrs_printf", "percent_n_refused", r < 0 && n == -7, shown,
                "%n was not refused (or wrote its argument)");
    r = vmsrs_fprintf(stdout, "bad_input %s\n", "plain");
    expect_true("vmsrs_fprintf", "plain", r == (int)strlen("bad_input plain\n"), "16", "wrong count");
}

/* ----- main ----------------------------------------------------------------------------- */

struct named_case {
    const char *name;
    void (*run)(void);
};

static const struct named_case cases[] = {
    { "uninit", case_uninit },
    { "init_missing_file", case_init_missing_file },
    { "init_bad_policy", case_init_bad_policy },
    { "init_syntax_error", case_init_syntax_error },
    { "init_unsupported_host", case_init_unsupported_host },
    { "init_twice", case_init_twice },
    { "init_non_utf8_path", case_init_non_utf8_path },
    { "null", case_null },
    { "last_error_scope", case_last_error_scope },
    { "zero_len", case_zero_len },
    { "huge_len", case_huge_len },
    { "realloc_bounds", case_realloc_bounds },
    { "overlap", case_overlap },
    { "shared_granule", case_shared_granule },
    { "too_many_ranges", case_too_many_ranges },
    { "own_state", case_own_state },
    { "unprofile", case_unprofile },
    { "users", case_users },
    { "double_begin_unwind", case_double_begin_unwind },
    { "crash_kind", case_crash_kind },
    { "strerror", case_strerror },
    { "last_fault", case_last_fault },
    { "recovery", case_recovery },
    { "plain", case_plain },
    { "output", case_output },
};

extern char **environ;

/* The checks assume the built-in defaults: drop any VMSRS_* settings inherited. */
static void clear_vmsrs_environment(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "VMSRS_", 6) == 0) {
                const char *eq = strchr(*e, '=');
                size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
                if (len < sizeof name) {
                    memcpy(name, *e, len);
                    name[len] = '\0';
                    break;
                }
            }
        }
        if (!name[0])
            return;
        unsetenv(name);
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *kg = getenv("BAD_INPUT_KEEP_GOING");
    keep_going = kg && *kg && strcmp(kg, "0") != 0;
    clear_vmsrs_environment();
    if (argc != 2) {
        fprintf(stderr, "usage: %s <case>   (%s list)\n", argv[0], argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(argv[1], cases[i].name) == 0) {
            cases[i].run();
            if (failures) {
                printf("FAILED %s: %d check(s)\n", cases[i].name, failures);
                return 1;
            }
            printf("done %s\n", cases[i].name);
            return 0;
        }
    }
    fprintf(stderr, "unknown case '%s'\n", argv[1]);
    return 2;
}
