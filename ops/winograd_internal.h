/* Inside the Winograd convolution: the contract between the driver
 * (ops/winograd.c) and the per-instruction-set transform kernels
 * (ops/winograd_generic.c, ops/winograd_avx2.c, ops/winograd_avx512.c, all
 * made from ops/winograd_body.h).
 *
 * Tiles are numbered over (image, tile row, tile column), the column
 * fastest; tile (ty, tx) of an image covers output rows 2ty, 2ty+1 and
 * columns 2tx, 2tx+1, and reads input rows 2ty - pad_top .. +3 and columns
 * 2tx - pad_left .. +3 (zeros outside the image). Transformed tiles are kept
 * as 16 matrices, matrix xi at xi * xi_stride, row t (the t-th tile of the
 * block) at t * C (inputs) or t * K (products), the channels contiguous. */
#ifndef NN_OPS_WINOGRAD_INTERNAL_H
#define NN_OPS_WINOGRAD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/conv2d.h"

struct nn_wino_geom {
    const struct nn_conv_shape *s;
    int tiles_h, tiles_w;  /* ceil(OH / 2), ceil(OW / 2) */
};

struct nn_winograd_kernels {
    /* v[xi * xi_stride + t * C + c] = (B^T d B)[xi] of tiles t0 .. t0+nt-1;
     * `zeros` holds C zeros (the padding). */
    void (*input)(float *v, ptrdiff_t xi_stride, const float *in, const struct nn_wino_geom *g, const float *zeros,
                  long t0, int nt);
    /* The outputs of tiles t0 .. t0+nt-1 from their products m (as v above,
     * with K channels): y = A^T m A, then y += out if accumulate, then
     * y = y * scale + shift (either may be NULL), then ReLU if relu; outputs
     * beyond the edge of an odd-sized map are not written. */
    void (*output)(float *out, int ldo, bool accumulate, const float *m, ptrdiff_t xi_stride,
                   const struct nn_wino_geom *g, long t0, int nt, const float *scale, const float *shift, bool relu);
    /* u[xi * C * K + c * K + k] = (G g G^T)[xi] for input channels c0 .. c1-1. */
    void (*weights)(float *u, const float *w, int C, int K, int c0, int c1);
};

/* Test hook: use the transforms of this SIMD level (lowered to what the CPU
 * has and NN_SIMD allows); -1 returns to nn_simd_level(). Not for use while
 * convolutions run. */
void nn_winograd_set_level(int level);

extern const struct nn_winograd_kernels nn_winograd_kernels_generic;
extern const struct nn_winograd_kernels nn_winograd_kernels_avx2;
extern const struct nn_winograd_kernels nn_winograd_kernels_avx512;

#endif
