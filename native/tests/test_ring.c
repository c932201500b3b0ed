/* The SPSC ring: order, wraparound, full-ring drops, and a two-thread stress run. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "edgeprof.h"

#define N_STRESS 2000000u

static void *producer(void *arg) {
    ep_ring *r = arg;
    double v[2];
    for (uint64_t i = 0; i < N_STRESS; i++) {
        v[0] = (double)i;
        v[1] = -(double)i;
        while (ep_ring_push(r, i, v) == -ENOSPC) {
        }
    }
    return NULL;
}

int main(void) {
    ep_ring *r = ep_ring_new(5, 2);
    CHECK(r != NULL);
    CHECK(ep_ring_capacity(r) == 8);
    double v[2], out[16 * 2];
    uint64_t ticks[16];
    for (uint64_t i = 0; i < 8; i++) {
        v[0] = (double)i;
        v[1] = (double)(i * 10);
        CHECK(ep_ring_push(r, 100 + i, v) == 0);
    }
    CHECK(ep_ring_push(r, 999, v) == -ENOSPC);
    CHECK(ep_ring_size(r) == 8);
    CHECK(ep_ring_drain(r, ticks, out, 3) == 3);
    CHECK(ticks[0] == 100 && ticks[2] == 102 && out[5] == 20.0);
    for (uint64_t i = 8; i < 11; i++) { /* wraps around the end of the buffer */
        v[0] = (double)i;
        v[1] = (double)(i * 10);
        CHECK(ep_ring_push(r, 100 + i, v) == 0);
    }
    size_t n = ep_ring_drain(r, ticks, out, 16);
    CHECK(n == 8);
    int ordered = 1;
    for (size_t k = 0; k < n; k++)
        ordered &= ticks[k] == 103 + k && out[2 * k] == (double)(3 + k) &&
                    out[2 * k + 1] == (double)((3 + k) * 10);
    CHECK(ordered);
    CHECK(ep_ring_drain(r, ticks, out, 16) == 0);
    ep_ring_free(r);

    CHECK(ep_ring_new(0, 1) == NULL);

    /* Stress: one producer thread, this thread consumes; nothing lost, nothing reordered. */
    ep_ring *s = ep_ring_new(1024, 2);
    pthread_t th;
    pthread_create(&th, NULL, producer, s);
    uint64_t expect = 0;
    int ok = 1;
    uint64_t *bt = malloc(256 * sizeof(uint64_t));
    double *bv = malloc(256 * 2 * sizeof(double));
    while (expect < N_STRESS) {
        size_t got = ep_ring_drain(s, bt, bv, 256);
        for (size_t k = 0; k < got; k++, expect++)
            ok &= bt[k] == expect && bv[2 * k] == (double)expect && bv[2 * k + 1] == -(double)expect;
    }
    pthread_join(th, NULL);
    CHECK(ok);
    CHECK(expect == N_STRESS);
    free(bt);
    free(bv);
    ep_ring_free(s);
    CHECK_DONE();
}
