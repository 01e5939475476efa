/* Bad pointers into every exported entry point that takes one, one call per process:
 *   badptr_sweep CALL [thread]   (thread: from a thread with a user and a recovery point)
 * Expected: never dies; returns a documented code. */
#define _GNU_SOURCE
#include <vmsrs.h>
/* Wild pointers are the point of this program. */
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
static const char *call;
static char *pg_end;      /* first page RW, second unmapped */
static char *ro;          /* read-only page */
static uint64_t table[64];
static long r;
static void run(void) {
    char *wild = (char *)0x10;
    char *half = pg_end - 8; /* 8 readable bytes then unmapped */
    memset(half, 'A', 8);    /* no NUL before the unmapped page */
    if (!strcmp(call, "init_wild")) r = vmsrs_init_profile(wild);
    else if (!strcmp(call, "init_nonul")) r = vmsrs_init_profile(half);
    else if (!strcmp(call, "profile_name_wild")) r = vmsrs_profile(table + 32, 64, wild);
    else if (!strcmp(call, "profile_name_nonul")) r = vmsrs_profile(table + 32, 64, half);
    else if (!strcmp(call, "stats_ro")) r = vmsrs_stats((struct vmsrs_stats *)ro);
    else if (!strcmp(call, "stats_half")) r = vmsrs_stats((struct vmsrs_stats *)(pg_end - 16));
    else if (!strcmp(call, "exposures_half")) { size_t t; r = vmsrs_exposures((struct vmsrs_exposure *)(pg_end - 24), 4, &t); }
    else if (!strcmp(call, "exposures_total_ro")) r = vmsrs_exposures(NULL, 0, (size_t *)ro);
    else if (!strcmp(call, "last_fault_ro")) r = vmsrs_last_fault((struct vmsrs_fault_info *)ro);
    else if (!strcmp(call, "debug_area_wild")) { void *a; size_t n; r = vmsrs_debug_recovery_area(table, (void **)wild, &n); (void)a; }
    else if (!strcmp(call, "debug_area_len_ro")) { void *a; r = vmsrs_debug_recovery_area(table, &a, (size_t *)ro); }
    else if (!strcmp(call, "debug_area_addr_wild")) { void *a; size_t n; r = vmsrs_debug_recovery_area(wild, &a, &n); }
    else if (!strcmp(call, "load_ro_dst")) r = vmsrs_load(ro, table, 16);
    else if (!strcmp(call, "memmove_half")) r = (long)vmsrs_memmove(table, half, 64);
    else if (!strcmp(call, "memset_ro")) r = (long)vmsrs_memset(ro, 0, 16);
    else if (!strcmp(call, "memcpy_ro")) r = (long)vmsrs_memcpy(ro, table, 16);
    else if (!strcmp(call, "printf_fmt_nonul")) r = vmsrs_printf(half);
    else if (!strcmp(call, "printf_ls_half")) r = vmsrs_printf("%ls\n", (wchar_t *)(pg_end - 8));
    else if (!strcmp(call, "fprintf_wild_file")) r = vmsrs_fprintf((FILE *)wild, "x");
    else if (!strcmp(call, "ptr_check_wild")) r = vmsrs_ptr_check(wild, 8);
    else if (!strcmp(call, "ptr_add_wild")) r = (long)vmsrs_ptr_add(wild, 1 << 20);
    else if (!strcmp(call, "crash_wild")) r = vmsrs_crash_suppression(VMSRS_KIND_SEGV, wild);
    else if (!strcmp(call, "realloc_suppressed_wild")) { vmsrs_crash_suppression(0, NULL); r = (long)vmsrs_realloc(wild, 32); }
    else if (!strcmp(call, "store_scalar_ro")) { vmsrs_store32((uint32_t *)ro, 1); r = 0; }
    else if (!strcmp(call, "load_scalar_wild")) r = vmsrs_load32((uint32_t *)wild);
    else if (!strcmp(call, "unprofile_wild")) r = vmsrs_unprofile(wild);
    else { fprintf(stderr, "unknown call\n"); exit(2); }
}
static void *worker(void *a) {
    (void)a;
    if (VMSRS_USER_BEGIN() == VMSRS_FAULTED) { fprintf(stderr, "%s: unwound\n", call); return NULL; }
    run();
    vmsrs_user_end();
    return NULL;
}
int main(int argc, char **argv) {
    call = argv[1];
    long pg = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m + pg, pg, PROT_NONE); /* guard page: nothing else can be mapped there */
    pg_end = m + pg;
    ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (strncmp(call, "init_", 5)) {
        if (vmsrs_init_profile(NULL) != 0) return 2;
        vmsrs_profile(table, 256, "t");
    }
    if (argc > 2) { pthread_t t; pthread_create(&t, NULL, worker, NULL); pthread_join(t, NULL); }
    else run();
    fprintf(stderr, "%s: returned %ld (0x%lx) last_error=%d\n", call, r, r, vmsrs_last_error());
    return 0;
}
