/* A minimal assertion harness: every failure names its file and line; main returns non-zero. */
#ifndef EP_CHECK_H
#define EP_CHECK_H
#include <stdio.h>

static int ep_failures = 0;
static int ep_checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        ep_checks++;                                                             \
        if (!(cond)) {                                                           \
            ep_failures++;                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_DONE()                                                             \
    do {                                                                         \
        printf("%d checks, %d failed\n", ep_checks, ep_failures);                \
        return ep_failures ? 1 : 0;                                              \
    } while (0)
#endif
