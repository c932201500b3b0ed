/* smoke.c - a bring-up firmware for a port: a line protocol over ep_port.h alone, so the UART,
 * the cycle counter, the boot id, RESET and the exit status can be checked without the core.
 *
 *   echo TEXT   -> TEXT
 *   info        -> board=... source=... hz=... cpu_hz=... boot=XXXXXXXX stack=N
 *   spin N      -> cycles=C    (C: the cycles of N iterations of a fixed loop)
 *   mono N [K [M]] -> back=B span=S  (at least N counter reads, K loop iterations apart, and
 *                  on until the span is at least M cycles: B steps backwards, S the cycles from
 *                  the first read to the last; checks that the count never goes back across
 *                  the counter's wraps)
 *   fault       -> (executes an undefined instruction: the port's fault path, which under
 *                  QEMU exits with status 0xF3, a HardFault)
 *   below       -> below=V     (writes a word just below RAM, where a stack overflow goes,
 *                  and reads it back)
 *   reset       -> (restarts; the banner shows a new boot id)
 *   exit N      -> (ends with status N; QEMU exits with it)
 * Every boot starts with a banner line "edgeprof-smoke boot=XXXXXXXX".
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ep_port.h"

static void put(const char *s)
{
    (void)ep_port_write((const uint8_t *)s, strlen(s));
}

static void put_u32(uint32_t v, int hex)
{
    char buf[11];
    int i = (int)sizeof buf;
    buf[--i] = '\0';
    do {
        uint32_t d = hex ? v & 0xFu : v % 10u;
        buf[--i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v = hex ? v >> 4 : v / 10u;
    } while (v && i > 0);
    if (hex)
        while (i > 2)
            buf[--i] = '0';
    put(&buf[i]);
}

static void put_u64(uint64_t v)
{
    char buf[21];
    int i = (int)sizeof buf;
    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v && i > 0);
    put(&buf[i]);
}

static uint32_t parse_u32(const char *s)
{
    uint32_t v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10u + (uint32_t)(*s++ - '0');
    return v;
}

static void command(const char *line)
{
    if (strncmp(line, "echo ", 5) == 0) {
        put(line + 5);
        put("\n");
    } else if (strcmp(line, "info") == 0) {
        uint8_t *lo, *hi;
        ep_port_stack_region(&lo, &hi);
        put("board=");
        put(ep_port_board());
        put(" source=");
        put(ep_port_cycle_source());
        put(" hz=");
        put_u32(ep_port_cycle_hz(), 0);
        put(" cpu_hz=");
        put_u32(ep_port_cpu_hz(), 0);
        put(" boot=");
        put_u32(ep_port_boot_id(), 1);
        put(" stack=");
        put_u32((uint32_t)(hi - lo), 0);
        put("\n");
    } else if (strncmp(line, "spin ", 5) == 0) {
        uint32_t n = parse_u32(line + 5);
        volatile uint32_t sink = 0;
        uint64_t t0 = ep_port_cycles();
        for (uint32_t i = 0; i < n; ++i)
            sink = sink + i;
        uint64_t t1 = ep_port_cycles();
        put("cycles=");
        put_u32((uint32_t)(t1 - t0), 0);
        put("\n");
    } else if (strncmp(line, "mono ", 5) == 0) {
        const char *k_at = strchr(line + 5, ' ');
        const char *m_at = k_at ? strchr(k_at + 1, ' ') : NULL;
        uint32_t n = parse_u32(line + 5), k = k_at ? parse_u32(k_at + 1) : 0, back = 0;
        uint64_t min_span = m_at ? parse_u32(m_at + 1) : 0;
        uint64_t first = ep_port_cycles(), prev = first, now = first;
        for (uint32_t i = 0; i < n || now - first < min_span; ++i) {
            for (volatile uint32_t j = 0; j < k; ++j) {
            }
            now = ep_port_cycles();
            back += now < prev;
            prev = now;
        }
        put("back=");
        put_u32(back, 0);
        put(" span=");
        put_u64(now - first);
        put("\n");
    } else if (strcmp(line, "fault") == 0) {
        put("faulting\n");
        __asm__ volatile("udf #0");
        put("no fault\n");
    } else if (strcmp(line, "below") == 0) {
        volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)(0x20000000u - 4u);
        *p = 0x12345678u;
        put("below=");
        put_u32(*p, 1);
        put("\n");
    } else if (strcmp(line, "reset") == 0) {
        ep_port_reset();
    } else if (strncmp(line, "exit ", 5) == 0) {
        ep_port_exit((int)parse_u32(line + 5));
    } else {
        put("?\n");
    }
}

int main(void)
{
    ep_port_init();
    put("edgeprof-smoke boot=");
    put_u32(ep_port_boot_id(), 1);
    put("\n");
    char line[128];
    size_t len = 0;
    for (;;) {
        uint8_t buf[32];
        int n = ep_port_read(buf, sizeof buf, 1000);
        for (int i = 0; i < n; ++i) {
            char c = (char)buf[i];
            if (c == '\n') {
                line[len] = '\0';
                command(line);
                len = 0;
            } else if (c != '\r' && len < sizeof line - 1) {
                line[len++] = c;
            }
        }
    }
}
