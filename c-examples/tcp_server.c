/*
 * tcp_server.c -- a multi-threaded TCP bookstore server on 127.0.0.1, protected by libvmsrs
 * (the networked form of the paper's §5.3 experiment, and the README demo).
 *
 * One thread per connection; each connection is one libvmsrs user, begun with
 * VMSRS_USER_BEGIN() at the start of the connection handler (its recovery point) and ended
 * when the connection ends. The stock of the books is shared by all connections and lives in
 * monitored memory. Line protocol (one request line, one reply line):
 *
 *   LIST             -> OK LIST KR:10 SICP:8 ...          (code:stock for every book)
 *   BUY <code> <n>   -> OK BUY <code> <n> left=<stock>    | ERR ...
 *   BADBUY <code> <n>   a buggy request: writes the shared stock, then stores through a NULL
 *                       order pointer (a real SIGSEGV). With libvmsrs the session is contained
 *                       and gets "ERR request failed: your session faulted and was contained",
 *                       its stock write is withdrawn, and the server goes on; without libvmsrs
 *                       (-DVMSRS_DISABLE) the whole server dies.
 *   STATS            -> OK STATS users_faulted=... faults_contained=... restorations=... ...
 *   QUIT             -> OK bye (and the connection closes)
 *
 * Under VMSRS_POLICY=unwind the crashed handler comes back to VMSRS_USER_BEGIN(), which
 * returns VMSRS_FAULTED; under oblivious the faulting store is skipped and the handler learns
 * of the fault from vmsrs_user_suppressed() after the request. Either way the stock lock the
 * request held is released and the client gets the ERR line.
 *
 * Usage: tcp_server [PORT] [--idle-exit SECONDS]
 *   PORT 0 (default) picks an ephemeral port. The first stdout line is always
 *   "listening on 127.0.0.1:PORT". The server exits by itself (status 0) after SECONDS
 *   (default 60) without any connection, so a forgotten server never lingers.
 * Stdout is a transcript: who connects, what each session asks and gets, and the contained
 * faults (libvmsrs's own fault report goes to stderr).
 */
#define _GNU_SOURCE
#include "vmsrs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { N_BOOKS = 6, LINE_MAX_LEN = 256, MAX_QTY = 1000 };

struct book {
    char code[8];
    char title[40];
    int32_t stock;
    int32_t sold;
};

static const struct book BOOKS_INITIAL[N_BOOKS] = {
    {"KR", "The C Programming Language", 1000, 0},
    {"SICP", "Structure and Interpretation", 1000, 0},
    {"TAOCP", "The Art of Computer Programming", 1000, 0},
    {"CLRS", "Introduction to Algorithms", 1000, 0},
    {"DRAGON", "Compilers", 1000, 0},
    {"OSC", "Operating System Concepts", 1000, 0},
};

static struct book *books; /* monitored */

/* Serialises purchases (read-check-decrement) and listings. Error-checking, so that an unlock
 * by a thread that does not hold it is reported (it would let two requests in at once). */
static pthread_mutex_t stock_lock = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

static void lock_stock(void) { pthread_mutex_lock(&stock_lock); }

static void unlock_stock(void) {
    int rc = pthread_mutex_unlock(&stock_lock);
    if (rc != 0) printf("BUG: unlock_stock: %s\n", strerror(rc));
}

/* An order record of a purchase; the buggy BADBUY path uses this pointer without checking it
 * (it is NULL: the order was never created). volatile so the compiler keeps the real store. */
struct order {
    char code[8];
    int32_t qty;
};
static struct order *volatile pending_order = NULL;

static atomic_int sessions_active;
static atomic_int connections_total;

struct conn {
    int fd;
    int no;
    char peer[64];
    uint64_t user;
    char tag[64]; /* "[conn N user U]" for the transcript */
};

/* ---- I/O helpers ----------------------------------------------------------------------- */

static int send_line(int fd, const char *s) {
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t k = send(fd, s + off, n - off, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        off += (size_t)k;
    }
    return send(fd, "\n", 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* Read one line (without the newline) into line; 1 on success, 0 on EOF/timeout/error. */
struct reader {
    char buf[LINE_MAX_LEN * 2];
    size_t len;
};

static int read_line(int fd, struct reader *r, char *line, size_t cap) {
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            size_t n = (size_t)(nl - r->buf);
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, r->buf, k);
            line[k] = 0;
            if (k > 0 && line[k - 1] == '\r') line[k - 1] = 0;
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            return 1;
        }
        if (r->len == sizeof r->buf) r->len = 0; /* an over-long line: drop it */
        ssize_t k = recv(fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        r->len += (size_t)k;
    }
}

static int find_book(const char *code) {
    for (int i = 0; i < N_BOOKS; i++)
        if (strcmp(BOOKS_INITIAL[i].code, code) == 0) return i;
    return -1;
}

