/*
 * bench_servers_latency.c: the latency of a request whose handler faults (and is contained by
 * libvmsrs) against a normal request to the same server, measured by the client, for
 * scripts/bench_servers.sh. The difference of the medians bounds the time libvmsrs takes
 * from the fault's signal to the faulty request's answer (signal delivery, the handler,
 * containment, the fault report on stderr, unwinding or skipping, the error reply).
 *
 *   bench_servers_latency tcp PORT N [WARMUP]
 *       c-examples/dropin_server on 127.0.0.1:PORT, one connection: N pairs of
 *       "SET k i" (-> OK) and "CRASH k i" (-> ERR request failed), alternating.
 *   bench_servers_latency mysql SOCKET N [WARMUP]      (built with -DWITH_MYSQL)
 *       mariadbd with udf_fault.so: N pairs of SELECT vmsrs_fault(0) (-> 0) and
 *       SELECT vmsrs_fault(1, 151) (a NULL store after writing max_connections = 151, its
 *       value in the benchmark's servers), each on a fresh connection; the query's round trip
 *       is timed (connect excluded). The faulty query's session is closed by the server
 *       afterwards (preload/mariadb.env); its answer is a result or an error.
 *
 * Prints "normal" and "fault" lines with the median, p10, p90 and max in microseconds, then
 * "delta_median_us". Exits 1 if an answer is not the expected one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_MYSQL
#include <mysql.h>
#endif

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p) {
    int i = (int)(p * (n - 1) + 0.5);
    return sorted[i];
}

static double report(const char *what, double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double med = pct(v, n, 0.5);
    printf("%-7s n=%d median_us=%.1f p10_us=%.1f p90_us=%.1f max_us=%.1f\n", what, n, med, pct(v, n, 0.1),
           pct(v, n, 0.9), v[n - 1]);
    return med;
}

/* One line request, one line answer, on a connected socket. */
static int roundtrip(int fd, const char *req, char *ans, size_t cap) {
    size_t len = strlen(req);
    if (write(fd, req, len) != (ssize_t)len) return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, ans + got, 1);
        if (r <= 0) return -1;
        if (ans[got] == '\n') break;
        got++;
    }
    ans[got] = 0;
    return 0;
}

static int bench_tcp(int port, int n, int warmup, double *normal, double *fault) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[64], ans[128];
    for (int i = -warmup; i < n; i++) {
        for (int kind = 0; kind < 2; kind++) {
            snprintf(req, sizeof req, "%s bench %d\n", kind ? "CRASH" : "SET", i);
            double t0 = now_us();
            if (roundtrip(fd, req, ans, sizeof ans) != 0) {
                fprintf(stderr, "bench_servers_latency: connection lost at %s", req);
                return 1;
            }
            double dt = now_us() - t0;
            const char *want = kind ? "ERR request failed" : "OK";
            if (strcmp(ans, want) != 0) {
                fprintf(stderr, "bench_servers_latency: %s answered %s, expected %s\n", req, ans, want);
                return 1;
            }
            if (i >= 0) (kind ? fault : normal)[i] = dt;
        }
    }
    close(fd);
    return 0;
}

#ifdef WITH_MYSQL
static int bench_mysql(const char *socket_path, int n, int warmup, double *normal, double *fault) {
    int fault_errors = 0;
    for (int i = -warmup; i < n; i++) {
        for (int kind = 0; kind < 2; kind++) {
            MYSQL *m = mysql_init(NULL);
            unsigned int timeout = 10;
            mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
            mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
            if (!mysql_real_connect(m, NULL, "root", NULL, NULL, 0, socket_path, 0)) {
                fprintf(stderr, "bench_servers_latency: connect: %s\n", mysql_error(m));
                return 1;
            }
            const char *q = kind ? "SELECT vmsrs_fault(1, 151)" : "SELECT vmsrs_fault(0)";
            double t0 = now_us();
            int err = mysql_real_query(m, q, strlen(q));
            MYSQL_RES *res = err ? NULL : mysql_store_result(m);
            double dt = now_us() - t0;
            if (!kind) {
                MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
                if (!row || !row[0] || strcmp(row[0], "0") != 0) {
                    fprintf(stderr, "bench_servers_latency: %s failed: %s\n", q, mysql_error(m));
                    return 1;
                }
            } else if (!res) {
                fault_errors++;
            }
            if (res) mysql_free_result(res);
            mysql_close(m);
            if (i >= 0) (kind ? fault : normal)[i] = dt;
        }
    }
    printf("faulty queries answered with an error: %d of %d\n", fault_errors, n + warmup);
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s tcp PORT N [WARMUP] | mysql SOCKET N [WARMUP]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]), warmup = argc > 4 ? atoi(argv[4]) : 10;
    if (n < 1) return 2;
    double *normal = calloc((size_t)n, sizeof *normal), *fault = calloc((size_t)n, sizeof *fault);
    int rc;
    if (strcmp(argv[1], "tcp") == 0) {
        rc = bench_tcp(atoi(argv[2]), n, warmup, normal, fault);
    } else if (strcmp(argv[1], "mysql") == 0) {
#ifdef WITH_MYSQL
        rc = bench_mysql(argv[2], n, warmup, normal, fault);
#else
        fprintf(stderr, "built without -DWITH_MYSQL\n");
        rc = 2;
#endif
    } else {
        rc = 2;
    }
    if (rc != 0) return rc;
    double a = report("normal", normal, n);
    double b = report("fault", fault, n);
    printf("delta_median_us=%.1f\n", b - a);
    return 0;
}
