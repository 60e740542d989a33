/* AVX-512 level of nn_gemm_lowp (compiled with AVX-512 F/BW/VL/DQ, BF16 and
 * VNNI; bf16 runs only where the CPU has AVX-512 BF16, int8 only where it
 * has AVX-512 VNNI).
 *
 * Register tile 14 x 32 for both: 28 zmm accumulators.
 * - bf16: vdpbf16ps is the definition's step itself (ops/gemm_lowp.h). Its
 *   lane adds one pair of consecutive depths, so a pair must share a lane.
 *   A 64-byte load of a packed group holds 8 columns x 4 depths, i.e. lanes
 *   alternating pair 0 and pair 1 of each column; vpermt2d gathers pair 0 of
 *   16 columns into one vector, pair 1 into another (2 permutes per 2 loads,
 *   for 28 vdpbf16ps). A's pairs are broadcast from memory ({1to16}).
 * - int8: a packed group is vpdpbusd's operand as it is: lane j holds column
 *   j's four depths. A's four u8 are broadcast from memory. */
#include <immintrin.h>

#include "ops/gemm_lowp_pack.h"

#define MR 14

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

static void pack_bf16(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, void *dst)
{
    nn_lowp_pack_pairs(MR, m, kc, kvalid, a, lda, dst);
}

static void pack_int8(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv, void *dst)
{
    nn_lowp_pack_u8x4(MR, m, kc, kvalid, a, lda, inv, dst);
}

static ALWAYS_INLINE __m512bh as_bh(__m512i v) { return (__m512bh)v; }

static ALWAYS_INLINE void bf16_tile(const int rows, int n, int kc, const uint32_t *a, const uint16_t *b, float *c,
                                    ptrdiff_t ldc, bool accumulate)
{
    const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
    __m512 acc0[MR], acc1[MR];
    for (int i = 0; i < rows; i++) {
        acc0[i] = accumulate ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps();
        acc1[i] = accumulate ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps();
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int g = 0; g < kc / 4; g++) {
        const __m512i l0 = _mm512_loadu_si512(b), l1 = _mm512_loadu_si512(b + 32);
        const __m512i l2 = _mm512_loadu_si512(b + 64), l3 = _mm512_loadu_si512(b + 96);
        __m512i lo = _mm512_permutex2var_epi32(l0, even, l1), hi = _mm512_permutex2var_epi32(l2, even, l3);
        for (int i = 0; i < rows; i++) {
            const __m512i ai = _mm512_set1_epi32((int)a[i]);
            acc0[i] = _mm512_dpbf16_ps(acc0[i], as_bh(ai), as_bh(lo));
            acc1[i] = _mm512_dpbf16_ps(acc1[i], as_bh(ai), as_bh(hi));
        }
        lo = _mm512_permutex2var_epi32(l0, odd, l1);
        hi = _mm512_permutex2var_epi32(l2, odd, l3);
        for (int i = 0; i < rows; i++) {
            const __m512i ai = _mm512_set1_epi32((int)a[MR + i]);
            acc0[i] = _mm512_dpbf16_ps(acc0[i], as_bh(ai), as_bh(lo));
            acc1[i] = _mm512_dpbf16_ps(acc1[i], as_bh(ai), as_bh(hi));
        }
        a += 2 * MR;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    for (int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
    }
}

static void bf16_kernel(int m, int n, int kc, const void *a, const uint16_t *b, float *c, ptrdiff_t ldc,
                        bool accumulate)
{
#define ROWS(R) \
    case R: bf16_tile(R, n, kc, a, b, c, ldc, accumulate); break;
    switch (m) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7)
        ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12) ROWS(13) ROWS(14)
    default: break;
    }
#undef ROWS
}

static ALWAYS_INLINE void int8_tile(const int rows, int n, int kc, const uint32_t *a, const int8_t *b, float *c,
                                    ptrdiff_t ldc)
{
    __m512i acc0[MR], acc1[MR];
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_si512();
        acc1[i] = _mm512_setzero_si512();
    }
    for (int g = 0; g < kc / 4; g++) {
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
        for (int i = 0; i < rows; i++) {
            const __m512i ai = _mm512_set1_epi32((int)a[i]);
            acc0[i] = _mm512_dpbusd_epi32(acc0[i], ai, b0);
            acc1[i] = _mm512_dpbusd_epi32(acc1[i], ai, b1);
        }
        a += MR;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
    for (int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_cvtepi32_ps(acc0[i]));
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_cvtepi32_ps(acc1[i]));
    }
}

static void int8_kernel(int m, int n, int kc, const void *a, const int8_t *b, float *c, ptrdiff_t ldc)
{
#define ROWS(R) \
    case R: int8_tile(R, n, kc, a, b, c, ldc); break;
    switch (m) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7)
        ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12) ROWS(13) ROWS(14)
    default: break;
    }
#undef ROWS
}

const struct nn_lowp_kernels nn_lowp_kernels_avx512 = {
    .bf16_name = "avx512-bf16", .int8_name = "avx512-vnni", .mr_bf16 = MR, .mr_int8 = MR,
    .a_bytes_bf16 = 2, .a_bytes_int8 = 1,
    .pack_bf16 = pack_bf16, .pack_int8 = pack_int8, .bf16 = bf16_kernel, .int8 = int8_kernel,
};
