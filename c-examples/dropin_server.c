/*
 * An unmodified multi-threaded server: it does not include vmsrs.h and knows nothing of
 * libvmsrs. Run it under LD_PRELOAD=libvmsrs.so with its environment file
 * (c-examples/dropin_server.env) and a faulting request no longer takes the server down.
 *
 *   dropin_server PORT|0          prints "listening on 127.0.0.1:PORT", serves until QUIT
 *
 * A fixed pool of worker threads takes connections from a queue (threads are reused across
 * connections, as in mysqld's thread cache). Each line is one request, handled by
 * handle_request() (exported with -rdynamic, so the environment file can name it):
 *
 *   SET key value    stores value in the shared table            -> OK
 *   GET key          reads it                                      -> VALUE v | NONE
 *   CRASH key value  stores value, then dereferences a wild pointer -> (the bug)
 *   TRAP             a __builtin_trap() (ud2), as compilers emit after a provable bug
 *   LOCKCRASH        takes the table lock, then dereferences a wild pointer
 *   QUIT             stops the server
 *
 * handle_request() returns 0, or -1 for a failed request (the reply is then "ERR").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEYS 64
#define WORKERS 4
#define QUEUE 64

struct entry {
    char key[32];
    long value;
};

static struct entry table[KEYS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int *volatile wild; /* the bug: a pointer the compiler cannot see through */

static struct entry *slot(const char *key) {
    for (int i = 0; i < KEYS; i++)
        if (table[i].key[0] == 0 || strcmp(table[i].key, key) == 0) return &table[i];
    return NULL;
}

static void put(const char *key, long value) {
    pthread_mutex_lock(&table_lock);
    struct entry *e = slot(key);
    if (e != NULL) {
        snprintf(e->key, sizeof e->key, "%s", key);
        e->value = value;
    }
    pthread_mutex_unlock(&table_lock);
}

/* One request. Returns 0, or -1 when it failed; `reply` holds the answer. */
__attribute__((noinline)) int handle_request(const char *line, char *reply, size_t cap) {
    char cmd[16] = "", key[32] = "";
    long value = 0;
    int n = sscanf(line, "%15s %31s %ld", cmd, key, &value);
    if (n >= 3 && strcmp(cmd, "SET") == 0) {
        put(key, value);
        snprintf(reply, cap, "OK");
    } else if (n >= 2 && strcmp(cmd, "GET") == 0) {
        pthread_mutex_lock(&table_lock);
        struct entry *e = slot(key);
        if (e != NULL && e->key[0] != 0) snprintf(reply, cap, "VALUE %ld", e->value);
        else snprintf(reply, cap, "NONE");
        pthread_mutex_unlock(&table_lock);
    } else if (n >= 3 && strcmp(cmd, "CRASH") == 0) {
        put(key, value);
        wild = (int *)16;
        *wild = 1;
        snprintf(reply, cap, "OK");
    } else if (n >= 1 && strcmp(cmd, "TRAP") == 0) {
        __builtin_trap();
    } else if (n >= 1 && strcmp(cmd, "LOCKCRASH") == 0) {
        pthread_mutex_lock(&table_lock);
        wild = (int *)24;
        *wild = 1;
        pthread_mutex_unlock(&table_lock);
        snprintf(reply, cap, "OK");
    } else {
        snprintf(reply, cap, "ERR bad request");
    }
    return 0;
}

/* Called after every request: a no-op hook point (too short to be patched, which the tests
 * use to check that VMSRS_USER_CALL refuses it with a clear message). */
__attribute__((noinline)) void request_done(void) {}

static int queue[QUEUE], qhead, qtail;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static volatile int stopping;
static int listener;

static void serve(int fd) {
    FILE *in = fdopen(dup(fd), "r");
    char line[256], reply[256];
    while (in != NULL && fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\r\n")] = 0;
        if (strcmp(line, "QUIT") == 0) {
            stopping = 1;
            shutdown(listener, SHUT_RDWR);
            dprintf(fd, "BYE\n");
            break;
        }
        if (handle_request(line, reply, sizeof reply) != 0) snprintf(reply, sizeof reply, "ERR request failed");
        request_done();
        dprintf(fd, "%s\n", reply);
    }
    if (in != NULL) fclose(in);
    close(fd);
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (qhead == qtail && !stopping) pthread_cond_wait(&qcond, &qlock);
        if (qhead == qtail) {
            pthread_mutex_unlock(&qlock);
            return NULL;
        }
        int fd = queue[qhead++ % QUEUE];
        pthread_mutex_unlock(&qlock);
        serve(fd);
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listener, (struct sockaddr *)&a, sizeof a) != 0 || listen(listener, 64) != 0 ||
        getsockname(listener, (struct sockaddr *)&a, &len) != 0) {
        perror("dropin_server: listen");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, worker, NULL);
    while (!stopping) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) break;
        pthread_mutex_lock(&qlock);
        queue[qtail++ % QUEUE] = fd;
        pthread_cond_signal(&qcond);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    stopping = 1;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qlock);
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    printf("server stopped\n");
    return 0;
}
