/* CHECK(cond, fmt, ...): the examples' assertion. When cond is false, print "FAIL: " and the
 * message on stderr and exit 1, which the Rust test driving the example reports as a failure. */
#ifndef VMSRS_EXAMPLE_CHECK_H
#define VMSRS_EXAMPLE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                                  \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

#endif
