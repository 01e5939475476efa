/*
 * mod_vmsrs_fault.c: an Apache httpd 2.4 handler module that faults on request, for the
 * real-server tests (tests/apache.rs, tests/apache_dropin.rs). It does not use vmsrs.h: the
 * server it runs in is unmodified, and libvmsrs (if any) is preloaded.
 *
 *   GET /ok           200 "ok"
 *   GET /slow?ms=N    sleeps N ms (default 1000), then 200 "slow N"
 *   GET /fault        increments the module global fault_counter, then stores through a NULL
 *                     pointer the compiler cannot see (a plain store: SIGSEGV)
 *   GET /trap         increments fault_counter, then __builtin_trap() (ud2: SIGILL)
 *   GET /global       200 with fault_counter's value as this child sees it
 *   GET /lock-fault   takes fault_lock (shared with /lock), then faults as /fault
 *   GET /lock?ms=N    takes fault_lock, sleeps N ms (default 0), releases it, 200 "locked"
 *   GET /inflight     200 with the number of /slow requests now sleeping in this child
 *   GET /pid          200 with the pid of the child serving it
 *   GET /served       200 with the number of /ok requests this child has served
 *
 * Every 200 response carries a Content-Length, so a client can tell a complete response from
 * one cut off by the death of the child that served it.
 *
 * Build: apxs -c mod_vmsrs_fault.c   (the module is .libs/mod_vmsrs_fault.so)
 * Config: LoadModule vmsrs_fault_module .../mod_vmsrs_fault.so
 *         <Location "/"> SetHandler vmsrs-fault </Location>
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "http_config.h"
#include "http_protocol.h"
#include "ap_config.h"
#include "apr_strings.h"

/* Shared between the requests of one child (the monitored global of the recovery tests). */
long vmsrs_fault_counter;

/* A NULL pointer the compiler must load at run time: a store through it is a plain store
 * instruction (gcc turns a store through a known NULL into `ud2`). */
static int *volatile null_ptr;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

/* /slow requests now sleeping (so a test knows they are in flight before it faults). */
static long slow_inflight;

/* /ok requests served (so a test knows a load generator is running). */
static long ok_served;

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t)(ms / 1000), (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* The value of `ms=N` in the query string, or `dflt`. */
static long arg_ms(request_rec *r, long dflt)
{
    const char *a = r->args;
    while (a && *a) {
        if (strncmp(a, "ms=", 3) == 0)
            return strtol(a + 3, NULL, 10);
        a = strchr(a, '&');
        if (a)
            a++;
    }
    return dflt;
}

static int reply(request_rec *r, const char *body)
{
    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only)
        ap_rputs(body, r);
    return OK;
}

static void write_global(void)
{
    /* volatile: the store must happen before the fault, not be sunk or dropped. */
    (*(volatile long *)&vmsrs_fault_counter)++;
}

static void null_store(void)
{
    *null_ptr = 0x5eed;
}

static int vmsrs_fault_handler(request_rec *r)
{
    char buf[64];
    if (!r->handler || strcmp(r->handler, "vmsrs-fault") != 0)
        return DECLINED;
    const char *u = r->uri;
    if (strcmp(u, "/ok") == 0) {
        __atomic_add_fetch(&ok_served, 1, __ATOMIC_SEQ_CST);
        return reply(r, "ok");
    }
    if (strcmp(u, "/slow") == 0) {
        long ms = arg_ms(r, 1000);
        __atomic_add_fetch(&slow_inflight, 1, __ATOMIC_SEQ_CST);
        sleep_ms(ms);
        __atomic_sub_fetch(&slow_inflight, 1, __ATOMIC_SEQ_CST);
        apr_snprintf(buf, sizeof buf, "slow %ld", ms);
        return reply(r, buf);
    }
    if (strcmp(u, "/fault") == 0) {
        write_global();
        null_store();
        return reply(r, "fault skipped"); /* only if the store was skipped (oblivious) */
    }
    if (strcmp(u, "/trap") == 0) {
        write_global();
        __builtin_trap();
    }
    if (strcmp(u, "/global") == 0) {
        apr_snprintf(buf, sizeof buf, "%ld", *(volatile long *)&vmsrs_fault_counter);
        return reply(r, buf);
    }
    if (strcmp(u, "/inflight") == 0) {
        apr_snprintf(buf, sizeof buf, "%ld", __atomic_load_n(&slow_inflight, __ATOMIC_SEQ_CST));
        return reply(r, buf);
    }
    if (strcmp(u, "/served") == 0) {
        apr_snprintf(buf, sizeof buf, "%ld", __atomic_load_n(&ok_served, __ATOMIC_SEQ_CST));
        return reply(r, buf);
    }
    if (strcmp(u, "/pid") == 0) {
        apr_snprintf(buf, sizeof buf, "%ld", (long)getpid());
        return reply(r, buf);
    }
    if (strcmp(u, "/lock-fault") == 0) {
        pthread_mutex_lock(&fault_lock);
        write_global();
        null_store();
        pthread_mutex_unlock(&fault_lock);
        return reply(r, "lock-fault skipped");
    }
    if (strcmp(u, "/lock") == 0) {
        pthread_mutex_lock(&fault_lock);
        sleep_ms(arg_ms(r, 0));
        pthread_mutex_unlock(&fault_lock);
        return reply(r, "locked");
    }
    return HTTP_NOT_FOUND;
}

static void vmsrs_fault_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(vmsrs_fault_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

module AP_MODULE_DECLARE_DATA vmsrs_fault_module = {
    STANDARD20_MODULE_STUFF,
    NULL, /* per-directory config creator */
    NULL, /* dir config merger */
    NULL, /* server config creator */
    NULL, /* server config merger */
    NULL, /* command table */
    vmsrs_fault_register_hooks,
    0, /* flags */
};
