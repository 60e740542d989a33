/* im2col and its adjoint for NHWC convolutions, on a chunk of output pixels.
 *
 * Output pixel p (flat index over [N, OH, OW]) owns one row of KH*KW*C values
 * ordered (kh, kw, c), matching the HWIO weights seen as [KH*KW*C, K]. A
 * chunk is the pixel range [p0, p1); its rows fill col[(p - p0) * KH*KW*C]. */
#ifndef NN_OPS_IM2COL_H
#define NN_OPS_IM2COL_H

#include <stdint.h>

#include "ops/conv2d.h"

/* col[p1 - p0, KH*KW*C] = the input patches of pixels [p0, p1), zero where a
 * tap falls in the padding. Runs on the thread pool. */
void nn_im2col(float *col, const float *in, const struct nn_conv_shape *s, long p0, long p1);

/* The same on quantised bytes (ops/gemm_lowp.h), padding taps 0: `in`
 * holds the input from flat row `row0` on (flat row n * H + h, W*C bytes
 * each) through the last row that the patches of [p0, p1) read. */
void nn_im2col_u8(uint8_t *col, const uint8_t *in, long row0, const struct nn_conv_shape *s, long p0, long p1);

/* din += the adjoint of nn_im2col applied to col (every tap's value is added
 * back to the input pixel it came from; padding taps are dropped). Each input
 * pixel gathers its own taps, so threads never write the same place and the
 * summation order does not depend on the thread count. */
void nn_col2im_add(float *din, const float *col, const struct nn_conv_shape *s, long p0, long p1);

#endif
