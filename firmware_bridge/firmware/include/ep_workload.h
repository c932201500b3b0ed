/* ep_workload.h - how users put their own inference code under the profiler.
 *
 * A workload is a name, a prepare step and one inference. Link the firmware core into your
 * firmware, register your workload with ep_workload_register() before ep_main(), and the host's
 * RUN measures it with the device's cycle counter, exactly as it measures the demo workloads.
 * Only run() sits between the two cycle-counter reads; inputs are written and outputs read
 * outside it.
 */
#ifndef EP_WORKLOAD_H
#define EP_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define EP_MAX_LAYERS 64 /* per-layer cycle entries a RESULT can carry */

/* What a prepared workload looks like to the core. */
typedef struct {
    int8_t *in;            /* input buffer the core fills before each run() */
    size_t in_bytes;
    const int8_t *out;     /* output buffer the core reads after each run() */
    size_t out_bytes;
    size_t layers;         /* entries run() writes into layer_cycles; 0 if it cannot */
    const char *(*layer_op)(size_t i); /* op name of layer i, or NULL */
} ep_wl_shape;

typedef struct {
    const char *name;
    /* Prepare from the last "model" upload (data, len), or (NULL, 0) when there is none. Fill
     * shape. Return 0, or a negative code with *msg set to one line; detail is passed to the
     * host as ERROR's detail. Memory comes from ep_heap_alloc (ep_heap_reset() is called
     * before). */
    int (*prepare)(const uint8_t *data, size_t len, ep_wl_shape *shape, const char **msg,
                   int *detail);
    /* One inference over shape.in into shape.out. layer_cycles is NULL or has EP_MAX_LAYERS
     * entries. Return 0, or a negative code on failure. */
    int (*run)(uint32_t *layer_cycles);
} ep_workload;

/* Add a workload (up to 8). Returns 0, or -1 when the table is full or the name is taken. */
int ep_workload_register(const ep_workload *w);

/* Accounted heap for workloads: a bump allocator whose in-use bytes and high-water mark go
 * into every RESULT. Aligned to 8 bytes. NULL when it does not fit. */
void *ep_heap_alloc(size_t n);
void ep_heap_reset(void);
size_t ep_heap_in_use(void);
size_t ep_heap_hwm(void);
/* The free rest of the heap, not accounted: for sizing a layout before allocating it. */
uint8_t *ep_heap_scratch(size_t *len);

/* The core's main loop: call it after ep_port_init() (and workload registration). Never
 * returns, except on the host port when the link is gone. */
void ep_main(void);

#endif
