/* libFuzzer target: arbitrary bytes into the firmware's frame decoder and command engine.
 * The input is fed twice: raw (exercises COBS, length and CRC rejection) and re-framed with a
 * valid CRC (so the msgpack decoder and every command handler see the fuzzed payload). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ep_frame.h"
#include "ep_proto.h"
#include "../tests/mem_port.h"

static uint8_t raw[EP_MAX_PAYLOAD + EP_FRAME_OVERHEAD];
static uint8_t wire[EP_WIRE_MAX];
static int started;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!started) {
        ep_core_start();
        started = 1;
    }
    mem_port_clear_out();
    ep_core_feed(data, size);
    if (size >= 2) {
        size_t plen = size - 2;
        if (plen > EP_MAX_PAYLOAD) plen = EP_MAX_PAYLOAD;
        memcpy(raw + EP_HDR_BYTES, data + 2, plen);
        /* type from byte 0 (mapped onto the request range), seq from byte 1 */
        uint8_t type = (uint8_t)(data[0] % 12);
        size_t n = ep_frame_encode(wire, sizeof wire, raw, type, 0, data[1], 0, plen);
        ep_core_feed(wire, n);
    }
    return 0;
}
