/* ep_core.h - what the core's modules share with each other (not part of the user API). */
#ifndef EP_CORE_H
#define EP_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "ep_workload.h"

size_t ep_heap_capacity(void);
void ep_stack_paint(void);
size_t ep_stack_size(void);
size_t ep_stack_hwm(void);

/* xorshift32, the input PRNG of RUN (docs/firmware-protocol.md, section 7). */
uint32_t ep_xorshift32(uint32_t *state);
void ep_fill_seeded(int8_t *dst, size_t n, uint32_t seed);

/* The built-in workloads. */
extern const ep_workload ep_wl_dot;
#ifdef EP_HAVE_MODEL
extern const ep_workload ep_wl_model;
#endif

#endif
