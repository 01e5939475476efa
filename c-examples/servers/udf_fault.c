/*
 * udf_fault.c: a MariaDB UDF library whose one function faults on request, for the
 * real-server tests (tests/mariadb.rs, tests/mariadb_dropin.rs). It does not use vmsrs.h:
 * the server it runs in is unmodified, and libvmsrs (if any) is preloaded.
 *
 *   CREATE FUNCTION vmsrs_fault RETURNS INTEGER SONAME 'udf_fault.so';
 *   SELECT vmsrs_fault(mode [, arg]);
 *
 * mode 0  returns 0 (a normal query)
 * mode 1  writes the server global max_connections (to arg, default 4242), then stores
 *         through a NULL pointer the compiler cannot see (a plain store: SIGSEGV)
 * mode 2  __builtin_trap() (ud2: SIGILL), after the same write of max_connections
 * mode 3  takes fault_lock (shared with mode 4), then faults as mode 1 while holding it
 * mode 4  takes fault_lock, sleeps arg ms (default 0), releases it, returns 4
 * mode 5  sleeps arg ms (default 1000), returns 5 (a slow query, in flight during a fault)
 * mode 6  returns max_connections as this library sees it (the raw global, no sys_var)
 *
 * max_connections is mariadbd's own `ulong max_connections`, resolved from the server's
 * dynamic symbol table when the server dlopens this library (mariadbd is PIE and stripped,
 * but exports its globals: `nm -D /usr/sbin/mariadbd | grep max_connections`). Only
 * max_connections is written: the layout of global_system_variables (a C++ struct of the
 * server's sql_class.h) is not in any header Debian ships for clients.
 *
 * The UDF calling convention is declared here (the Connector/C headers of libmariadb-dev do
 * not carry it): these are the types of the server's mysql_com.h / udf_registration_types.h,
 * stable since MySQL 3.23 (the `extension` members since MariaDB 10.0 / MySQL 8.0).
 *
 * Build: gcc -O2 -shared -fPIC -pthread udf_fault.c -o udf_fault.so
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <errno.h>

typedef char my_bool;

enum Item_result {
    STRING_RESULT = 0,
    REAL_RESULT,
    INT_RESULT,
    ROW_RESULT,
    DECIMAL_RESULT,
    TIME_RESULT
};

typedef struct st_udf_args {
    unsigned int arg_count;
    enum Item_result *arg_type;
    char **args;
    unsigned long *lengths;
    char *maybe_null;
    const char **attributes;
    unsigned long *attribute_lengths;
    void *extension;
} UDF_ARGS;

typedef struct st_udf_init {
    my_bool maybe_null;
    unsigned int decimals;
    unsigned long max_length;
    char *ptr;
    my_bool const_item;
    void *extension;
} UDF_INIT;

#define MYSQL_ERRMSG_SIZE 512

/* mariadbd's global (sql/mysqld.cc: `ulong max_connections;`). */
extern unsigned long max_connections;

/* A NULL pointer the compiler must load at run time: a store through it is a plain store
 * instruction (gcc turns a store through a known NULL into `ud2`). */
static int *volatile null_ptr;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

static void sleep_ms(long long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void write_global(long long value)
{
    /* volatile: the store must happen before the fault, not be sunk or dropped. */
    *(volatile unsigned long *)&max_connections = (unsigned long)value;
}

static void null_store(void)
{
    *null_ptr = 0x5eed;
}

my_bool vmsrs_fault_init(UDF_INIT *initid, UDF_ARGS *args, char *message);
void vmsrs_fault_deinit(UDF_INIT *initid);
long long vmsrs_fault(UDF_INIT *initid, UDF_ARGS *args, char *is_null, char *error);

my_bool vmsrs_fault_init(UDF_INIT *initid, UDF_ARGS *args, char *message)
{
    if (args->arg_count < 1 || args->arg_count > 2) {
        strncpy(message, "usage: vmsrs_fault(mode INT [, arg INT])", MYSQL_ERRMSG_SIZE - 1);
        message[MYSQL_ERRMSG_SIZE - 1] = 0;
        return 1;
    }
    for (unsigned i = 0; i < args->arg_count; i++)
        args->arg_type[i] = INT_RESULT; /* the server converts the arguments */
    initid->maybe_null = 0;
    initid->const_item = 0; /* evaluate per row, never at optimisation time */
    return 0;
}

void vmsrs_fault_deinit(UDF_INIT *initid)
{
    (void)initid;
}

long long vmsrs_fault(UDF_INIT *initid, UDF_ARGS *args, char *is_null, char *error)
{
    (void)initid;
    *is_null = 0;
    *error = 0;
    long long mode = args->args[0] ? *(long long *)args->args[0] : 0;
    int has_arg = args->arg_count > 1 && args->args[1];
    long long arg = has_arg ? *(long long *)args->args[1] : 0;
    switch (mode) {
    case 0:
        return 0;
    case 1:
        write_global(has_arg ? arg : 4242);
        null_store();
        return 1; /* reached only if the store was skipped (oblivious containment) */
    case 2:
        write_global(has_arg ? arg : 4242);
        __builtin_trap();
    case 3:
        pthread_mutex_lock(&fault_lock);
        write_global(4242);
        null_store();
        pthread_mutex_unlock(&fault_lock);
        return 3;
    case 4:
        pthread_mutex_lock(&fault_lock);
        sleep_ms(arg);
        pthread_mutex_unlock(&fault_lock);
        return 4;
    case 5:
        sleep_ms(has_arg ? arg : 1000);
        return 5;
    case 6:
        return (long long)*(volatile unsigned long *)&max_connections;
    default:
        *error = 1;
        return 0;
    }
}
