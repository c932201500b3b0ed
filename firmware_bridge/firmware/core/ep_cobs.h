/* ep_cobs.h - Consistent Overhead Byte Stuffing: frames never contain 0x00, so 0x00 ends one. */
#ifndef EP_COBS_H
#define EP_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Encode n bytes of src into dst (no delimiter). Returns the encoded length, or 0 when it does
 * not fit cap (at most n + n/254 + 1 bytes are needed). */
size_t ep_cobs_encode(uint8_t *dst, size_t cap, const uint8_t *src, size_t n);

/* Decode n encoded bytes (no delimiter) in place or into dst (dst may equal src). Returns the
 * decoded length, or -1 when the input is not valid COBS (a zero byte, or a code that points
 * past the end). */
long ep_cobs_decode(uint8_t *dst, const uint8_t *src, size_t n);

#endif
