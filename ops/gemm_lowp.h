/* Low-precision GEMM for inference: float32 activations times weights that
 * were rounded to bfloat16 or quantised to int8 and packed once, when the
 * model was loaded, into the layout the kernels read.
 *
 *   C[M, N] = epilogue( A'[M, K] x B[K, N] )
 *
 * A is float32 (a conv's input rows or its im2col rows) and is converted
 * while it is packed, a few rows at a time, so activations stay float32
 * between layers and pools, concatenations and the float32 ops are
 * unchanged (nn_gemm_lowp_u8 takes int8's A already quantised, for convs
 * whose im2col would repeat each value):
 * - NN_LOWP_BF16: a' = bf16(a), round to nearest even (nn_bf16_round);
 *   B holds bf16 values. bf16 denormals (in A' or B) read as zero. The sum
 *   runs over K in pairs (k = 2g, 2g+1) into one float32 accumulator per
 *   element of C, starting from +0, as AVX-512 BF16's vdpbf16ps does:
 *     acc = F(acc + a[2g+1] b[2g+1]);  acc = F(acc + a[2g] b[2g])
 *   where each product is exact (no rounding, no overflow or underflow of
 *   its own) and F rounds the exact sum once to float32's 24 bits, nearest
 *   even, as if the exponent were unbounded (a sum past the largest float
 *   is +-Inf), then flushes a result below 2^-126 in magnitude to a zero
 *   of its sign (tininess after rounding: -2^-126 + 2^-152 stays -2^-126,
 *   -2^-126 + 1.25 * 2^-151 becomes -0). This is FMA under MXCSR FTZ+DAZ.
 *   Evidence, on this project's AMD Zen 5 (EPYC, family 26): over 1M
 *   vdpbf16ps lanes of random, wide-exponent (overflowing), cancelling,
 *   denormal and near-2^-126 operands equal this model bit for bit (test
 *   gemm_lowp: bf16_step_is_vdpbf16ps, which also checks FMA under FTZ);
 *   of 6.4M lanes of ordinary values, "even depth first" differs on 0.17%
 *   and "the pair summed first, then added" on 0.09%; products rounded to
 *   float32 first, or sums rounded to the denormal grid (or flushed before
 *   rounding), differ at the extremes. The padding depths K..kpad-1 take
 *   part (0 * 0: they turn an accumulator of -0 into +0). The scalar
 *   definition, nn_gemm_lowp_ref, is the authority; every kernel level
 *   matches it bit for bit (NaN results may differ in payload and sign).
 * - NN_LOWP_INT8: a' = u8 q = clamp(rint(a * a_inv_scale), 0, 255) (NaN -> 0),
 *   B holds int8 values (symmetric, -127..127); the sum over K is exact in
 *   int32 (K <= NN_LOWP_INT8_MAX_K: 255 * 127 * K < 2^31; packing refuses
 *   more) and converted to float32 (round to nearest even) before the
 *   epilogue. The caller folds the dequantisation (activation scale times
 *   each column's weight scale) into the epilogue's scale. Inception's conv
 *   inputs are ReLU outputs (>= 0), so zero-point 0 and unsigned
 *   activations lose nothing; the first conv (the image, in [-1, 1]) runs
 *   in bf16 instead.
 * The epilogue is nn_gemm_ex's (ops/gemm.h): c = c * scale[j] (a separate
 * rounding), c = c + shift[j], then ReLU; no fused multiply-add.
 *
 * Results do not depend on the thread count or on how work is split.
 * Safe to call from several threads at once; packed weights are immutable
 * and shared. */
#ifndef NN_OPS_GEMM_LOWP_H
#define NN_OPS_GEMM_LOWP_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

struct nn_gemm_epilogue;

enum nn_lowp { NN_LOWP_BF16 = 1, NN_LOWP_INT8 = 2 };

