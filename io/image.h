/* Decoding photos to 8-bit RGB, and the eval transform that turns one into
 * the network's input.
 *
 * JPEG goes through libjpeg-turbo (RGB, grayscale, CMYK and YCCK all come
 * out as RGB), PNG through libpng. A corrupt or truncated file is an error
 * naming the file, never a crash and never a silently grey image. */
#ifndef NN_IO_IMAGE_H
#define NN_IO_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

struct nn_image {
    int width, height;
    uint8_t *rgb;       /* height * width * 3, row-major, interleaved RGB; owned */
};

enum nn_image_format { NN_IMAGE_UNKNOWN, NN_IMAGE_JPEG, NN_IMAGE_PNG };

/* Recognises the format from the first bytes (magic numbers, not the name). */
enum nn_image_format nn_image_sniff(const void *data, size_t len);

/* Decodes an in-memory image. `name` is used in error messages only.
 * min_side > 0 lets JPEG decoding use libjpeg-turbo's DCT scaling to return
 * a smaller image whose shorter side is still >= min_side (0: full size).
 * That is for the training path, whose crop is resized anyway; eval and
 * anything compared with golden files must pass 0. PNGs ignore min_side. */
enum nn_status nn_image_decode(const void *data, size_t len, const char *name, int min_side,
                               struct nn_image *out);
enum nn_status nn_image_load(const char *path, int min_side, struct nn_image *out);
void nn_image_free(struct nn_image *img);

/* The resampling step of the eval transform, exposed for the training
 * augmentation: bilinear resize of the region x0 .. x0+w-1, y0 .. y0+h-1 of
 * img to out_w x out_h with half-pixel centres and clamped edges, exactly
 * as PyTorch's F.interpolate(mode="bilinear", align_corners=False,
 * antialias=False) with the rounding of the PyTorch that made the golden
 * files (see io/resize.c). Mirrored left-right when `mirror`. Each interpolated
 * value v (0..255) is written as v * mul + add, HWC, out_h*out_w*3 floats. */
enum nn_status nn_image_resize_region(const struct nn_image *img, int x0, int y0, int w, int h,
                                      int out_w, int out_h, bool mirror, float mul, float add,
                                      float *out_hwc);

/* The eval transform of ../shared/golden/inception_v3/README.md: central crop
 * of floor(f*H) x floor(f*W) (f = central_fraction, 0.875 for Inception),
 * bilinear resize to size x size with half-pixel centres and clamped edges,
 * then x / 127.5 - 1. Writes size*size*3 floats, HWC (NHWC for one image). */
enum nn_status nn_image_eval_transform(const struct nn_image *img, int size, float central_fraction,
                                       float *out_hwc);

#endif