/* ---- requests -------------------------------------------------------------------------- */

static void do_list(char *reply, size_t cap) {
    struct book snap[N_BOOKS];
    lock_stock();
    int rc = vmsrs_load(snap, books, sizeof snap);
    unlock_stock();
    if (rc != 0) {
        snprintf(reply, cap, "ERR internal: %s", vmsrs_strerror(rc));
        return;
    }
    size_t n = (size_t)snprintf(reply, cap, "OK LIST");
    for (int i = 0; i < N_BOOKS && n < cap; i++)
        n += (size_t)snprintf(reply + n, cap - n, " %s:%d", BOOKS_INITIAL[i].code, snap[i].stock);
}

static int parse_purchase(const char *args, int *book, int *qty, char *reply, size_t cap) {
    char code[16];
    int n;
    if (!args || sscanf(args, "%15s %d", code, &n) != 2) {
        snprintf(reply, cap, "ERR usage: BUY <code> <n>");
        return -1;
    }
    *book = find_book(code);
    if (*book < 0) {
        snprintf(reply, cap, "ERR unknown book %s", code);
        return -1;
    }
    if (n < 1 || n > MAX_QTY) {
        snprintf(reply, cap, "ERR quantity must be 1..%d", MAX_QTY);
        return -1;
    }
    *qty = n;
    return 0;
}

static void do_buy(const char *args, char *reply, size_t cap) {
    int b, n;
    if (parse_purchase(args, &b, &n, reply, cap) != 0) return;
    lock_stock();
    int32_t stock = VMSRS_GET(books[b].stock);
    if (stock < n) {
        unlock_stock();
        snprintf(reply, cap, "ERR out of stock: %s has %d left", BOOKS_INITIAL[b].code, stock);
        return;
    }
    VMSRS_SET(books[b].stock, stock - n);
    VMSRS_SET(books[b].sold, VMSRS_GET(books[b].sold) + n);
    unlock_stock();
    snprintf(reply, cap, "OK BUY %s %d left=%d", BOOKS_INITIAL[b].code, n, stock - n);
}

/* The buggy purchase: decrements the shared stock, then records the order through a NULL
 * pointer while still holding the stock lock. */
static void do_badbuy(struct conn *c, const char *args, char *reply, size_t cap) {
    int b, n;
    if (parse_purchase(args, &b, &n, reply, cap) != 0) return;
    lock_stock();
    int32_t stock = VMSRS_GET(books[b].stock);
    VMSRS_SET(books[b].stock, stock - n);
    vmsrs_printf("%s BADBUY %s %d: stock written (%d -> %d), now recording the order...\n", c->tag,
                 BOOKS_INITIAL[b].code, n, stock, stock - n);
    struct order *o = pending_order;
    o->qty = n; /* SIGSEGV: NULL + 8 */
    memcpy(o->code, BOOKS_INITIAL[b].code, sizeof o->code);
    /* Reached only when the crash was skipped (oblivious policy): this line is marked as a
     * suppressed user's output. */
    vmsrs_printf("%s BADBUY %s %d: order recorded\n", c->tag, BOOKS_INITIAL[b].code, n);
    unlock_stock();
    snprintf(reply, cap, "OK BUY %s %d left=%d", BOOKS_INITIAL[b].code, n, stock - n);
}

static void do_stats(char *reply, size_t cap) {
    struct vmsrs_stats s;
    if (vmsrs_stats(&s) != 0) {
        snprintf(reply, cap, "OK STATS unavailable (built without libvmsrs)");
        return;
    }
    snprintf(reply, cap,
             "OK STATS users_faulted=%llu faults_contained=%llu restorations=%llu users_live=%llu "
             "corruptions=%llu",
             (unsigned long long)s.users_faulted, (unsigned long long)s.faults_contained,
             (unsigned long long)s.restorations, (unsigned long long)s.users_live,
             (unsigned long long)s.corruptions);
}

/* ---- sessions -------------------------------------------------------------------------- */

static const char CONTAINED_REPLY[] = "ERR request failed: your session faulted and was contained";

/* A crashed session: tell the client, close. The stock lock a crashed request held was
 * released by libvmsrs where the unwound user resumed (its lock tracking, DESIGN §5; said on
 * stderr). Unlocking it here again, as this server once did, unlocked it under the request
 * that took it next, and a LIST then saw another BADBUY's write before its fault. */
static void session_contained(struct conn *c, const char *how) {
    send_line(c->fd, CONTAINED_REPLY);
    printf("%s session faulted and was contained (%s); replied \"%s\"; connection closed\n", c->tag, how,
           CONTAINED_REPLY);
}

/* Serve requests until QUIT, EOF, or a crash. Returns 1 if the session crashed (oblivious
 * policy: it ran on suppressed), else 0. */
