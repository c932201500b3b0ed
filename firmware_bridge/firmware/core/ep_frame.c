#include "ep_frame.h"

#include "ep_cobs.h"
#include "ep_crc32.h"
#include "ep_proto.h"

void ep_decoder_init(ep_decoder *d, uint8_t *buf, size_t cap) {
    d->buf = buf;
    d->cap = cap;
    d->len = 0;
    d->discarding = 0;
    d->good = d->bad = d->overflow = 0;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int finish(ep_decoder *d, ep_frame *f) {
    size_t n = d->len;
    d->len = 0;
    if (n == 0) return 0; /* an empty frame: a lone delimiter, nothing to count */
    long m = ep_cobs_decode(d->buf, d->buf, n);
    if (m < (long)EP_FRAME_OVERHEAD) {
        d->bad++;
        return 0;
    }
    size_t body = (size_t)m - EP_CRC_BYTES;
    if (ep_crc32(0, d->buf, body) != rd32(d->buf + body)) {
        d->bad++;
        return 0;
    }
    f->type = d->buf[0];
    f->flags = d->buf[1];
    f->seq = (uint16_t)(d->buf[2] | d->buf[3] << 8);
    f->boot = rd32(d->buf + 4);
    f->payload = d->buf + EP_HDR_BYTES;
    f->payload_len = body - EP_HDR_BYTES;
    d->good++;
    return 1;
}

int ep_decoder_feed(ep_decoder *d, uint8_t byte, ep_frame *f) {
    if (byte == 0) {
        if (d->discarding) {
            d->discarding = 0;
            d->len = 0;
            return 0;
        }
        return finish(d, f);
    }
    if (d->discarding) return 0;
    if (d->len >= d->cap) {
        d->overflow++;
        d->discarding = 1;
        d->len = 0;
        return 0;
    }
    d->buf[d->len++] = byte;
    return 0;
}

size_t ep_frame_encode(uint8_t *wire, size_t wire_cap, uint8_t *raw, uint8_t type, uint8_t flags,
                       uint16_t seq, uint32_t boot, size_t plen) {
    raw[0] = type;
    raw[1] = flags;
    raw[2] = (uint8_t)seq;
    raw[3] = (uint8_t)(seq >> 8);
    wr32(raw + 4, boot);
    size_t body = EP_HDR_BYTES + plen;
    wr32(raw + body, ep_crc32(0, raw, body));
    if (wire_cap < 1) return 0;
    size_t n = ep_cobs_encode(wire, wire_cap - 1, raw, body + EP_CRC_BYTES);
    if (n == 0) return 0;
    wire[n] = 0;
    return n + 1;
}
