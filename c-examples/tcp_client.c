/*
 * tcp_client.c -- client of tcp_server.c: connects to 127.0.0.1:PORT, sends request lines,
 * prints each request and its reply line. Plain C; it does not use libvmsrs.
 *
 * Usage: tcp_client PORT [--name NAME] [--timeout-ms MS] [COMMAND ...]
 *   Each COMMAND argument is one request line ("LIST", "BUY KR 2", ...). Without commands,
 *   request lines are read from stdin, one at a time, until EOF.
 * Output (stdout, line-buffered):
 *   [NAME] > REQUEST      what was sent
 *   [NAME] < REPLY        the server's reply line
 *   [NAME] ! PROBLEM      a connection problem (then the exit status says which)
 * Exit status: 0 every request got a reply (or the server ended the session right after
 * replying to the last one); 2 could not connect (e.g. connection refused); 3 the server
 * closed or reset the connection before replying; 4 no reply within the timeout (default
 * 10000 ms); 1 bad usage or an internal error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { LINE_CAP = 1024 };

static const char *name = "client";
static int timeout_ms = 10000;
static char buf[LINE_CAP * 2];
static size_t buf_len;

/* Wait up to the timeout for fd to be ready for `events`; 1 ready, 0 timeout. */
static int wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* Read the reply line: 1 got it, -3 closed/reset, -4 timeout. */
static int read_reply(int fd, char *line, size_t cap) {
    for (;;) {
        char *nl = memchr(buf, '\n', buf_len);
        if (nl) {
            size_t n = (size_t)(nl - buf);
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, buf, k);
            line[k] = 0;
            memmove(buf, nl + 1, buf_len - n - 1);
            buf_len -= n + 1;
            return 1;
        }
        if (buf_len == sizeof buf) buf_len = 0;
        if (!wait_fd(fd, POLLIN)) return -4;
        ssize_t r = recv(fd, buf + buf_len, sizeof buf - buf_len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r < 0) {
            printf("[%s] ! connection %s by server\n", name, errno == ECONNRESET ? "reset" : "broken");
            return -3;
        }
        if (r == 0) {
            printf("[%s] ! connection closed by server\n", name);
            return -3;
        }
        buf_len += (size_t)r;
    }
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) { printf("[%s] ! socket: %s\n", name, strerror(errno)); exit(1); }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (r != 0 && errno == EINPROGRESS) {
        if (!wait_fd(fd, POLLOUT)) { printf("[%s] ! connect timed out\n", name); exit(2); }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        r = err ? -1 : 0;
    }
    if (r != 0) {
        printf("[%s] ! cannot connect to 127.0.0.1:%d: %s\n", name, port,
               errno == ECONNREFUSED ? "connection refused" : strerror(errno));
        exit(2);
    }
    return fd; /* non-blocking: every wait goes through poll() with the timeout */
}

/* Send one request and print its reply. 0 ok, or the exit status to leave with. */
static int request(int fd, const char *req) {
    char out[LINE_CAP + 2], reply[LINE_CAP];
    int n = snprintf(out, sizeof out, "%s\n", req);
    printf("[%s] > %s\n", name, req);
    for (int off = 0; off < n;) {
        if (!wait_fd(fd, POLLOUT)) { printf("[%s] ! timed out sending\n", name); return 4; }
        ssize_t k = send(fd, out + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k < 0) {
            printf("[%s] ! connection %s by server\n", name, errno == ECONNRESET ? "reset" : "broken");
            return 3;
        }
        off += (int)k;
    }
    int r = read_reply(fd, reply, sizeof reply);
    if (r == -4) { printf("[%s] ! timed out waiting for a reply\n", name); return 4; }
    if (r < 0) return 3;
    printf("[%s] < %s\n", name, reply);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [--name NAME] [--timeout-ms MS] [COMMAND ...]\n", argv[0]);
        return 1;
    }
    int port = atoi(argv[1]);
    int first_cmd = argc;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) name = argv[++i];
        else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) timeout_ms = atoi(argv[++i]);
        else { first_cmd = i; break; }
    }
    if (port <= 0 || port > 65535 || timeout_ms <= 0) {
        fprintf(stderr, "%s: bad port or timeout\n", argv[0]);
        return 1;
    }
    int fd = connect_to(port);
    printf("[%s] connected to 127.0.0.1:%d\n", name, port);
    int status = 0;
    if (first_cmd < argc) {
        for (int i = first_cmd; i < argc && status == 0; i++) status = request(fd, argv[i]);
    } else {
        char line[LINE_CAP];
        while (status == 0 && fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = 0;
            if (line[0]) status = request(fd, line);
        }
    }
    close(fd);
    return status;
}
