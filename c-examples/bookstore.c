/*
 * bookstore.c -- the online bookstore of the paper's §5.3 (VMSRS, SHI Yi et al., J. Software
 * 2015): 20 users of one server share a table of books (title, stock, copies sold) in
 * monitored memory. Users 1 and 7 crash in the middle of a purchase, after they decremented
 * the stock of some books and before they finished; users 3, 9, 12 and 18 buy books; the
 * other users only browse.
 *
 * Orchestration, so that every read has one correct answer:
 * - the 20 users are threads, all connected (begun) at once; they take their turn in id
 *   order (user 1 first). A user's turn is: browse (read and check the whole table), then
 *   buy if it is a buyer. The expected table at a browse is the initial stock minus the
 *   purchases of the buyers with a smaller id -- never any of user 1's or 7's decrements;
 * - a crashed user under the oblivious policy runs on suppressed: it finishes its (now
 *   private) purchase, passes the turn, and stays connected until every user had its turn,
 *   so the later users read while its writes are still withdrawn on demand. Under unwind it
 *   is back at its recovery point and passes the turn from there;
 * - three auditor threads (normal users outside the 20) read the table without pause. A read
 *   that started and ended between two turns must equal the table after the earlier turn;
 * - at the end the 20 users browse concurrently; the final stock must be the initial stock
 *   minus the purchases of users 3, 9, 12 and 18 exactly, in the monitored view and in raw
 *   memory.
 *
 * Output (line-buffered): "user N browse: s0 s1 s2 s3 s4 s5" per browse, "user N bought ...",
 * "user N failed: ..." for the crashed users, "final stock: ...", "bookstore: PASS". Exit 0
 * when every check held, 1 with "FAIL: why" on stderr at the first violation.
 */
#define _GNU_SOURCE
#include "vmsrs.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { N_BOOKS = 6, N_USERS = 20, N_AUDITORS = 3, MAX_ITEMS = 4 };

struct book {
    char title[48];
    int32_t stock;
    int32_t sold;
};

static const struct book BOOKS_INITIAL[N_BOOKS] = {
    {"The C Programming Language", 10, 0},
    {"Structure and Interpretation of Programs", 8, 0},
    {"The Art of Computer Programming", 5, 0},
    {"Introduction to Algorithms", 12, 0},
    {"Compilers: Principles and Tools", 7, 0},
    {"Operating System Concepts", 9, 0},
};

struct item {
    int book; /* index into the table; the crashing requests carry an out-of-range one */
    int qty;
};

/* Who buys what. Book numbers 9 and 11 are past the table: the server indexes it without a
 * bounds check and reads the guard page behind it (a real SIGSEGV). */
struct plan {
    int user;
    int n;
    struct item items[MAX_ITEMS];
};
static const struct plan PLANS[] = {
    {1, 4, {{0, 2}, {3, 1}, {9, 1}, {5, 1}}},  /* crashes at the 3rd item */
    {3, 2, {{0, 1}, {2, 2}}},
    {7, 4, {{2, 1}, {4, 2}, {11, 1}, {1, 1}}}, /* crashes at the 3rd item */
    {9, 1, {{3, 1}}},
    {12, 2, {{0, 3}, {4, 1}}},
    {18, 2, {{5, 1}, {3, 2}}},
};
#define N_PLANS (sizeof PLANS / sizeof PLANS[0])

static int is_faulty(int user) { return user == 1 || user == 7; }

static const struct plan *plan_of(int user) {
    for (size_t i = 0; i < N_PLANS; i++)
        if (PLANS[i].user == user) return &PLANS[i];
    return NULL;
}

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fputs("FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static struct book *books; /* monitored; followed by a guard page */

/* model[j]: the table once users 1..j had their turn (only non-faulty buyers change it). */
static struct book model[N_USERS + 1][N_BOOKS];

static void build_model(void) {
    memcpy(model[0], BOOKS_INITIAL, sizeof BOOKS_INITIAL);
    for (int j = 1; j <= N_USERS; j++) {
        memcpy(model[j], model[j - 1], sizeof model[j]);
        const struct plan *p = plan_of(j);
        if (!p || is_faulty(j)) continue;
        for (int i = 0; i < p->n; i++) {
            model[j][p->items[i].book].stock -= p->items[i].qty;
            model[j][p->items[i].book].sold += p->items[i].qty;
        }
    }
}

static int same_table(const struct book *a, const struct book *b) {
    for (int i = 0; i < N_BOOKS; i++)
        if (a[i].stock != b[i].stock || a[i].sold != b[i].sold || strcmp(a[i].title, b[i].title) != 0)
            return 0;
    return 1;
}

static void format_stock(const struct book *t, char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < N_BOOKS && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%d", i ? " " : "", t[i].stock);
}

/* ---- turns --------------------------------------------------------------------------- */

static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static int turn = 1;                /* whose turn it is; N_USERS + 1 once all had theirs */
static int released;                /* lingering (suppressed) users may end */
static atomic_long epoch;           /* 2(j-1)+1 during user j's turn, 2j after it */

static void wait_until(int *var, int value, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&turn_lock);
    while (*var < value)
        if (pthread_cond_timedwait(&turn_cond, &turn_lock, &ts) == ETIMEDOUT) fail("timed out waiting for %s", what);
    pthread_mutex_unlock(&turn_lock);
}

