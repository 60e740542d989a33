/* The portable A-panel converters of nn_gemm_lowp, as inline bodies that
 * each level's file (ops/gemm_lowp_*.c) includes, so that they compile with
 * that level's instructions (rintf becomes one instruction). The AVX-512
 * level has its own vector packers for its formats.
 * The conversions are the definition's (ops/gemm_lowp_ref.c): bf16 by
 * nn_bf16_round's rule, u8 by nn_lowp_quantize_activation's.
 *
 * Panel formats (row i < mr, depth p < kc; kc is a multiple of 4):
 *   pairs  uint32 [p / 2][mr]: bf16 of depth p in the low half, p + 1 in
 *          the high half (vdpbf16ps' pair; AVX-512)
 *   f32    float [p][mr]: the bf16 value, denormals read as zero (scalar,
 *          AVX2)
 *   u8x4   uint8 [p / 4][mr][4] (vpdpbusd's group of four; scalar reads it
 *          too)
 *   s16x4  int16 [p / 4][mr][4] (vpmaddwd reads two such pairs) */
#ifndef NN_OPS_GEMM_LOWP_PACK_H
#define NN_OPS_GEMM_LOWP_PACK_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops/gemm_lowp_internal.h"

static inline uint16_t nn_lowp_round_inline(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t q = (u >> 16) | 0x0040u; /* NaN stays NaN, quieted */
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? q : r);
}

static inline uint8_t nn_lowp_quant_inline(float a, float inv)
{
    float t = rintf(a * inv);
    t = t > 0.0f ? t : 0.0f; /* negative and NaN (the comparison is false) -> 0 */
    t = t < 255.0f ? t : 255.0f;
    return (uint8_t)(int)t;
}

/* Converts a row's kc depths (the first kvalid read from a, the rest zero)
 * to bf16 bits in h[0..kc), denormals read as zero. */
static inline void nn_lowp_row_bf16(int kc, int kvalid, const float *a, uint16_t *h)
{
    int n = kvalid < kc ? kvalid : kc;
    for (int p = 0; p < n; p++) h[p] = nn_lowp_bf16_daz(nn_lowp_round_inline(a[p]));
    for (int p = n; p < kc; p++) h[p] = 0;
}

/* Rows of up to this many depths are converted through a stack buffer in
 * one go; deeper panels in chunks. */
#define NN_LOWP_PACK_CHUNK 256

static inline void nn_lowp_pack_f32(int mr, int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float *dst)
{
    uint16_t h[NN_LOWP_PACK_CHUNK];
    for (int p0 = 0; p0 < kc; p0 += NN_LOWP_PACK_CHUNK) {
        const int len = kc - p0 < NN_LOWP_PACK_CHUNK ? kc - p0 : NN_LOWP_PACK_CHUNK;
        for (int i = 0; i < mr; i++) {
            if (i < m) nn_lowp_row_bf16(len, kvalid - p0, a + i * lda + p0, h);
            else memset(h, 0, sizeof h);
            float *d = dst + (ptrdiff_t)p0 * mr + i;
            for (int q = 0; q < len; q++) d[(ptrdiff_t)q * mr] = nn_bf16_value(h[q]);
        }
    }
}

static inline void nn_lowp_pack_u8x4(int mr, int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv,
                                     uint8_t *dst)
{
    for (int i = 0; i < mr; i++) {
        const float *r = a + i * lda;
        const int n = i < m ? (kvalid < kc ? kvalid : kc) : 0;
        uint8_t *d = dst + (ptrdiff_t)i * 4;
        for (int p = 0; p < n; p++) d[(ptrdiff_t)(p / 4) * mr * 4 + p % 4] = nn_lowp_quant_inline(r[p], inv);
        for (int p = n; p < kc; p++) d[(ptrdiff_t)(p / 4) * mr * 4 + p % 4] = 0;
    }
}

static inline void nn_lowp_pack_s16x4(int mr, int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv,
                                      int16_t *dst)
{
    for (int i = 0; i < mr; i++) {
        const float *r = a + i * lda;
        const int n = i < m ? (kvalid < kc ? kvalid : kc) : 0;
        int16_t *d = dst + (ptrdiff_t)i * 4;
        for (int p = 0; p < n; p++) d[(ptrdiff_t)(p / 4) * mr * 4 + p % 4] = nn_lowp_quant_inline(r[p], inv);
        for (int p = n; p < kc; p++) d[(ptrdiff_t)(p / 4) * mr * 4 + p % 4] = 0;
    }
}

/* The same two panels from quantised bytes: one group of four depths is
 * one 4-byte copy (widened to 16 bits for s16x4). */
static inline void nn_lowp_pack_u8x4_bytes(int mr, int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda,
                                           uint8_t *dst)
{
    const int nk = kvalid < kc ? kvalid : kc;
    for (int i = 0; i < mr; i++) {
        const uint8_t *r = a + i * lda;
        const int n = i < m ? nk : 0;
        uint8_t *d = dst + (ptrdiff_t)i * 4;
        int p = 0;
        for (; p + 4 <= n; p += 4) memcpy(d + (ptrdiff_t)(p / 4) * mr * 4, r + p, 4);
        for (; p < kc; p++) d[(ptrdiff_t)(p / 4) * mr * 4 + p % 4] = p < n ? r[p] : 0;
    }
}

static inline void nn_lowp_pack_s16x4_bytes(int mr, int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda,
                                            int16_t *dst)
{
    const int nk = kvalid < kc ? kvalid : kc;
    for (int i = 0; i < mr; i++) {
        const uint8_t *r = a + i * lda;
        const int n = i < m ? nk : 0;
        int16_t *d = dst + (ptrdiff_t)i * 4;
        for (int p = 0; p < kc; p++) d[(ptrdiff_t)(p / 4) * mr * 4 + p % 4] = p < n ? r[p] : 0;
    }
}

static inline void nn_lowp_quantize_loop(size_t n, const float *a, float inv, uint8_t *q)
{
    for (size_t i = 0; i < n; i++) q[i] = nn_lowp_quant_inline(a[i], inv);
}

#endif
