/* Private to io/: the per-format decoders behind nn_image_decode, and the
 * size guard they share. Not installed, not for callers outside io/. */
#ifndef NN_IO_IMAGE_CODEC_H
#define NN_IO_IMAGE_CODEC_H

#include <stddef.h>

#include "io/image.h"

/* Refused before any pixel buffer is allocated: a hostile or broken header
 * must not make us ask for gigabytes. */
#define NN_IMAGE_MAX_SIDE 16384
#define NN_IMAGE_MAX_PIXELS 100000000LL

/* NN_OK when width x height is a size we are willing to allocate. */
enum nn_status nn_image_check_size(const char *name, long long width, long long height);

/* Allocates out->rgb for width x height (after nn_image_check_size). */
enum nn_status nn_image_alloc(const char *name, int width, int height, struct nn_image *out);

enum nn_status nn_jpeg_decode(const void *data, size_t len, const char *name, int min_side,
                              struct nn_image *out);
enum nn_status nn_png_decode(const void *data, size_t len, const char *name, struct nn_image *out);

#endif