static void set_and_wake(int *var, int value) {
    pthread_mutex_lock(&turn_lock);
    *var = value;
    pthread_cond_broadcast(&turn_cond);
    pthread_mutex_unlock(&turn_lock);
}

/* ---- users --------------------------------------------------------------------------- */

struct user {
    int id;
    int turn_passed;
    int told_failed;
    uint64_t vmsrs_id;
};

static void pass_turn(struct user *u) {
    if (u->turn_passed) return;
    u->turn_passed = 1;
    atomic_store(&epoch, 2L * u->id);
    set_and_wake(&turn, u->id + 1);
}

/* Read the whole table as this user sees it. */
static void snapshot(struct book out[N_BOOKS]) {
    int rc = vmsrs_load(out, books, sizeof(struct book) * N_BOOKS);
    if (rc != 0) fail("vmsrs_load: %s", vmsrs_strerror(rc));
}

static void browse(struct user *u) {
    struct book seen[N_BOOKS];
    char line[128];
    snapshot(seen);
    format_stock(seen, line, sizeof line);
    vmsrs_printf("user %d browse: %s\n", u->id, line);
    if (!same_table(seen, model[u->id - 1])) {
        char want[128];
        format_stock(model[u->id - 1], want, sizeof want);
        fail("user %d browsed stock %s, expected %s (after users 1..%d)", u->id, line, want, u->id - 1);
    }
}

/* The purchase request. No bounds check on the book number: the server bug. */
static void buy(struct user *u, const struct plan *p) {
    for (int i = 0; i < p->n; i++) {
        struct book *b = &books[p->items[i].book];
        int qty = p->items[i].qty;
        int32_t stock = VMSRS_GET(b->stock); /* out-of-range book: SIGSEGV on the guard page */
        if (stock < qty) {
            vmsrs_printf("user %d: book #%d has %d left, wanted %d: skipped\n", u->id, p->items[i].book, stock,
                         qty);
            continue;
        }
        VMSRS_SET(b->stock, stock - qty);
        VMSRS_SET(b->sold, VMSRS_GET(b->sold) + qty);
        vmsrs_printf("user %d bought %d x \"%s\"\n", u->id, qty, BOOKS_INITIAL[p->items[i].book].title);
    }
}

static void *user_thread(void *arg) {
    struct user *u = arg;
    int rc = VMSRS_USER_BEGIN(); /* the user connects */
    if (rc == VMSRS_FAULTED) {   /* unwind policy: the crashed purchase came back here */
        u->told_failed = 1;
        printf("user %d failed: its purchase crashed and was contained; VMSRS_USER_BEGIN() returned "
               "VMSRS_FAULTED\n",
               u->id);
        pass_turn(u);
        return NULL;
    }
    if (rc < 0) fail("user %d: VMSRS_USER_BEGIN: %s", u->id, vmsrs_strerror(rc));
    u->vmsrs_id = vmsrs_user_current();

    wait_until(&turn, u->id, "my turn");
    atomic_store(&epoch, 2L * u->id - 1);
    browse(u);
    const struct plan *p = plan_of(u->id);
    if (p) buy(u, p);
    if (is_faulty(u->id) && !vmsrs_user_suppressed()) fail("user %d: its purchase did not crash", u->id);
    pass_turn(u);
    if (vmsrs_user_suppressed()) wait_until(&released, 1, "the end of all turns"); /* linger */

    rc = vmsrs_user_end();
    if (rc == VMSRS_FAULTED) {
        u->told_failed = 1;
        printf("user %d failed: its purchase crashed and was contained; vmsrs_user_end() returned "
               "VMSRS_FAULTED\n",
               u->id);
    } else if (rc != 0) {
        fail("user %d: vmsrs_user_end: %s", u->id, vmsrs_strerror(rc));
    }
    return NULL;
}

/* ---- auditors ------------------------------------------------------------------------ */

static atomic_int auditors_stop;
static atomic_long audited, audit_skipped;

static void *auditor(void *arg) {
    (void)arg;
    if (vmsrs_user_begin() != 0) fail("auditor: vmsrs_user_begin");
    while (!atomic_load(&auditors_stop)) {
        struct book seen[N_BOOKS];
        long e1 = atomic_load(&epoch);
        snapshot(seen);
        long e2 = atomic_load(&epoch);
        if (e1 != e2 || (e1 & 1)) { /* a turn was in progress */
            atomic_fetch_add(&audit_skipped, 1);
            continue;
        }
        if (!same_table(seen, model[e1 / 2])) {
            char got[128], want[128];
            format_stock(seen, got, sizeof got);
            format_stock(model[e1 / 2], want, sizeof want);
            fail("auditor read stock %s between turns %ld and %ld, expected %s", got, e1 / 2, e1 / 2 + 1, want);
        }
        atomic_fetch_add(&audited, 1);
    }
    if (vmsrs_user_end() != 0) fail("auditor: vmsrs_user_end");
    return NULL;
}

