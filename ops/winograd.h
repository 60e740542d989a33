/* Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2015) for 3x3 stride-1 convs, NHWC input,
 * HWIO weights [3, 3, C, K], any padding.
 *
 * The output is cut into 2x2 tiles; each needs the 4x4 input tile around it.
 * With the transforms U = G g G^T (weights), V = B^T d B (input tiles) and
 * Y = A^T M A (outputs), the 36 multiply-adds per 2x2 tile and channel pair
 * (c, k) of the direct conv become 16, i.e. 2.25x fewer, and the products
 * M = U (.) V, summed over channels, are 16 independent GEMMs:
 *   M[xi] [tiles, K] = V[xi] [tiles, C] x U[xi] [C, K],  xi = 0..15.
 * Transformed weights live as 16 matrices [C, K] (u[xi * C * K + c * K + k]),
 * made once per weights by nn_winograd_transform_weights, so a caller whose
 * weights do not change (inference) can keep them.
 *
 * Work goes in chunks of tiles whose scratch does not grow with the batch,
 * each cut into blocks of a few dozen tiles whose transformed inputs and
 * products stay in the core's L2 (transform, 16 GEMMs, inverse transform),
 * one thread per block; a chunk with too few tiles for that goes in three
 * phases (transforms, the 16 GEMMs spread over the threads, inverse
 * transforms). The error against the direct conv is a few float32
 * roundings of the scale sum |x| |w| (the transforms only add, subtract and
 * halve); the result does not depend on the thread count. */
#ifndef NN_OPS_WINOGRAD_H
#define NN_OPS_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "ops/conv2d.h"

struct nn_gemm_epilogue;

/* The shape is one Winograd can do: 3x3 kernel, stride 1 (any padding). */
bool nn_winograd_supports(const struct nn_conv_shape *s);

/* Supported and measured to beat im2col + GEMM for these channel counts
 * and this many tiles, whether enabled or not (callers size their scratch
 * with it, so switching Winograd on later never overruns). More images
 * never turn it off: if it pays for a batch of n it pays for every larger
 * batch of the same layer. */
bool nn_winograd_pays(const struct nn_conv_shape *s);

/* nn_winograd_pays and enabled: the NN_WINOGRAD environment variable is not
 * 0 (read once; 0 sends every conv to im2col + GEMM, for comparisons). */
bool nn_winograd_applies(const struct nn_conv_shape *s);

/* Test hook: 1 or 0 forces Winograd on or off for nn_winograd_applies
 * (the heuristic still decides which shapes); -1 returns to NN_WINOGRAD.
 * Not for use while convolutions run. */
void nn_winograd_set_enabled(int on);

/* Floats of transformed weights: 16 * C * K. */
size_t nn_winograd_weight_floats(int c, int k);

/* u (16 * C * K floats) = the transform of w (HWIO [3, 3, C, K]). */
void nn_winograd_transform_weights(float *u, const float *w, int c, int k);

/* Tiles per chunk for this shape (never more than the conv has) and the
 * scratch floats that nn_conv2d_winograd_forward needs: bounded
 * independently of the batch, and never smaller for a larger batch. */
long nn_winograd_chunk_tiles(const struct nn_conv_shape *s);
size_t nn_winograd_scratch_floats(const struct nn_conv_shape *s);

/* out = conv(in, w), u = the transformed w; s must be supported.
 * `scratch` holds nn_winograd_scratch_floats(s) floats. */
void nn_conv2d_winograd_forward(float *out, const float *in, const float *u, const struct nn_conv_shape *s,
                                float *scratch);

/* The general form:
 * - output rows (pixels) are ldo >= K floats apart (a channel slice of a
 *   concatenation);
 * - accumulate: out += conv(in, w) instead of out = conv(in, w);
 * - ep (may be NULL): per-channel scale, shift and ReLU applied last
 *   (ops/gemm.h), as the fused inference conv does;
 * - chunk_tiles >= 1 tiles per chunk (tests put chunk boundaries anywhere);
 *   the scratch then holds nn_winograd_scratch_floats_chunked(s, chunk_tiles). */
void nn_conv2d_winograd_forward_ex(float *out, int ldo, bool accumulate, const float *in, const float *u,
                                   const struct nn_conv_shape *s, float *scratch, long chunk_tiles,
                                   const struct nn_gemm_epilogue *ep);
size_t nn_winograd_scratch_floats_chunked(const struct nn_conv_shape *s, long chunk_tiles);

/* The forward in bf16 (ops/gemm_lowp.h): u[xi] are the 16 transformed
 * weight matrices [C, K], each rounded to bf16 and packed; the transformed
 * input tiles are rounded as the GEMM packs them. The transforms themselves
 * stay float32. scratch as nn_conv2d_winograd_forward's. */
struct nn_lowp_weights;
void nn_conv2d_winograd_forward_lowp(float *out, int ldo, const float *in, const struct nn_lowp_weights *const u[16],
                                     const struct nn_conv_shape *s, float *scratch, const struct nn_gemm_epilogue *ep);

/* ---- dL/din ----
 * For a 3x3 stride-1 conv, din[ih, iw, c] = sum over taps (ki, kj) and k of
 * dout[ih + pad_top - ki, iw + pad_left - kj, k] * w[ki, kj, c, k]: a 3x3
 * stride-1 conv of dout (K channels) with the filters rotated by 180 degrees
 * and C and K swapped, padded by 2 - pad on the top and left, whose output
 * is the H x W input. Its transformed weights are those of the forward,
 * reordered and transposed, so it takes the forward's u (from
 * nn_winograd_transform_weights(u, w, C, K)). dW stays with im2col + GEMM. */

/* That conv's shape (bs->c = K, bs->k = C, output H x W). */
void nn_winograd_backward_shape(struct nn_conv_shape *bs, const struct nn_conv_shape *s);

/* As nn_winograd_pays / nn_winograd_applies, for the conv that gives din. */
bool nn_winograd_backward_pays(const struct nn_conv_shape *s);
bool nn_winograd_backward_applies(const struct nn_conv_shape *s);

/* Its tiles per chunk and scratch floats (also bounded independently of
 * the batch and never smaller for a larger one). */
long nn_winograd_backward_chunk_tiles(const struct nn_conv_shape *s);
size_t nn_winograd_backward_scratch_floats(const struct nn_conv_shape *s);
size_t nn_winograd_backward_scratch_floats_chunked(const struct nn_conv_shape *s, long chunk_tiles);

/* din += dL/din for s (supported), u = the transformed forward weights;
 * `scratch` holds nn_winograd_backward_scratch_floats(s) floats (or the
 * _chunked count for the _chunked form). */
void nn_conv2d_winograd_backward_input(float *din, const float *dout, const float *u, const struct nn_conv_shape *s,
                                       float *scratch);
void nn_conv2d_winograd_backward_input_chunked(float *din, const float *dout, const float *u,
                                               const struct nn_conv_shape *s, float *scratch, long chunk_tiles);

#endif
