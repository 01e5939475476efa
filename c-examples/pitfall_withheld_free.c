/*
 * DESIGN §5 (class 3 in drop-in mode): after its fault a user's free is not performed. A
 * thread faults (contained: its implicit user is suppressed), then frees a block the main
 * thread still uses and later frees itself, and reallocs another: without libvmsrs's
 * withheld free that is a use after free and a double free (glibc aborts). Prints the
 * block's contents and frees_withheld (read through vmsrs_stats, found with dlsym: the
 * program is not linked with libvmsrs). Unmodified.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vmsrs.h>

static char *shared;
static char *resized;
static int *volatile wild = (int *)48;

static void *faulty(void *arg) {
    (void)arg;
    int v = *wild;              /* contained */
    free(shared);               /* withheld */
    char *q = realloc(resized, 4096); /* the old block is never freed */
    printf("realloc copied %s %d\n", q && strcmp(q, "resized") == 0 ? "yes" : "no", v);
    return NULL;
}

int main(void) {
    shared = malloc(64);
    strcpy(shared, "still mine");
    resized = malloc(16);
    strcpy(resized, "resized");
    pthread_t t;
    pthread_create(&t, NULL, faulty, NULL);
    pthread_join(t, NULL);
    printf("shared: %s\nresized: %s\n", shared, resized);
    free(shared);
    free(resized);
    int (*stats)(struct vmsrs_stats *) = (int (*)(struct vmsrs_stats *))dlsym(RTLD_DEFAULT, "vmsrs_stats");
    struct vmsrs_stats st;
    memset(&st, 0, sizeof st);
    if (stats && stats(&st) == 0) printf("frees_withheld %llu\n", (unsigned long long)st.frees_withheld);
    else printf("no vmsrs_stats\n");
    return 0;
}