/* ---- the final concurrent browse -------------------------------------------------------- */

static void *final_browse(void *arg) {
    (void)arg;
    struct book seen[N_BOOKS];
    if (vmsrs_user_begin() != 0) fail("final browse: vmsrs_user_begin");
    snapshot(seen);
    if (vmsrs_user_end() != 0) fail("final browse: vmsrs_user_end");
    if (!same_table(seen, model[N_USERS])) fail("a final concurrent browse saw a wrong table");
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    build_model();

    /* The table at the end of a page, a guard page behind it. */
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + page, (size_t)page, PROT_NONE) != 0) fail("mmap");
    books = (struct book *)(m + page - sizeof BOOKS_INITIAL);
    memcpy(books, BOOKS_INITIAL, sizeof BOOKS_INITIAL);

    int rc = vmsrs_init_profile(NULL);
    if (rc != 0) fail("vmsrs_init_profile: %s", vmsrs_strerror(rc));
    rc = vmsrs_profile(books, sizeof BOOKS_INITIAL, "books");
    if (rc != 0) fail("vmsrs_profile: %s", vmsrs_strerror(rc));

    char line[128];
    format_stock(books, line, sizeof line);
    printf("bookstore open: %d books, stock %s; users 1 and 7 will crash mid-purchase; users 3, 9, 12, "
           "18 buy; the others browse\n",
           N_BOOKS, line);

    pthread_t auditors[N_AUDITORS], threads[N_USERS];
    struct user users[N_USERS];
    for (int i = 0; i < N_AUDITORS; i++)
        if (pthread_create(&auditors[i], NULL, auditor, NULL) != 0) fail("pthread_create");
    for (int i = 0; i < N_USERS; i++) {
        users[i] = (struct user){.id = i + 1};
        if (pthread_create(&threads[i], NULL, user_thread, &users[i]) != 0) fail("pthread_create");
    }
    wait_until(&turn, N_USERS + 1, "all turns");
    set_and_wake(&released, 1);
    for (int i = 0; i < N_USERS; i++) pthread_join(threads[i], NULL);
    atomic_store(&auditors_stop, 1);
    for (int i = 0; i < N_AUDITORS; i++) pthread_join(auditors[i], NULL);

    for (int i = 0; i < N_USERS; i++)
        if (users[i].told_failed != is_faulty(users[i].id))
            fail("user %d: told_failed=%d, faulty=%d", users[i].id, users[i].told_failed, is_faulty(users[i].id));

    /* All 20 users browse at once; then the final stock, in the monitored view and raw. */
    for (int i = 0; i < N_USERS; i++)
        if (pthread_create(&threads[i], NULL, final_browse, NULL) != 0) fail("pthread_create");
    for (int i = 0; i < N_USERS; i++) pthread_join(threads[i], NULL);
    struct book final_view[N_BOOKS];
    snapshot(final_view);
    if (!same_table(final_view, model[N_USERS])) fail("final stock differs from initial - purchases of 3, 9, 12, 18");
    if (!same_table(books, model[N_USERS])) fail("raw memory differs from initial - purchases of 3, 9, 12, 18");

    struct vmsrs_stats st;
    rc = vmsrs_stats(&st);
    if (rc != 0) fail("vmsrs_stats: %s", vmsrs_strerror(rc));
    if (st.users_faulted != 2) fail("users_faulted=%llu, expected 2", (unsigned long long)st.users_faulted);
    if (st.corruptions != 0)
        fail("libvmsrs reported %llu corruption(s); nothing touched recovery data", (unsigned long long)st.corruptions);
    if (atomic_load(&audited) == 0) fail("the auditors made no read between turns");

    format_stock(final_view, line, sizeof line);
    printf("final stock: %s\n", line);
    for (int i = 0; i < N_BOOKS; i++)
        printf("  %-42s stock %2d  sold %d\n", final_view[i].title, final_view[i].stock, final_view[i].sold);
    printf("auditors: %ld reads between turns matched the expected table (%ld overlapped a turn)\n",
           atomic_load(&audited), atomic_load(&audit_skipped));
    printf("vmsrs stats: users_faulted=%llu users_collected=%llu restorations=%llu faults_contained=%llu\n",
           (unsigned long long)st.users_faulted, (unsigned long long)st.users_collected,
           (unsigned long long)st.restorations, (unsigned long long)st.faults_contained);
    printf("bookstore: PASS\n");
    return 0;
}
