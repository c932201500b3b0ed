/* ep_port.h - what every port of the reference firmware provides to the core.
 *
 * The core (protocol, framing, workloads) is portable C99 and calls only these functions to
 * reach the hardware. Ports: host (a Linux process serving a pty), qemu-mps2-an386 (CMSDK UART,
 * SysTick), stm32f446 (USART2, DWT CYCCNT), esp32 (ESP-IDF component).
 */
#ifndef EP_PORT_H
#define EP_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Bring up clocks, the UART/USB link and the cycle counter. Called once, first. */
void ep_port_init(void);

/* Read up to cap bytes from the link; wait at most timeout_ms for the first byte.
 * Returns the number of bytes read (0 on timeout), negative on a link error. */
int ep_port_read(uint8_t *buf, size_t cap, uint32_t timeout_ms);

/* Write all len bytes to the link (blocking). Returns 0, or negative on a link error. */
int ep_port_write(const uint8_t *buf, size_t len);

/* A free-running 64-bit cycle counter (wraps of a narrower hardware counter are counted by the
 * port) and its frequency in Hz. */
uint64_t ep_port_cycles(void);
uint32_t ep_port_cycle_hz(void);

/* What the counter really counts, for the report: "dwt-cyccnt", "systick", "systick-icount"
 * (under QEMU -icount: instructions, not cycles), "ccount" (ESP32), "clock-monotonic" (host). */
const char *ep_port_cycle_source(void);

/* Milliseconds since boot, for timeouts only (never for measurements). */
uint32_t ep_port_millis(void);

/* Board id as in boards/<id>.toml, CPU clock, RAM and flash sizes in bytes. */
const char *ep_port_board(void);
uint32_t ep_port_cpu_hz(void);
uint32_t ep_port_ram_bytes(void);
uint32_t ep_port_flash_bytes(void);

/* A value that differs on every boot (the host notices a reset mid-session by it). */
uint32_t ep_port_boot_id(void);

/* The stack region the core paints at boot and scans for the high-water mark: [lo, hi). The
 * port returns lo == hi when it cannot tell (host port). */
void ep_port_stack_region(uint8_t **lo, uint8_t **hi);

/* Restart the device (RESET); never returns. */
void ep_port_reset(void);

/* End the program with a status where that means something (QEMU semihosting SYS_EXIT, host
 * exit()); on real boards, same as ep_port_reset. */
void ep_port_exit(int status);

#endif
