/*
 * regress_watch_remap: a watched global of two pages (VMSRS_RANGE_0=symbol:arr) that the
 * program moves (mremap) or maps over (mmap with MAP_FIXED), calls libvmsrs interposes as it
 * does munmap: the run stops being watched (said on stderr) before the kernel moves or
 * replaces its pages.
 *
 * Modes (argv[1]):
 *   move   mremap moves both pages elsewhere: the moved pages hold every byte and are the
 *          program's own private writable memory (a store lands, with no fault; a forked
 *          child's store does not reach the parent); a read-only page the program maps at
 *          the old address is its own (a store there is its own fault, never emulated);
 *   fixed  mmap(MAP_FIXED) maps a read-only page over the second page: a store there is the
 *          program's own fault, and the first page is the program's private writable memory.
 *   shm      shmat(SHM_REMAP) maps a System V segment over the second page: it is the
 *          program's (a store there lands in the segment), and the first page is the
 *          program's private writable memory;
 *   refused  calls the kernel refuses (a bad descriptor or offset for mmap MAP_FIXED; for
 *          mremap: MREMAP_DONTUNMAP resizing or without MREMAP_MAYMOVE, old_len 0 on the
 *          program's own private pages, a huge length, a fixed destination overlapping the
 *          source, growing in place with the next page mapped) fail with the same errno as
 *          without libvmsrs and change nothing: the run stays watched and every store lands
 *          (they stopped the watch, and a refused MAP_FIXED left a read-only page behind that
 *          faulted the next store);
 *   race     four threads store to the run's second page while the main thread maps over
 *          (argv[2] "mmap"), moves ("mremap") or unmaps ("munmap") its first page: no store
 *          faults (one that trapped on the read-only page and reached libvmsrs only after the
 *          page was given back was contained as the program's fault);
 *   signal   a handler (every 20 us) stores to the page the main thread maps over: no store
 *          faults (one landing between the give-back and the mmap faulted on the read-only
 *          page left behind);
 *   many     twenty watched runs (of big, named by the test) mapped over in one call while four
 *          threads store to the first's page the call keeps: no store faults or is lost (the
 *          runs given back were remembered in a ring of 16, and a store trapped on the first
 *          was contained);
 *   protect  refused mprotect calls (an unknown bit, PROT_GROWSDOWN, a huge length) change
 *          nothing: a store lands (the refused protection was recorded as the program's, and
 *          the store contained as its fault); pkey_mprotect with no key is mprotect: a page it
 *          makes read-only faults the program's store (it was emulated), and one it makes
 *          writable stays journaled (said on stderr);
 *   droppable_refused  mmap(MAP_DROPPABLE | MAP_FIXED) calls the kernel refuses (a file,
 *          MAP_LOCKED, MAP_GROWSDOWN) change nothing (they stopped the watch);
 *   droppable  mmap(MAP_DROPPABLE | MAP_FIXED) over big: the pages are the program's (the
 *          type was not recognised, the kernel replaced the pages and libvmsrs still claimed
 *          them: made read-only and writable again, they stayed read-only to libvmsrs, and a
 *          store there was emulated into the old alias and read back wrong).
 *
 * Before the fix the moved pages were still libvmsrs's read-only mapping of its memfd: the
 * store faulted and the correct user was suppressed; and a store to a page mapped over a
 * watched one was emulated into the old alias instead of faulting.
 *
 * Prints "remap: OK" and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((aligned(4096))) long arr[1024] = {1};

/* A forked child's store to p[i] must not reach the parent (the pages are private). */
static int private_to_fork(volatile long *p, int i)
{
    long before = p[i];
    pid_t c = fork();
    if (c < 0) {
        perror("fork");
        return 2;
    }
    if (c == 0) {
        p[i] = before + 1;
        _exit(p[i] == before + 1 ? 0 : 1);
    }
    int st = 0;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("FAIL: the child could not store (status %#x)\n", st);
        return 1;
    }
    if (p[i] != before) {
        printf("FAIL: the child's store reached the parent: %ld (want %ld)\n", p[i], before);
        return 1;
    }
    return 0;
}

