/* Workload heap (a bump allocator with in-use and high-water accounting) and stack painting.
 * Both watermarks go into every RESULT, so a board's memory report comes from the device. */
#include <string.h>

#include "ep_core.h"
#include "ep_port.h"
#include "ep_workload.h"

#ifndef EP_HEAP_BYTES
#define EP_HEAP_BYTES (256u * 1024u)
#endif

#define EP_STACK_PAINT 0xC5u
#define EP_STACK_MARGIN 256u /* bytes below the current frame left unpainted */

static union {
    uint64_t align;
    uint8_t bytes[EP_HEAP_BYTES];
} s_heap;
static size_t s_used, s_hwm;
static uint8_t *s_stack_lo, *s_stack_hi;

void *ep_heap_alloc(size_t n) {
    size_t start = (s_used + 7u) & ~(size_t)7u;
    if (start > EP_HEAP_BYTES || n > EP_HEAP_BYTES - start) return NULL;
    s_used = start + n;
    if (s_used > s_hwm) s_hwm = s_used;
    return s_heap.bytes + start;
}

void ep_heap_reset(void) { s_used = 0; }
size_t ep_heap_in_use(void) { return s_used; }
size_t ep_heap_hwm(void) { return s_hwm; }
size_t ep_heap_capacity(void) { return EP_HEAP_BYTES; }

uint8_t *ep_heap_scratch(size_t *len) {
    size_t start = (s_used + 7u) & ~(size_t)7u;
    *len = start < EP_HEAP_BYTES ? EP_HEAP_BYTES - start : 0;
    return s_heap.bytes + start;
}

/* Paint the unused part of the stack below the caller's frame. Must be called from a shallow
 * frame (ep_main does it first). noinline keeps the local's address below the caller's. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
void ep_stack_paint(void) {
    volatile uint8_t here = 0;
    uintptr_t sp = (uintptr_t)&here;
    ep_port_stack_region(&s_stack_lo, &s_stack_hi);
    uintptr_t lo = (uintptr_t)s_stack_lo, hi = (uintptr_t)s_stack_hi;
    if (!s_stack_lo || lo >= hi || sp <= lo || sp > hi) {
        s_stack_lo = s_stack_hi = NULL;
        return;
    }
    if (sp - lo <= EP_STACK_MARGIN) return;
    size_t n = (size_t)(sp - EP_STACK_MARGIN - lo);
    for (volatile uint8_t *p = s_stack_lo; n--; p++) *p = EP_STACK_PAINT;
}

size_t ep_stack_size(void) { return (size_t)(s_stack_hi - s_stack_lo); }

size_t ep_stack_hwm(void) {
    if (!s_stack_lo) return 0;
    const volatile uint8_t *p = s_stack_lo;
    while (p < s_stack_hi && *p == EP_STACK_PAINT) p++;
    return (size_t)(s_stack_hi - (const uint8_t *)(uintptr_t)p);
}
