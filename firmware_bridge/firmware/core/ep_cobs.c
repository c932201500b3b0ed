#include "ep_cobs.h"

size_t ep_cobs_encode(uint8_t *dst, size_t cap, const uint8_t *src, size_t n) {
    size_t out = 1, code_at = 0;
    uint8_t code = 1;
    if (cap < 1) return 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
            if (out > cap) return 0;
            continue;
        }
        if (out >= cap) return 0;
        dst[out++] = src[i];
        if (++code == 0xFF) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
            if (out > cap && i + 1 < n) return 0;
        }
    }
    if (code_at >= cap) return 0;
    dst[code_at] = code;
    /* A block of 254 non-zero bytes at the very end leaves an empty trailing block: keep it
     * (code 1), which decodes to nothing; out counts it. */
    return out;
}

long ep_cobs_decode(uint8_t *dst, const uint8_t *src, size_t n) {
    size_t in = 0, out = 0;
    while (in < n) {
        uint8_t code = src[in++];
        if (code == 0) return -1;
        size_t run = (size_t)code - 1;
        if (run > n - in) return -1;
        for (size_t k = 0; k < run; k++) {
            uint8_t b = src[in++];
            if (b == 0) return -1;
            dst[out++] = b;
        }
        if (code != 0xFF && in < n) dst[out++] = 0;
    }
    return (long)out;
}