static int move(void)
{
    arr[0] = 5;   /* watched: emulated through the alias */
    arr[600] = 6; /* second page */
    void *dst = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    volatile long *p = mremap(arr, 8192, 8192, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    if (p == MAP_FAILED) {
        perror("mremap");
        return 2;
    }
    if (p[0] != 5 || p[600] != 6) {
        printf("FAIL: the moved pages hold p[0]=%ld p[600]=%ld (want 5, 6)\n", p[0], p[600]);
        return 1;
    }
    p[1] = 7;
    p[601] = 8;
    if (p[1] != 7 || p[601] != 8) {
        printf("FAIL: stores to the moved pages: p[1]=%ld p[601]=%ld (want 7, 8)\n", p[1], p[601]);
        return 1;
    }
    int rc = private_to_fork(p, 1);
    if (rc)
        return rc;
    /* The old address, mapped again read-only: the program's own page. */
    if (mmap(arr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)arr) {
        perror("mmap MAP_FIXED");
        return 2;
    }
    *(volatile long *)&arr[3] = 9; /* the program's own fault */
    if (*(volatile long *)&arr[3] != 0) {
        printf("FAIL: a store to a read-only page mapped at the old address landed: %ld\n", arr[3]);
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

static int fixed(void)
{
    arr[0] = 5;
    arr[600] = 6;
    if (mmap((char *)arr + 4096, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
        (char *)arr + 4096) {
        perror("mmap MAP_FIXED");
        return 2;
    }
    *(volatile long *)&arr[600] = 9; /* the program's own fault: its page is read-only */
    long v = *(volatile long *)&arr[600];
    if (v != 0) {
        printf("FAIL: a store to the read-only page mapped over the watched one landed: %ld\n", v);
        return 1;
    }
    *(volatile long *)&arr[1] = 7; /* the first page: the program's own */
    if (arr[0] != 5 || arr[1] != 7) {
        printf("FAIL: the first page holds arr[0]=%ld arr[1]=%ld (want 5, 7)\n", arr[0], arr[1]);
        return 1;
    }
    int rc = private_to_fork(arr, 1);
    if (rc)
        return rc;
    printf("remap: OK\n");
    return 0;
}

static int shm(void)
{
    arr[0] = 5;
    arr[600] = 6;
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    if (id < 0) {
        perror("shmget");
        return 2;
    }
    volatile long *seg = shmat(id, (char *)arr + 4096, SHM_REMAP);
    shmctl(id, IPC_RMID, NULL);
    if (seg == (void *)-1) {
        perror("shmat");
        return 2;
    }
    seg[88] = 9; /* arr[600]: the segment's */
    volatile long *other = shmat(id, NULL, 0);
    if (other == (void *)-1 || other[88] != 9 || arr[600] != 9) {
        printf("FAIL: the store did not land in the segment: arr[600]=%ld\n", arr[600]);
        return 1;
    }
    *(volatile long *)&arr[1] = 7;
    if (arr[0] != 5 || arr[1] != 7) {
        printf("FAIL: the first page holds arr[0]=%ld arr[1]=%ld (want 5, 7)\n", arr[0], arr[1]);
        return 1;
    }
    int rc = private_to_fork(arr, 1);
    if (rc)
        return rc;
    printf("remap: OK\n");
    return 0;
}

/* The call (its result `r`) must fail with `want`, as it does without libvmsrs, and leave arr watched and whole. */
static int expect_refused(const char *what, void *r, int want)
{
    int e = errno;
    if (r != MAP_FAILED || e != want) {
        printf("FAIL: %s: %s (want errno %d)\n", what, r == MAP_FAILED ? strerror(e) : "succeeded", want);
        return 1;
    }
    arr[2]++; /* still writable, still ours */
    return 0;
}

static int refused(void)
{
    arr[0] = 5;
    arr[600] = 6;
    int bad = 0;
    errno = 0;
    bad |= expect_refused("mmap MAP_FIXED, bad fd",
                          mmap(arr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, 12345, 0), EBADF);
    bad |= expect_refused("mmap MAP_FIXED, bad offset",
                          mmap(arr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 123),
                          EINVAL);
    void *dst = mmap(NULL, 16384, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    bad |= expect_refused("mremap DONTUNMAP resizing",
                          mremap(arr, 8192, 4096, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), EINVAL);
    bad |= expect_refused("mremap DONTUNMAP without MAYMOVE", mremap(arr, 8192, 8192, MREMAP_DONTUNMAP), EINVAL);
    bad |= expect_refused("mremap old_len 0", mremap(arr, 0, 4096, MREMAP_MAYMOVE), EINVAL);
    bad |= expect_refused("mremap huge", mremap(arr, 8192, (size_t)1 << 62, MREMAP_MAYMOVE), EINVAL);
    bad |= expect_refused("mremap onto itself",
                          mremap(arr, 8192, 8192, MREMAP_MAYMOVE | MREMAP_FIXED, (char *)arr + 4096), EINVAL);
    bad |= expect_refused("mremap growing in place", mremap(arr, 4096, 8192, 0), ENOMEM);
    if (bad)
        return 1;
    *(volatile long *)&arr[1] = 7;
    if (arr[0] != 5 || arr[1] != 7 || arr[600] != 6 || arr[2] != 8) {
        printf("FAIL: after refused calls arr[0]=%ld arr[1]=%ld arr[600]=%ld arr[2]=%ld (want 5 7 6 8)\n", arr[0],
               arr[1], arr[600], arr[2]);
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

#define WORKERS 4
static atomic_int stop, started;
static long done[WORKERS];

static volatile long *target; /* where the workers store, each to its own long */

static void *worker(void *x)
{
    long id = (long)x, n = 0;
    volatile long *p = target + id * 8;
    atomic_fetch_add(&started, 1);
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        *p = ++n;
    done[id] = n;
    return NULL;
}

/* Four workers store at `at` while the main thread makes the call `call(how)`: no store
   faults or is lost. */
static int racing(volatile long *at, void *(*call)(const char *), const char *how)
{
    target = at;
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    while (atomic_load(&started) < WORKERS)
        ;
    usleep(2000);
    void *r = call(how);
    usleep(2000);
    atomic_store(&stop, 1);
    int lost = 0;
    for (long i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
        lost += target[i * 8] != done[i];
    }
    if (r == MAP_FAILED || lost) {
        printf("FAIL: %s: %s, workers whose last store is missing: %d\n", how, r == MAP_FAILED ? "failed" : "ok",
               lost);
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

/* race: the run's first page mapped over, moved or unmapped; the workers store to its second. */
static void *race_call(const char *how)
{
    if (strcmp(how, "mremap") == 0) {
        void *dst = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return mremap(arr, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    }
    if (strcmp(how, "munmap") == 0)
        return munmap(arr, 4096) == 0 ? (void *)arr : MAP_FAILED;
    return mmap(arr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

/* Twenty watched runs of big (named by the test): pages 0-1, then the odd pages 3 to 39.
   many: the workers store to page 0 while the main thread maps over pages 1 to 39 in one
   call: every run is given back, the first (in slot order) with page 0 kept. */
__attribute__((aligned(4096))) long big[40][512] = {{1}};

static void *many_call(const char *how)
{
    (void)how;
    return mmap(big[1], sizeof big - sizeof big[0], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                -1, 0);
}

/* The same, with MAP_DROPPABLE (Linux 6.11; EINVAL before): the kernel replaces the pages
   whatever the type, so the runs stop being watched first. */
static int droppable(void)
{
    big[2][0] = 9;
    void *r = mmap(big, sizeof big, PROT_READ | PROT_WRITE, 0x08 /* MAP_DROPPABLE */ | MAP_ANONYMOUS | MAP_FIXED,
                   -1, 0);
    if (r == MAP_FAILED) {
        if (errno != EINVAL) {
            perror("mmap MAP_DROPPABLE");
            return 2;
        }
        printf("remap: OK (MAP_DROPPABLE: EINVAL from this kernel)\n");
        return 0;
    }
    /* Read-only, writable again, then a store: it lands in the new pages. */
    if (mprotect(big, 4096 * 3, PROT_READ) != 0 || mprotect(big, 4096 * 3, PROT_READ | PROT_WRITE) != 0) {
        perror("mprotect");
        return 2;
    }
    ((volatile long *)big[2])[0] = 5;
    ((volatile long *)big[2])[3] = 6;
    if (((volatile long *)big[2])[0] != 5 || ((volatile long *)big[2])[3] != 6) {
        printf("FAIL: droppable: stores after the mapping read %ld %ld (want 5 6)\n", ((volatile long *)big[2])[0],
               ((volatile long *)big[2])[3]);
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

/* The program's page protection: refused calls change nothing, pkey_mprotect is mprotect. */
static int protect(void)
{
    arr[0] = 5;
    arr[600] = 6;
    struct {
        const char *what;
        size_t len;
        int prot, err;
    } refused[] = {
        {"an unknown bit", 4096, PROT_READ | 0x40000, EINVAL},
        {"PROT_GROWSDOWN on data", 4096, PROT_READ | PROT_GROWSDOWN, EINVAL},
        {"a length past the end of memory", (size_t)-8192, PROT_READ, ENOMEM},
    };
    for (int i = 0; i < 3; i++) {
        errno = 0;
        if (mprotect(arr, refused[i].len, refused[i].prot) == 0 || errno != refused[i].err) {
            printf("FAIL: mprotect with %s: errno %d (want %d)\n", refused[i].what, errno, refused[i].err);
            return 1;
        }
        *(volatile long *)&arr[3 + i] = 40 + i;
        if (((volatile long *)arr)[3 + i] != 40 + i) {
            printf("FAIL: after a refused mprotect with %s a store reads %ld\n", refused[i].what, arr[3 + i]);
            return 1;
        }
    }
    /* pkey_mprotect with no key is mprotect: a page it makes writable stays journaled (said
       on stderr), and one it makes read-only faults the program's store: its fault (last: the
       faulted user's own stores to watched pages are then withdrawn). */
    if (pkey_mprotect((char *)arr + 4096, 4096, PROT_READ | PROT_WRITE, -1) != 0) {
        perror("pkey_mprotect");
        return 2;
    }
    *(volatile long *)&arr[600] = 10;
    if (((volatile long *)arr)[600] != 10) {
        printf("FAIL: after pkey_mprotect writable: arr[600]=%ld (want 10)\n", ((volatile long *)arr)[600]);
        return 1;
    }
    if (pkey_mprotect((char *)arr + 4096, 4096, PROT_READ, -1) != 0) {
        perror("pkey_mprotect");
        return 2;
    }
    *(volatile long *)&arr[600] = 9;
    if (((volatile long *)arr)[600] == 9) {
        printf("FAIL: a store to a page made read-only by pkey_mprotect landed\n");
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

/* MAP_DROPPABLE calls the kernel refuses before mapping anything change nothing. */
static int droppable_refused(void)
{
    int fd = open("/proc/self/exe", O_RDONLY);
    struct {
        const char *what;
        int flags, fd;
    } c[] = {
        {"a file", 0x08 | MAP_FIXED, fd},
        {"MAP_LOCKED", 0x08 | MAP_ANONYMOUS | MAP_FIXED | MAP_LOCKED, -1},
        {"MAP_GROWSDOWN", 0x08 | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN, -1},
    };
    for (int i = 0; i < 3; i++) {
        errno = 0;
        if (mmap(arr, 4096, PROT_READ | PROT_WRITE, c[i].flags, c[i].fd, 0) != MAP_FAILED || errno != EINVAL) {
            printf("FAIL: mmap MAP_DROPPABLE with %s: errno %d (want EINVAL)\n", c[i].what, errno);
            return 1;
        }
    }
    close(fd);
    *(volatile long *)&arr[1] = 5;
    if (((volatile long *)arr)[1] != 5) {
        printf("FAIL: a store after refused mmaps reads %ld\n", arr[1]);
        return 1;
    }
    printf("remap: OK\n");
    return 0;
}

static volatile sig_atomic_t runs;

static void on_alarm(int sig)
{
    (void)sig;
    ((volatile long *)arr)[1]++;
    runs++;
}

static int on_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 20}, {0, 20}};
    setitimer(ITIMER_REAL, &it, NULL);
    while (runs < 50)
        ;
    void *r = mmap(arr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    int before = runs;
    while (runs < before + 50)
        ;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    if (r == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    printf("remap: OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "move") == 0)
        return move();
    if (argc > 1 && strcmp(argv[1], "fixed") == 0)
        return fixed();
    if (argc > 1 && strcmp(argv[1], "shm") == 0)
        return shm();
    if (argc > 1 && strcmp(argv[1], "refused") == 0)
        return refused();
    if (argc > 2 && strcmp(argv[1], "race") == 0)
        return racing(&arr[512], race_call, argv[2]);
    if (argc > 1 && strcmp(argv[1], "signal") == 0)
        return on_signal();
    if (argc > 1 && strcmp(argv[1], "many") == 0)
        return racing(&big[0][0], many_call, "many");
    if (argc > 1 && strcmp(argv[1], "droppable") == 0)
        return droppable();
    if (argc > 1 && strcmp(argv[1], "protect") == 0)
        return protect();
    if (argc > 1 && strcmp(argv[1], "droppable_refused") == 0)
        return droppable_refused();
    fprintf(stderr, "usage: regress_watch_remap move|fixed|shm|refused|race mmap|mremap|munmap|signal|many|droppable|protect|droppable_refused\n");
    return 2;
}
