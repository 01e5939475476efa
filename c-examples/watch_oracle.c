/*
 * watch_oracle: an unmodified program (no vmsrs.h) driven line by line from stdin, for the
 * property test of drop-in monitored ranges against the reference oracle (tests/watch_oracle.rs,
 * DESIGN §2.4). Under LD_PRELOAD=libvmsrs.so with
 *
 *   VMSRS_RANGE_0=symbol:region  VMSRS_USER_CALL=session:-1  VMSRS_POLICY=oblivious
 *
 * `region` is watched: every store below traps and is emulated by libvmsrs, and each call of
 * session() on a worker thread is one user. Commands (one per line, answered by one line):
 *
 *   B t                    worker t enters session(): a user begins           -> OK
 *   S t form off size val  worker t stores with instruction `form`            -> OK
 *   L t off n              worker t loads n bytes (plain loads)              -> V <hex>
 *   F t                    worker t stores through NULL: its user faults     -> OK
 *   E t                    worker t returns from session(): the user ends    -> OK
 *   R off n                the main thread loads n bytes                     -> V <hex>
 *   Q                      quit
 *
 * Forms (x86-64 instructions, written out so the compiler cannot pick others):
 *   0 mov (size 1, 2, 4, 8; any alignment)    1 add dword [m], reg
 *   2 xor qword [m], reg                        3 lock xadd dword [m], reg
 *   4 rep stosb (size bytes of val's low byte)  5 movdqu [m], xmm (16 bytes)
 *   6 xchg qword [m], reg                       7 rep movsb (size bytes, val's bytes repeated)
 *   8 inc word [m]                              9 lock cmpxchg qword [m], reg (expected = current)
 *  10 memset (size bytes of val's low byte)    11 memcpy (size bytes, val's bytes repeated)
 *  12 read(2) from a pipe (size bytes, val's bytes repeated): the kernel's store
 *  13 readv(2) from a pipe into two buffers, split at the middle (as form 12)
 *
 * Forms 10 and 11 are glibc's own string functions (reached through libvmsrs's interposed
 * ones), which pick their instructions by CPU: AVX2 or AVX-512 (EVEX, ymm16-31, masked
 * stores for short tails) vector stores and `rep stosb`/`rep movsb`.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define REGION 8192
#define WORKERS 4

unsigned char region[REGION] __attribute__((aligned(4096)));

/* One worker's mailbox (kept off the watched pages: region is page-aligned and page-sized). */
struct mailbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char cmd[128];
    int pending; /* a command waits */
    int done;    /* its answer is ready */
    char answer[2 * 4096 + 8];
};

static struct mailbox box[WORKERS];
static int *volatile null_ptr;

static void hex(const unsigned char *p, int n, char *out) {
    static const char digits[] = "0123456789abcdef";
    *out++ = 'V';
    *out++ = ' ';
    for (int i = 0; i < n; i++) {
        *out++ = digits[p[i] >> 4];
        *out++ = digits[p[i] & 15];
    }
    *out = 0;
}

static void store(int form, unsigned char *p, int size, uint64_t val) {
    switch (form) {
    case 0:
        if (size == 1) __asm__ volatile("movb %b1, %0" : "=m"(*p) : "q"(val) : "memory");
        else if (size == 2) __asm__ volatile("movw %w1, %0" : "=m"(*(uint16_t *)p) : "r"(val) : "memory");
        else if (size == 4) __asm__ volatile("movl %k1, %0" : "=m"(*(uint32_t *)p) : "r"(val) : "memory");
        else __asm__ volatile("movq %1, %0" : "=m"(*(uint64_t *)p) : "r"(val) : "memory");
        break;
    case 1:
        __asm__ volatile("addl %k1, %0" : "+m"(*(uint32_t *)p) : "r"(val) : "memory", "cc");
        break;
    case 2:
        __asm__ volatile("xorq %1, %0" : "+m"(*(uint64_t *)p) : "r"(val) : "memory", "cc");
        break;
    case 3: {
        uint32_t v = (uint32_t)val;
        __asm__ volatile("lock xaddl %1, %0" : "+m"(*(uint32_t *)p), "+r"(v) : : "memory", "cc");
        break;
    }
    case 4: {
        void *d = p;
        size_t n = (size_t)size;
        __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(val) : "memory");
        break;
    }
    case 5: {
        __m128i x = _mm_set1_epi64x((long long)val);
        __asm__ volatile("movdqu %1, %0" : "=m"(*(__m128i *)p) : "x"(x) : "memory");
        break;
    }
    case 6: {
        uint64_t v = val;
        __asm__ volatile("xchgq %1, %0" : "+m"(*(uint64_t *)p), "+r"(v) : : "memory");
        break;
    }
    case 7: {
        unsigned char src[64];
        for (int i = 0; i < size; i++) src[i] = (unsigned char)(val >> (8 * (i % 8)));
        void *d = p;
        const void *s = src;
        size_t n = (size_t)size;
        __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
        break;
    }
    case 8:
        __asm__ volatile("incw %0" : "+m"(*(uint16_t *)p) : : "memory", "cc");
        break;
    case 10:
        memset(p, (int)(val & 0xff), (size_t)size);
        break;
    case 11: {
        unsigned char src[256];
        for (int i = 0; i < size; i++) src[i] = (unsigned char)(val >> (8 * (i % 8)));
        memcpy(p, src, (size_t)size);
        break;
    }
    case 12: {
        unsigned char src[256];
        int fds[2];
        for (int i = 0; i < size; i++) src[i] = (unsigned char)(val >> (8 * (i % 8)));
        if (pipe(fds) != 0 || write(fds[1], src, (size_t)size) != size || read(fds[0], p, (size_t)size) != size) {
            perror("watch_oracle: pipe/read");
            exit(2);
        }
        close(fds[0]);
        close(fds[1]);
        break;
    }
    case 13: {
        unsigned char src[256];
        int fds[2];
        for (int i = 0; i < size; i++) src[i] = (unsigned char)(val >> (8 * (i % 8)));
        struct iovec v[2] = {{p, (size_t)size / 2}, {p + size / 2, (size_t)(size - size / 2)}};
        if (pipe(fds) != 0 || write(fds[1], src, (size_t)size) != size || readv(fds[0], v, 2) != size) {
            perror("watch_oracle: pipe/readv");
            exit(2);
        }
        close(fds[0]);
        close(fds[1]);
        break;
    }
    case 9: {
        uint64_t expected = *(volatile uint64_t *)p;
        __asm__ volatile("lock cmpxchgq %2, %0" : "+m"(*(uint64_t *)p), "+a"(expected) : "r"(val) : "memory", "cc");
        break;
    }
    }
}

