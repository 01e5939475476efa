/* ECOSYSTEM pitfalls 1 and 17: the program run with pitfall_early_lib.so preloaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *p = malloc(16);
    strcpy(p, "main ok");
    puts(p);
    free(p);
    return 0;
}
