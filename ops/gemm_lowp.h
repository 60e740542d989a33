/* Low-precision GEMM for inference: float32 activations times weights that
 * were rounded to bfloat16 or quantised to int8 and packed once, when the
 * model was loaded, into the layout the kernels read.
 *
 *   C[M, N] = epilogue( A'[M, K] x B[K, N] )
 *
 * A is float32 (a conv's input rows or its im2col rows) and is converted
 * while it is packed, a few rows at a time, so activations stay float32
 * between layers and pools, concatenations and the float32 ops are
 * unchanged:
 * - NN_LOWP_BF16: a' = bf16(a), round to nearest even (nn_bf16_round);
 *   B holds bf16 values. Products of two bf16 values are exact in float32;
 *   the sum runs over K in pairs (k = 2g, 2g+1) into a float32 accumulator
 *   as AVX-512 BF16's vdpbf16ps does: acc = acc + a[2g+1] b[2g+1], then
 *   acc = acc + a[2g] b[2g], each add rounded to nearest even, bf16
 *   denormals read as zero and denormal sums flushed to zero (the scalar
 *   definition, nn_gemm_lowp_ref, is the authority; every kernel level
 *   matches it bit for bit).
 * - NN_LOWP_INT8: a' = u8 q = clamp(rint(a * a_inv_scale), 0, 255) (NaN -> 0),
 *   B holds int8 values (symmetric, -127..127); the sum over K is exact in
 *   int32 and converted to float32 (round to nearest even) before the
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