/* Packed weights: columns in panels of NN_LOWP_NR; within a panel, K in
 * groups of NN_LOWP_KGROUP consecutive depths, each group holding every
 * column's KGROUP values together:
 *   element (k, j) of panel p = data[p * kpad * NR + (k / G) * NR * G + (j % NR) * G + k % G]
 * with kpad = K rounded up to G, zero-padded in k and in the last panel's
 * columns. One layout for every kernel level (the SIMD kernels load one
 * group of a panel as whole vectors: 16 columns x 2 bf16 or x 4 int8 per
 * 64 bytes). */
#define NN_LOWP_NR 32
#define NN_LOWP_KGROUP 4
/* The deepest int8 product whose int32 sums cannot overflow. */
#define NN_LOWP_INT8_MAX_K 66000

struct nn_lowp_weights {
    enum nn_lowp type;
    int k, n;           /* B is [k, n] */
    int kpad;           /* k rounded up to NN_LOWP_KGROUP */
    void *data;         /* uint16_t (bf16 bits) or int8_t, 64-byte aligned */
    size_t bytes;       /* of data */
};

/* Round to nearest even float32 -> bfloat16 bits; NaN stays NaN (quiet). */
uint16_t nn_bf16_round(float x);
static inline float nn_bf16_value(uint16_t h)
{
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}

/* Symmetric per-output-channel int8 weights: for column j of w [k, n],
 * scale[j] = max_i |w[i][j]| / 127 (1 where the column is all zero) and
 * q[i][j] = clamp(rint(w[i][j] / scale[j]), -127, 127). */
void nn_lowp_quantize_weights(const float *w, int k, int n, int8_t *q, float *scale);

/* Packs B [k, n] (row-major, n floats per row): rounded to bf16, or taken
 * as int8 values. */
enum nn_status nn_lowp_pack_bf16(const float *b, int k, int n, struct nn_lowp_weights **out);
enum nn_status nn_lowp_pack_int8(const int8_t *b, int k, int n, struct nn_lowp_weights **out);
void nn_lowp_weights_free(struct nn_lowp_weights *w);

/* C = epilogue(A' x B) as above. A [M, K] has rows lda >= K floats apart,
 * C rows ldc >= N apart; ep may be NULL; a_inv_scale is read for int8 only. */
void nn_gemm_lowp(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B, float *C,
                  int ldc, const struct nn_gemm_epilogue *ep);

/* The int8 product with A already quantised: C = epilogue(A x B) with A
 * [M, K] uint8 (rows lda >= K bytes apart), B int8 weights. Equals
 * nn_gemm_lowp on any float A whose quantisation (a_inv_scale) is these
 * bytes, bit for bit: the same exact int32 sums and epilogue. For convs
 * that feed each input value to several im2col rows (ops/conv2d_fused.c):
 * quantised once, moved as bytes. B of another type: C is left alone. */
void nn_gemm_lowp_u8(int M, const uint8_t *A, int lda, const struct nn_lowp_weights *B, float *C, int ldc,
                     const struct nn_gemm_epilogue *ep);

/* q[i] = nn_lowp_quantize_activation(a[i], a_inv_scale) for i < n, with
 * the widest vectors this CPU has, split over the thread pool. */
void nn_lowp_quantize(size_t n, const float *a, float a_inv_scale, uint8_t *q);

/* The definition: plain loops over the packed weights, one element at a
 * time, single-threaded. Tests compare every kernel level with it. */
void nn_gemm_lowp_ref(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B, float *C,
                      int ldc, const struct nn_gemm_epilogue *ep);

/* The activation conversion of the definition, one value. */
uint8_t nn_lowp_quantize_activation(float a, float a_inv_scale);

/* Name of the kernel nn_gemm_lowp uses now for this type ("avx512-bf16",
 * "avx512-vnni", "avx2-fma", "avx-vnni", "scalar", ...), for logs and
 * benchmarks. */
const char *nn_gemm_lowp_kernel(enum nn_lowp type);

#endif
