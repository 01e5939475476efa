/*
 * bench_common.h -- what both benchmark harnesses print about the machine they ran on.
 */
#ifndef VMSRS_BENCH_COMMON_H
#define VMSRS_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Print the date, the CPU model and count, and the load average, one `key value` line each. */
static void bench_print_machine(void) {
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                if (p) {
                    p++;
                    while (*p == ' ') p++;
                    p[strcspn(p, "\n")] = 0;
                    snprintf(model, sizeof model, "%s", p);
                }
                break;
            }
        }
        fclose(f);
    }
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    double load[3] = { 0, 0, 0 };
    getloadavg(load, 3);
    printf("date      %s\n", date);
    printf("cpu       %s, %ld online CPUs (not pinned)\n", model, sysconf(_SC_NPROCESSORS_ONLN));
    printf("loadavg   %.2f %.2f %.2f at start\n", load[0], load[1], load[2]);
}

#endif
