#include "mem_port.h"

#include <string.h>

#include "ep_port.h"

#define IN_CAP (1u << 20)
#define OUT_CAP (1u << 20)

static uint8_t s_in[IN_CAP];
static size_t s_in_head, s_in_tail;
static uint8_t s_out[OUT_CAP];
static size_t s_out_len;
static uint32_t s_millis;
static uint64_t s_cycles;
static void (*s_idle)(void);
int mem_port_resets;

void mem_port_push(const uint8_t *p, size_t n) {
    if (s_in_head == s_in_tail) s_in_head = s_in_tail = 0;
    if (n > IN_CAP - s_in_tail) n = IN_CAP - s_in_tail;
    memcpy(s_in + s_in_tail, p, n);
    s_in_tail += n;
}

void mem_port_on_idle(void (*fn)(void)) { s_idle = fn; }

const uint8_t *mem_port_out(size_t *n) {
    *n = s_out_len;
    return s_out;
}

void mem_port_clear_out(void) { s_out_len = 0; }

void mem_port_reset_state(void) {
    s_in_head = s_in_tail = 0;
    s_out_len = 0;
    s_idle = NULL;
}

void ep_port_init(void) {}

int ep_port_read(uint8_t *buf, size_t cap, uint32_t timeout_ms) {
    if (s_in_head == s_in_tail && s_idle) s_idle();
    if (s_in_head == s_in_tail) {
        s_millis += timeout_ms ? timeout_ms : 1;
        return 0;
    }
    size_t n = s_in_tail - s_in_head;
    if (n > cap) n = cap;
    memcpy(buf, s_in + s_in_head, n);
    s_in_head += n;
    s_millis += 1;
    return (int)n;
}

int ep_port_write(const uint8_t *buf, size_t len) {
    if (len > OUT_CAP - s_out_len) {
        s_out_len = 0; /* the fuzzer never reads it: keep only the newest bytes */
        if (len > OUT_CAP) return 0;
    }
    memcpy(s_out + s_out_len, buf, len);
    s_out_len += len;
    return 0;
}

uint64_t ep_port_cycles(void) { return s_cycles += 1000; }
uint32_t ep_port_cycle_hz(void) { return 1000000u; }
const char *ep_port_cycle_source(void) { return "test"; }
uint32_t ep_port_millis(void) { return s_millis; }
const char *ep_port_board(void) { return "test"; }
uint32_t ep_port_cpu_hz(void) { return 1000000u; }
uint32_t ep_port_ram_bytes(void) { return 65536u; }
uint32_t ep_port_flash_bytes(void) { return 0; }
uint32_t ep_port_boot_id(void) { return 0x12345678u; }

void ep_port_stack_region(uint8_t **lo, uint8_t **hi) { *lo = *hi = NULL; }
void ep_port_reset(void) { mem_port_resets++; }
void ep_port_exit(int status) { (void)status; }
