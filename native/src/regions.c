/*
 * Region marks: begin/end ticks (and, where available, cycle and instruction counts) written
 * into arrays allocated up front, so marking costs one tick read and two stores.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "edgeprof.h"

struct ep_regions {
    size_t cap, n;
    int open;          /* a region is open at index n */
    int open_dropped;  /* the open region did not fit: its end is swallowed quietly */
    uint64_t dropped, unmatched;
    uint64_t *begin, *end;
    uint64_t *cyc_b, *cyc_e, *ins_b, *ins_e; /* NULL without counters */
    ep_counters *ctr;
    char reason[256];
};

static _Atomic(ep_regions *) g_active = NULL;

ep_regions *ep_regions_new(size_t capacity, int counters) {
    if (capacity == 0) return NULL;
    ep_regions *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cap = capacity;
    r->begin = calloc(capacity, sizeof(uint64_t));
    r->end = calloc(capacity, sizeof(uint64_t));
    if (!r->begin || !r->end) goto fail;
    if (counters) {
        r->ctr = ep_counters_open(r->reason, sizeof r->reason);
        if (r->ctr) {
            r->cyc_b = calloc(capacity, sizeof(uint64_t));
            r->cyc_e = calloc(capacity, sizeof(uint64_t));
            r->ins_b = calloc(capacity, sizeof(uint64_t));
            r->ins_e = calloc(capacity, sizeof(uint64_t));
            if (!r->cyc_b || !r->cyc_e || !r->ins_b || !r->ins_e) goto fail;
        }
    } else {
        strcpy(r->reason, "counters not requested");
    }
    /* Touch every page now so the first marks do not take page faults. */
    memset(r->begin, 0, capacity * sizeof(uint64_t));
    memset(r->end, 0, capacity * sizeof(uint64_t));
    return r;
fail:
    ep_regions_free(r);
    return NULL;
}

void ep_regions_free(ep_regions *r) {
    if (!r) return;
    ep_regions *expected = r;
    atomic_compare_exchange_strong(&g_active, &expected, NULL);
    ep_counters_close(r->ctr);
    free(r->begin);
    free(r->end);
    free(r->cyc_b);
    free(r->cyc_e);
    free(r->ins_b);
    free(r->ins_e);
    free(r);
}

int64_t ep_region_begin(ep_regions *r) {
    if (r->open || r->open_dropped) {
        r->unmatched++;
        return -EBUSY;
    }
    if (r->n >= r->cap) {
        r->dropped++;
        r->open_dropped = 1;
        return -ENOSPC;
    }
    size_t i = r->n;
    if (r->ctr) ep_counters_read(r->ctr, &r->cyc_b[i], &r->ins_b[i]);
    r->begin[i] = ep_tick();
    r->open = 1;
    return (int64_t)i;
}

int64_t ep_region_end(ep_regions *r) {
    uint64_t t = ep_tick_end();
    if (r->open_dropped) {
        r->open_dropped = 0;
        return -ENOSPC;
    }
    if (!r->open) {
        r->unmatched++;
        return -EINVAL;
    }
    size_t i = r->n;
    r->end[i] = t;
    if (r->ctr) ep_counters_read(r->ctr, &r->cyc_e[i], &r->ins_e[i]);
    r->open = 0;
    r->n = i + 1;
    return (int64_t)i;
}

size_t ep_regions_count(const ep_regions *r) { return r->n; }
size_t ep_regions_capacity(const ep_regions *r) { return r->cap; }
uint64_t ep_regions_dropped(const ep_regions *r) { return r->dropped; }
uint64_t ep_regions_unmatched(const ep_regions *r) { return r->unmatched; }
int ep_regions_has_counters(const ep_regions *r) { return r->ctr != NULL; }
const char *ep_regions_counters_reason(const ep_regions *r) { return r->ctr ? "" : r->reason; }

size_t ep_regions_copy(const ep_regions *r, uint64_t *begin, uint64_t *end, uint64_t *cycles,
                       uint64_t *instructions, size_t max) {
    size_t n = r->n < max ? r->n : max;
    if (begin) memcpy(begin, r->begin, n * sizeof(uint64_t));
    if (end) memcpy(end, r->end, n * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) {
        if (cycles) cycles[i] = r->ctr ? r->cyc_e[i] - r->cyc_b[i] : 0;
        if (instructions) instructions[i] = r->ctr ? r->ins_e[i] - r->ins_b[i] : 0;
    }
    return n;
}

void ep_regions_reset(ep_regions *r) {
    r->n = 0;
    r->open = 0;
    r->open_dropped = 0;
    r->dropped = 0;
    r->unmatched = 0;
}

void ep_regions_activate(ep_regions *r) { atomic_store(&g_active, r); }

void ep_mark_begin(void) {
    ep_regions *r = atomic_load_explicit(&g_active, memory_order_relaxed);
    if (r) ep_region_begin(r);
}

void ep_mark_end(void) {
    ep_regions *r = atomic_load_explicit(&g_active, memory_order_relaxed);
    if (r) ep_region_end(r);
}
