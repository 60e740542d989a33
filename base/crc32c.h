/* CRC-32C (Castagnoli), the checksum of nn's model and record files. */
#ifndef NN_BASE_CRC32C_H
#define NN_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over `len` bytes. */
uint32_t nn_crc32c(uint32_t crc, const void *data, size_t len);

/* TFRecord's masking, so a CRC stored next to the data it covers does not
 * checksum to a fixed pattern. */
static inline uint32_t nn_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

#endif
