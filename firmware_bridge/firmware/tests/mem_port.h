/* mem_port.h - a port made of memory buffers and a simulated clock, for the core's unit tests
 * and the fuzzer: bytes pushed in are what the "host" sent; bytes written out are captured. */
#ifndef MEM_PORT_H
#define MEM_PORT_H

#include <stddef.h>
#include <stdint.h>

void mem_port_push(const uint8_t *p, size_t n);
/* Called when the core waits for input and nothing is queued (a test's host side). */
void mem_port_on_idle(void (*fn)(void));
const uint8_t *mem_port_out(size_t *n);
void mem_port_clear_out(void);
void mem_port_reset_state(void);
extern int mem_port_resets; /* times ep_port_reset was called */

/* Entry points of the engine used by tests (defined in core/ep_main.c). */
void ep_core_start(void);
void ep_core_feed(const uint8_t *p, size_t n);

#endif