static int serve(struct conn *c) {
    struct reader r = {.len = 0};
    char line[LINE_MAX_LEN], reply[LINE_MAX_LEN + 64];
    while (read_line(c->fd, &r, line, sizeof line)) {
        char *args = strchr(line, ' ');
        if (args) *args++ = 0;
        int quit = 0;
        if (strcmp(line, "LIST") == 0) do_list(reply, sizeof reply);
        else if (strcmp(line, "BUY") == 0) do_buy(args, reply, sizeof reply);
        else if (strcmp(line, "BADBUY") == 0) do_badbuy(c, args, reply, sizeof reply);
        else if (strcmp(line, "STATS") == 0) do_stats(reply, sizeof reply);
        else if (strcmp(line, "QUIT") == 0) snprintf(reply, sizeof reply, "OK bye"), quit = 1;
        else snprintf(reply, sizeof reply, "ERR unknown command %.32s", line);
        if (vmsrs_user_suppressed()) return 1;
        vmsrs_printf("%s %s%s%s -> %s\n", c->tag, line, args ? " " : "", args ? args : "", reply);
        if (send_line(c->fd, reply) != 0 || quit) break;
    }
    return 0;
}

static void *session(void *arg) {
    struct conn *c = arg;
    int rc = VMSRS_USER_BEGIN();
    if (rc == VMSRS_FAULTED) { /* unwind policy: the crashed request came back here */
        session_contained(c, "unwound to VMSRS_USER_BEGIN, which returned VMSRS_FAULTED");
        goto out;
    }
    if (rc < 0) {
        printf("[conn %d] cannot begin a user: %s\n", c->no, vmsrs_strerror(rc));
        send_line(c->fd, "ERR server busy");
        goto out;
    }
    c->user = vmsrs_user_current();
#ifdef VMSRS_DISABLE
    snprintf(c->tag, sizeof c->tag, "[conn %d]", c->no);
#else
    snprintf(c->tag, sizeof c->tag, "[conn %d user %llu]", c->no, (unsigned long long)c->user);
#endif
    printf("%s connected from %s\n", c->tag, c->peer);
    if (serve(c)) {
        rc = vmsrs_user_end();
        session_contained(c, rc == VMSRS_FAULTED ? "oblivious; vmsrs_user_end returned VMSRS_FAULTED"
                                                 : "oblivious; vmsrs_user_end did not report it");
        goto out;
    }
    rc = vmsrs_user_end();
    if (rc == VMSRS_FAULTED) session_contained(c, "vmsrs_user_end returned VMSRS_FAULTED");
    else printf("%s disconnected\n", c->tag);
out:
    close(c->fd);
    atomic_fetch_sub(&sessions_active, 1);
    free(c);
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    int port = 0, idle_exit = 60;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--idle-exit") == 0 && i + 1 < argc) idle_exit = atoi(argv[++i]);
        else if (argv[i][0] >= '0' && argv[i][0] <= '9') port = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: %s [PORT] [--idle-exit SECONDS]\n", argv[0]);
            return 2;
        }
    }

    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 1; }
    books = (struct book *)m;
    memcpy(books, BOOKS_INITIAL, sizeof BOOKS_INITIAL);
    int rc = vmsrs_init_profile(NULL);
    if (rc == 0) rc = vmsrs_profile(books, sizeof BOOKS_INITIAL, "books");
    if (rc != 0) {
        fprintf(stderr, "FAIL: libvmsrs: %s\n", vmsrs_strerror(rc));
        return 1;
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("FAIL: listen on 127.0.0.1");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
#ifdef VMSRS_DISABLE
    printf("bookstore server (plain build, without libvmsrs): %d books, stock %d each; one thread per "
           "connection\n",
           N_BOOKS, BOOKS_INITIAL[0].stock);
#else
    printf("bookstore server (with libvmsrs): %d books, stock %d each; one thread and one libvmsrs user "
           "per connection\n",
           N_BOOKS, BOOKS_INITIAL[0].stock);
#endif

    time_t last_activity = time(NULL);
    for (;;) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int pr = poll(&pfd, 1, 500);
        if (pr < 0 && errno != EINTR) { perror("poll"); return 1; }
        if (pr <= 0) {
            if (atomic_load(&sessions_active) > 0) last_activity = time(NULL);
            else if (time(NULL) - last_activity >= idle_exit) {
                printf("no connection for %d s: shutting down\n", idle_exit);
                return 0;
            }
            continue;
        }
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (fd < 0) continue;
        last_activity = time(NULL);
        struct timeval tv = {.tv_sec = 30};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        c->fd = fd;
        c->no = atomic_fetch_add(&connections_total, 1) + 1;
        snprintf(c->peer, sizeof c->peer, "127.0.0.1:%d", ntohs(peer.sin_port));
        snprintf(c->tag, sizeof c->tag, "[conn %d]", c->no);
        atomic_fetch_add(&sessions_active, 1);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, session, c) != 0) {
            atomic_fetch_sub(&sessions_active, 1);
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
}
