/* JPEG encoding through libjpeg-turbo (io/jpeg.c is the decoder). */
#ifndef NN_IO_JPEG_WRITE_H
#define NN_IO_JPEG_WRITE_H

#include <stdint.h>

#include "base/status.h"

/* Writes rgb[h, w, 3] (8-bit, row-major) to path as a baseline JPEG of the
 * given quality (1..100), atomically (base/fileio.h). */
enum nn_status nn_jpeg_write(const char *path, const uint8_t *rgb, int w, int h, int quality);

#endif
