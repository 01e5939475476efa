/* The 256-range limit: profile 257 ranges, unprofile all, again 10 times; stores in between.
 * Expected: the 257th is VMSRS_ETOOMANY each round, every other call 0, RSS bounded. */
#define _GNU_SOURCE
#include <vmsrs.h>
#include <sys/mman.h>
int main(void) {
    if (vmsrs_init_profile(NULL) != 0) return 2;
    char *m = mmap(NULL, 257 * 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int bad = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 257; i++) {
            int rc = vmsrs_profile(m + i * 65536, 65536, "r");
            if (rc != (i < 256 ? 0 : VMSRS_ETOOMANY)) { fprintf(stderr, "round %d profile %d: %d\n", round, i, rc); bad++; }
            if (rc == 0) for (int k = 0; k < 65536; k += 512) vmsrs_store64((uint64_t *)(m + i * 65536 + k), k);
        }
        for (int i = 0; i < 256; i++) { int rc = vmsrs_unprofile(m + i * 65536); if (rc) { fprintf(stderr, "unprofile %d: %d\n", i, rc); bad++; } }
    }
    FILE *f = fopen("/proc/self/status", "r"); char line[256];
    while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS", 5) || !strncmp(line, "VmSize", 6)) fputs(line, stderr);
    fprintf(stderr, "bad=%d\n", bad);
    return bad != 0;
}
