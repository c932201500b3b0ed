/* The "dot" workload: int8 dot products of a 256-byte input with each 256-byte row of the
 * uploaded buffer. Real multiply-accumulate work that needs nothing but the core, so RUN can be
 * tested on every port without a model. */
#include <string.h>

#include "ep_core.h"

#define DOT_N 256u
#define DOT_DEFAULT_ROWS 16u
#define DOT_MAX_ROWS 4096u

static int8_t s_in[DOT_N];
static int8_t *s_out;
static const int8_t *s_rows;
static size_t s_nrows;

static int dot_prepare(const uint8_t *data, size_t len, ep_wl_shape *shape, const char **msg,
                       int *detail) {
    (void)detail;
    if (data && len) {
        if (len % DOT_N || len / DOT_N > DOT_MAX_ROWS) {
            *msg = "dot: the upload must be 1 to 4096 rows of 256 bytes";
            return -1;
        }
        s_rows = (const int8_t *)data;
        s_nrows = len / DOT_N;
    } else {
        int8_t *rows = ep_heap_alloc(DOT_DEFAULT_ROWS * DOT_N);
        if (!rows) {
            *msg = "dot: heap too small";
            return -1;
        }
        ep_fill_seeded(rows, DOT_DEFAULT_ROWS * DOT_N, 0x5eedu);
        s_rows = rows;
        s_nrows = DOT_DEFAULT_ROWS;
    }
    s_out = ep_heap_alloc(s_nrows);
    if (!s_out) {
        *msg = "dot: heap too small";
        return -1;
    }
    shape->in = s_in;
    shape->in_bytes = DOT_N;
    shape->out = s_out;
    shape->out_bytes = s_nrows;
    shape->layers = 0;
    shape->layer_op = NULL;
    return 0;
}

static int dot_run(uint32_t *layer_cycles) {
    (void)layer_cycles;
    for (size_t r = 0; r < s_nrows; r++) {
        const int8_t *row = s_rows + r * DOT_N;
        int32_t acc = 0;
        for (size_t k = 0; k < DOT_N; k++) acc += (int32_t)row[k] * (int32_t)s_in[k];
        int32_t q = acc >> 10;
        s_out[r] = (int8_t)(q > 127 ? 127 : q < -128 ? -128 : q);
    }
    return 0;
}

const ep_workload ep_wl_dot = {"dot", dot_prepare, dot_run};
