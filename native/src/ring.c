/*
 * A lock-free single-producer/single-consumer ring of fixed-size records.
 *
 * The sampler thread pushes, Python drains in bulk. head and tail live on their own cache lines;
 * the producer publishes a record with a release store of head and the consumer frees slots with
 * a release store of tail, so neither side ever waits for the other. When the ring is full the
 * newest record is dropped and counted: the sampler must never block on its reader.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "edgeprof.h"

struct ep_ring {
    _Alignas(64) atomic_size_t head; /* next slot to write (producer) */
    _Alignas(64) atomic_size_t tail; /* next slot to read (consumer) */
    _Alignas(64) size_t mask;
    size_t ncols;
    uint64_t *ticks;
    double *values;
};

ep_ring *ep_ring_new(size_t capacity, size_t ncols) {
    if (capacity == 0 || capacity > ((size_t)1 << 40)) return NULL;
    size_t cap = 1;
    while (cap < capacity) cap <<= 1;
    ep_ring *r = aligned_alloc(64, sizeof(ep_ring));
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->mask = cap - 1;
    r->ncols = ncols;
    r->ticks = calloc(cap, sizeof(uint64_t));
    r->values = ncols ? calloc(cap * ncols, sizeof(double)) : NULL;
    if (!r->ticks || (ncols && !r->values)) {
        ep_ring_free(r);
        return NULL;
    }
    return r;
}

void ep_ring_free(ep_ring *r) {
    if (!r) return;
    free(r->ticks);
    free(r->values);
    free(r);
}

int ep_ring_push(ep_ring *r, uint64_t tick, const double *values) {
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - t > r->mask) return -ENOSPC;
    size_t slot = h & r->mask;
    r->ticks[slot] = tick;
    if (r->ncols) memcpy(r->values + slot * r->ncols, values, r->ncols * sizeof(double));
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return 0;
}

size_t ep_ring_drain(ep_ring *r, uint64_t *ticks, double *values, size_t max) {
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = h - t;
    if (n > max) n = max;
    for (size_t k = 0; k < n; k++) {
        size_t slot = (t + k) & r->mask;
        ticks[k] = r->ticks[slot];
        if (r->ncols)
            memcpy(values + k * r->ncols, r->values + slot * r->ncols, r->ncols * sizeof(double));
    }
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
    return n;
}

size_t ep_ring_size(const ep_ring *r) {
    size_t h = atomic_load_explicit(&((ep_ring *)r)->head, memory_order_acquire);
    size_t t = atomic_load_explicit(&((ep_ring *)r)->tail, memory_order_acquire);
    return h - t;
}

size_t ep_ring_capacity(const ep_ring *r) { return r->mask + 1; }