/* Run one command of the current session; returns 1 when the session ends. */
static int run(struct mailbox *b, char *answer) {
    char op;
    int form, off, size, n;
    unsigned long long val;
    strcpy(answer, "OK");
    if (sscanf(b->cmd, " S %*d %d %d %d %llx", &form, &off, &size, &val) == 4) {
        store(form, region + off, size, (uint64_t)val);
    } else if (sscanf(b->cmd, " L %*d %d %d", &off, &n) == 2) {
        unsigned char tmp[4096];
        for (int i = 0; i < n; i++) tmp[i] = ((volatile unsigned char *)region)[off + i];
        hex(tmp, n, answer);
    } else if (sscanf(b->cmd, " %c", &op) == 1 && op == 'F') {
        *null_ptr = 1; /* skipped by the oblivious policy: the user runs on, suppressed */
    } else if (op == 'E') {
        return 1;
    } else {
        snprintf(answer, 64, "ERR %.32s", b->cmd);
    }
    return 0;
}

static void wait_command(struct mailbox *b) {
    pthread_mutex_lock(&b->lock);
    while (!b->pending) pthread_cond_wait(&b->cond, &b->lock);
    b->pending = 0;
    pthread_mutex_unlock(&b->lock);
}

static void answer(struct mailbox *b) {
    pthread_mutex_lock(&b->lock);
    b->done = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* One user: from B to E. The rescue point named in the environment. */
__attribute__((noinline)) int session(struct mailbox *b) {
    for (;;) {
        wait_command(b);
        int end = run(b, b->answer);
        answer(b);
        if (end) return 0;
    }
}

static void *worker(void *arg) {
    struct mailbox *b = arg;
    for (;;) {
        wait_command(b); /* B */
        strcpy(b->answer, "OK");
        answer(b);
        session(b);
    }
    return NULL;
}

static void send(int t, const char *cmd) {
    struct mailbox *b = &box[t];
    pthread_mutex_lock(&b->lock);
    snprintf(b->cmd, sizeof b->cmd, "%.120s", cmd);
    b->done = 0;
    b->pending = 1;
    pthread_cond_broadcast(&b->cond);
    while (!b->done) pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
    printf("%s\n", b->answer);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < REGION; i++) region[i] = (unsigned char)(i * 7 + 3);
    pthread_t th[WORKERS];
    for (int t = 0; t < WORKERS; t++) {
        pthread_mutex_init(&box[t].lock, NULL);
        pthread_cond_init(&box[t].cond, NULL);
        pthread_create(&th[t], NULL, worker, &box[t]);
    }
    char line[256];
    static char out[2 * REGION + 8];
    while (fgets(line, sizeof line, stdin) != NULL) {
        int t, off, n;
        if (line[0] == 'Q') break;
        if (sscanf(line, " R %d %d", &off, &n) == 2) {
            static unsigned char tmp[REGION];
            for (int i = 0; i < n; i++) tmp[i] = ((volatile unsigned char *)region)[off + i];
            hex(tmp, n, out);
            printf("%s\n", out);
        } else if (sscanf(line, " %*c %d", &t) == 1 && t >= 0 && t < WORKERS) {
            line[strcspn(line, "\n")] = 0;
            send(t, line);
        } else {
            printf("ERR %s", line);
        }
    }
    return 0;
}
