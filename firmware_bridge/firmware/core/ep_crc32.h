/* ep_crc32.h - CRC-32 (IEEE 802.3, the same as zlib.crc32): frames and uploads. */
#ifndef EP_CRC32_H
#define EP_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0; ep_crc32(0, "123456789", 9) == 0xCBF43926. */
uint32_t ep_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
