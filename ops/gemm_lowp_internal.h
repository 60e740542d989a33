/* Inside nn_gemm_lowp: the contract between the blocked driver
 * (ops/gemm_lowp.c) and the per-level packing routines and micro-kernels
 * (ops/gemm_lowp_scalar.c, _avx2.c, _avx512.c), the exact bf16 step of the
 * definition, and a hook that lets the tests reach every level.
 *
 * The driver hands a kernel one row panel of A (at most mr rows, converted
 * and packed by the same level's pack routine, kc depths, kc a multiple of
 * NN_LOWP_KGROUP, depths at or past K zero) and one column panel of packed B
 * starting at the same depth (b = panel + depth * NN_LOWP_NR elements), and
 * the kernel writes (or, for bf16 with `accumulate`, continues) the m x n
 * tile of C (n <= NN_LOWP_NR). Row panels' unused rows are packed as zeros;
 * the kernel never stores them. */
#ifndef NN_OPS_GEMM_LOWP_INTERNAL_H
#define NN_OPS_GEMM_LOWP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/gemm.h"
#include "ops/gemm_lowp.h"

struct nn_lowp_kernels {
    const char *bf16_name, *int8_name;
    int mr_bf16, mr_int8;  /* rows of a packed A panel */
    size_t a_bytes_bf16, a_bytes_int8; /* bytes of one depth of one row in a packed A panel */
    /* A[i][p] for i < m, p < kvalid (a row-major, rows lda apart) into the
     * bf16 (or int8) panel; p in [kvalid, kc) and rows m..mr-1 are zeros.
     * May write up to 64 bytes past the panel. */
    void (*pack_bf16)(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, void *dst);
    void (*pack_int8)(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float a_inv_scale, void *dst);
    /* The int8 panel from A already quantised (nn_gemm_lowp_u8): the same
     * panel pack_int8 writes for the floats the bytes came from, by copying
     * bytes (rows lda bytes apart). */
    void (*pack_u8)(int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda, void *dst);
    /* q[i] = nn_lowp_quantize_activation(a[i], a_inv_scale), i < n, on the
     * calling thread (nn_lowp_quantize splits the work). */
    void (*quantize)(size_t n, const float *a, float a_inv_scale, uint8_t *q);
    /* bf16: C tile = (accumulate ? C tile : 0) continued over kc depths in
     * the definition's order. ep (NULL: none; scale and shift start at the
     * tile's first column) is applied before the tile is stored: the driver
     * passes it with the last depth block. */
    void (*bf16)(int m, int n, int kc, const void *a, const uint16_t *b, float *c, ptrdiff_t ldc, bool accumulate,
                 const struct nn_gemm_epilogue *ep);
    /* int8: C tile = ep((float) exact int32 sum over kc depths, all of K). */
    void (*int8)(int m, int n, int kc, const void *a, const int8_t *b, float *c, ptrdiff_t ldc,
                 const struct nn_gemm_epilogue *ep);
};

extern const struct nn_lowp_kernels nn_lowp_kernels_scalar;
extern const struct nn_lowp_kernels nn_lowp_kernels_avx2;
extern const struct nn_lowp_kernels nn_lowp_kernels_avx512;

/* One step of the bf16 sum, exactly as vdpbf16ps does it (see
 * ops/gemm_lowp.h): acc + x * y with the product exact, rounded once to
 * 24 bits, nearest even, as if the exponent were unbounded, and flushed to
 * a zero of its sign when that rounded sum is below 2^-126 (tininess after
 * rounding, as MXCSR.FTZ decides it). x and y are bf16
 * values already read with denormals as zero; acc is normal or zero. */
float nn_lowp_bf16_step(float acc, float x, float y);

/* bf16 bits with a denormal read as zero (sign kept). */
static inline uint16_t nn_lowp_bf16_daz(uint16_t h) { return (h & 0x7f80u) ? h : (uint16_t)(h & 0x8000u); }

/* The kernel sets. avx2 reads int8 with vpmaddwd on 16-bit values,
 * avx2_vnni with AVX-VNNI's vpdpbusd (its bf16 is avx2's); avx512 needs
 * AVX-512 BF16 for bf16 and AVX-512 VNNI for int8. */
extern const struct nn_lowp_kernels nn_lowp_kernels_avx2_vnni;

/* Whether this CPU can run `k`'s kernels for `type`. */
bool nn_lowp_kernels_usable(const struct nn_lowp_kernels *k, enum nn_lowp type);
/* The set nn_gemm_lowp uses for `type`: the best usable at or below
 * nn_simd_level() (which NN_SIMD caps). */
const struct nn_lowp_kernels *nn_lowp_kernels_select(enum nn_lowp type);
/* nn_gemm_lowp with the given kernel set (tests reach every set this way). */
void nn_gemm_lowp_with(const struct nn_lowp_kernels *k, int M, const float *A, int lda, float a_inv_scale,
                       const struct nn_lowp_weights *B, float *C, int ldc, const struct nn_gemm_epilogue *ep);

/* nn_gemm_lowp_u8 and nn_lowp_quantize with the given kernel set. */
void nn_gemm_lowp_u8_with(const struct nn_lowp_kernels *k, int M, const uint8_t *A, int lda,
                          const struct nn_lowp_weights *B, float *C, int ldc, const struct nn_gemm_epilogue *ep);
void nn_lowp_quantize_with(const struct nn_lowp_kernels *k, size_t n, const float *a, float a_inv_scale, uint8_t *q);

/* The epilogue on an m x n tile of C, scale and shift starting at its first
 * column (compiled without FMA: the multiply and the add round apart). */
void nn_lowp_tile_epilogue(const struct nn_gemm_epilogue *ep, float *c, ptrdiff_t ldc, int m, int n);

/* nn_gemm_lowp_ref on columns n0..n1 of C only (the driver's fallback when
 * it has no memory for packing). */
void nn_gemm_lowp_ref_cols(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B,
                           float *C, int ldc, const struct nn_gemm_epilogue *ep, int n0, int n1);

/* The same with A already quantised (int8 weights only). */
void nn_gemm_lowp_ref_cols_u8(int M, const uint8_t *A, int lda, const struct nn_lowp_weights *B, float *C, int ldc,
                              const struct nn_gemm_epilogue *ep, int n0, int n1);

/* The calling thread's buffer for converted A blocks, grown to `bytes` and
 * kept with nn_gemm's own packing buffers (one per-thread scratch for both
 * GEMMs, freed by nn_gemm_release_scratch or at the worker's exit); NULL
 * when out of memory. Defined in ops/gemm.c. */
void *nn_gemm_thread_lowp_buffer(size_t bytes);

#endif
