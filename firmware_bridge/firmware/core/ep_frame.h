/* ep_frame.h - protocol v1 frames: header, msgpack payload, CRC-32, COBS, 0x00 delimiter.
 * The decoder is fed bytes one at a time and yields only frames whose CRC matches. */
#ifndef EP_FRAME_H
#define EP_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t type, flags;
    uint16_t seq;
    uint32_t boot;
    const uint8_t *payload; /* valid until the next ep_decoder_feed */
    size_t payload_len;
} ep_frame;

typedef struct {
    uint8_t *buf;
    size_t cap; /* bytes of encoded frame the buffer holds (a longer frame is dropped) */
    size_t len;
    int discarding;
    uint32_t good, bad, overflow;
} ep_decoder;

void ep_decoder_init(ep_decoder *d, uint8_t *buf, size_t cap);
/* Feed one byte. Returns 1 and fills *f when it completed a valid frame, else 0. */
int ep_decoder_feed(ep_decoder *d, uint8_t byte, ep_frame *f);

/* Encode a frame whose payload already sits at raw + 8 (raw has room for 8 + plen + 4) into
 * wire (COBS plus the 0x00 delimiter). Returns the wire length, 0 when it does not fit. */
size_t ep_frame_encode(uint8_t *wire, size_t wire_cap, uint8_t *raw, uint8_t type, uint8_t flags,
                       uint16_t seq, uint32_t boot, size_t plen);

#endif
