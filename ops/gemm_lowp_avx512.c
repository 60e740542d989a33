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
 *   j's four depths. A's four u8 are broadcast into a register (the
 *   unsigned operand cannot come from memory).
 * A is converted and packed 16 rows x 16 dwords at a time: rounding or
 * quantising whole vectors, then one 16 x 16 transpose. */
#include <immintrin.h>

#include "ops/gemm_lowp_pack.h"

#define MR 14

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* gcc 12 keeps the accumulator arrays on the stack (a store after every
 * instruction) unless the row loops are unrolled completely. */
#define UNROLL _Pragma("GCC unroll 16")

static ALWAYS_INLINE __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Transposes the 16 x 16 dwords in r (r[i] = row i) in place: r[j] becomes
 * element j of every row. Unpacks interleave dwords then qwords of row
 * pairs, leaving 4 x 4 blocks in each 128-bit lane; two rounds of 128-bit
 * shuffles then gather the lanes. */
static ALWAYS_INLINE void transpose16(__m512i r[16])
{
    __m512i t[16];
    UNROLL for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);     /* r_i0 r_(i+1)0 r_i1 r_(i+1)1, per lane */
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]); /* elements 2, 3 of each lane */
    }
    UNROLL for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);     /* element 0 of each lane, rows i..i+3 */
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]); /* element 1 */
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* r[4b + e], lane L: element 4L + e of rows 4b..4b+3. */
    UNROLL for (int e = 0; e < 4; e++) {
        __m512i x01 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88);   /* lanes 0, 2 of rows 0-3, then of 4-7 */
        __m512i y01 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xDD);   /* lanes 1, 3 */
        __m512i x23 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88);
        __m512i y23 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xDD);
        t[e] = _mm512_shuffle_i32x4(x01, x23, 0x88);      /* lane 0 of all: element e */
        t[8 + e] = _mm512_shuffle_i32x4(x01, x23, 0xDD);  /* lane 2: element 8 + e */
        t[4 + e] = _mm512_shuffle_i32x4(y01, y23, 0x88);  /* lane 1: element 4 + e */
        t[12 + e] = _mm512_shuffle_i32x4(y01, y23, 0xDD); /* lane 3: element 12 + e */
    }
    UNROLL for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* nn_bf16_round on 16 floats, in the low half of each dword. */
static ALWAYS_INLINE __m512i round_bf16(__m512 x)
{
    const __m512i u = _mm512_castps_si512(x), high = _mm512_srli_epi32(u, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(high, _mm512_set1_epi32(1)));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
}

/* nn_lowp_quantize_activation on 16 floats. */
static ALWAYS_INLINE __m128i quantize16(__m512 x, __m512 inv)
{
    __m512 t = _mm512_roundscale_ps(_mm512_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm512_max_ps(t, _mm512_setzero_ps()); /* NaN gives the second operand, 0 */
    t = _mm512_min_ps(t, _mm512_set1_ps(255.0f));
    return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t));
}

/* A rows of up to 16 x 16 dwords (pairs of bf16, or quads of u8) become
 * the panel's dword columns by one transpose; each column's 16-dword store
 * runs 2 dwords past the panel's 14 rows, into the next column, which the
 * next store overwrites (the panel has 64 bytes of slack for the last). */
static void pack_bf16(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, void *dst_)
{
    uint32_t *dst = dst_;
    const int nk = kvalid < kc ? kvalid : kc;
    for (int p0 = 0; p0 < kc; p0 += 32) {
        const int pairs = (kc - p0 < 32 ? kc - p0 : 32) / 2, valid = nk - p0;
        const __mmask16 k0 = first_lanes(valid), k1 = first_lanes(valid - 16);
        __m512i r[16];
        UNROLL for (int i = 0; i < 16; i++) {
            if (i < m) {
                const float *row = a + i * lda + p0;
                /* Two chunks ahead: 14 rows far apart are more streams than
                 * the hardware prefetcher follows well (measured: 1.5x on
                 * Inception's 35 x 35 1x1 convs, where A's reads bound). */
                _mm_prefetch((const char *)(row + 64), _MM_HINT_T0);
                _mm_prefetch((const char *)(row + 80), _MM_HINT_T0);
                __m256i lo = _mm512_cvtepi32_epi16(round_bf16(_mm512_maskz_loadu_ps(k0, row)));
                __m256i hi = _mm512_cvtepi32_epi16(round_bf16(_mm512_maskz_loadu_ps(k1, row + 16)));
                r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            } else {
                r[i] = _mm512_setzero_si512();
            }
        }
        transpose16(r);
        for (int q = 0; q < pairs; q++) _mm512_storeu_si512(dst + (ptrdiff_t)(p0 / 2 + q) * MR, r[q]);
    }
}

static void pack_int8(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv_scale, void *dst_)
{
    uint32_t *dst = dst_;
    const int nk = kvalid < kc ? kvalid : kc;
    const __m512 inv = _mm512_set1_ps(inv_scale);
    for (int p0 = 0; p0 < kc; p0 += 64) {
        const int groups = (kc - p0 < 64 ? kc - p0 : 64) / 4, valid = nk - p0;
        __m512i r[16];
        UNROLL for (int i = 0; i < 16; i++) {
            r[i] = _mm512_setzero_si512();
            if (i >= m) continue;
            const float *row = a + i * lda + p0;
            for (int h = 0; h < 4; h++) _mm_prefetch((const char *)(row + 128 + 16 * h), _MM_HINT_T0);
#define QUARTER(h) quantize16(_mm512_maskz_loadu_ps(first_lanes(valid - 16 * (h)), row + 16 * (h)), inv)
            r[i] = _mm512_inserti32x4(r[i], QUARTER(0), 0);
            r[i] = _mm512_inserti32x4(r[i], QUARTER(1), 1);
            r[i] = _mm512_inserti32x4(r[i], QUARTER(2), 2);
            r[i] = _mm512_inserti32x4(r[i], QUARTER(3), 3);
#undef QUARTER
        }
        transpose16(r);
        for (int g = 0; g < groups; g++) _mm512_storeu_si512(dst + (ptrdiff_t)(p0 / 4 + g) * MR, r[g]);
    }
}

/* From quantised bytes: each row's 64 depths are one masked byte load,
 * then the same transpose and stores as pack_int8. */
static void pack_u8(int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda, void *dst_)
{
    uint32_t *dst = dst_;
    const int nk = kvalid < kc ? kvalid : kc;
    for (int p0 = 0; p0 < kc; p0 += 64) {
        const int groups = (kc - p0 < 64 ? kc - p0 : 64) / 4, valid = nk - p0;
        const __mmask64 mask = valid >= 64 ? ~(__mmask64)0 : valid <= 0 ? 0 : ((__mmask64)1 << valid) - 1;
        __m512i r[16];
        UNROLL for (int i = 0; i < 16; i++) {
            r[i] = _mm512_setzero_si512();
            if (i >= m) continue;
            const uint8_t *row = a + i * lda + p0;
            _mm_prefetch((const char *)(row + 128), _MM_HINT_T0);
            r[i] = _mm512_maskz_loadu_epi8(mask, row);
        }
        transpose16(r);
        for (int g = 0; g < groups; g++) _mm512_storeu_si512(dst + (ptrdiff_t)(p0 / 4 + g) * MR, r[g]);
    }
}

/* nn_lowp_quantize's work, 64 values per step; the tail masked. */
static void quantize(size_t n, const float *a, float inv_scale, uint8_t *q)
{
    const __m512 inv = _mm512_set1_ps(inv_scale);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_castsi128_si512(quantize16(_mm512_loadu_ps(a + i), inv));
        v = _mm512_inserti32x4(v, quantize16(_mm512_loadu_ps(a + i + 16), inv), 1);
        v = _mm512_inserti32x4(v, quantize16(_mm512_loadu_ps(a + i + 32), inv), 2);
        v = _mm512_inserti32x4(v, quantize16(_mm512_loadu_ps(a + i + 48), inv), 3);
        _mm512_storeu_si512(q + i, v);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = first_lanes((int)(n - i < 16 ? n - i : 16));
        _mm_mask_storeu_epi8(q + i, k, quantize16(_mm512_maskz_loadu_ps(k, a + i), inv));
    }
}

/* acc += the pair dot products (vdpbf16ps) / the quad dot products
 * (vpdpbusd) of a broadcast 32-bit value of A and b.
 * Inline assembly: with the intrinsics, gcc 12 keeps the accumulator
 * arrays on the stack (a store per instruction); as asm operands they stay
 * in the 28 registers. The instruction is the same. */
static ALWAYS_INLINE __m512 dp_bf16(__m512 acc, const uint32_t *a, __m512i b)
{
    __asm__("vdpbf16ps %1%{1to16%}, %2, %0" : "+v"(acc) : "m"(*a), "v"(b));
    return acc;
}

/* vpdpbusd's unsigned operand is its first source, which cannot be a
 * memory broadcast: A (u8) is broadcast into a register, B (s8) is the
 * second source. */
static ALWAYS_INLINE __m512i dp_u8s8(__m512i acc, const uint32_t *a, __m512i b)
{
    const __m512i ai = _mm512_set1_epi32((int)*a);
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(ai), "v"(b));
    return acc;
}

/* The epilogue on one row's two vectors, then the masked stores. The
 * multiply and the add are separate instructions (rounded apart, as the
 * definition says); max(x, 0) gives 0 for NaN (its second operand) and +0
 * for -0, as the definition's x > 0 ? x : 0 does. */
static ALWAYS_INLINE void store_row(float *c, __m512 v0, __m512 v1, __mmask16 m0, __mmask16 m1,
                                    const struct nn_gemm_epilogue *ep)
{
    if (ep) {
        if (ep->scale) {
            v0 = _mm512_mul_ps(v0, _mm512_maskz_loadu_ps(m0, ep->scale));
            v1 = _mm512_mul_ps(v1, _mm512_maskz_loadu_ps(m1, ep->scale + 16));
        }
        if (ep->shift) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ep->shift));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ep->shift + 16));
        }
        if (ep->relu) {
            v0 = _mm512_max_ps(v0, _mm512_setzero_ps());
            v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
        }
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
}

static ALWAYS_INLINE void bf16_tile(const int rows, int n, int kc, const uint32_t *a, const uint16_t *b, float *c,
                                    ptrdiff_t ldc, bool accumulate, const struct nn_gemm_epilogue *ep)
{
    const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
    __m512 acc0[MR], acc1[MR];
    UNROLL for (int i = 0; i < rows; i++) {
        acc0[i] = accumulate ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps();
        acc1[i] = accumulate ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps();
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (int g = 0; g < kc / 4; g++) {
        /* Each half reloads the group (from L1) rather than keep four more
         * registers live next to the 28 accumulators. */
        __m512i lo = _mm512_permutex2var_epi32(_mm512_loadu_si512(b), even, _mm512_loadu_si512(b + 32));
        __m512i hi = _mm512_permutex2var_epi32(_mm512_loadu_si512(b + 64), even, _mm512_loadu_si512(b + 96));
        UNROLL for (int i = 0; i < rows; i++) {
            acc0[i] = dp_bf16(acc0[i], a + i, lo);
            acc1[i] = dp_bf16(acc1[i], a + i, hi);
        }
        lo = _mm512_permutex2var_epi32(_mm512_loadu_si512(b), odd, _mm512_loadu_si512(b + 32));
        hi = _mm512_permutex2var_epi32(_mm512_loadu_si512(b + 64), odd, _mm512_loadu_si512(b + 96));
        UNROLL for (int i = 0; i < rows; i++) {
            acc0[i] = dp_bf16(acc0[i], a + MR + i, lo);
            acc1[i] = dp_bf16(acc1[i], a + MR + i, hi);
        }
        a += 2 * MR;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    UNROLL for (int i = 0; i < rows; i++) store_row(c + i * ldc, acc0[i], acc1[i], m0, m1, ep);
}

static void bf16_kernel(int m, int n, int kc, const void *a, const uint16_t *b, float *c, ptrdiff_t ldc,
                        bool accumulate, const struct nn_gemm_epilogue *ep)
{
#define ROWS(R) \
    case R: bf16_tile(R, n, kc, a, b, c, ldc, accumulate, ep); break;
    switch (m) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7)
        ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12) ROWS(13) ROWS(14)
    default: break;
    }
#undef ROWS
}

static ALWAYS_INLINE void int8_tile(const int rows, int n, int kc, const uint32_t *a, const int8_t *b, float *c,
                                    ptrdiff_t ldc, const struct nn_gemm_epilogue *ep)
{
    __m512i acc0[MR], acc1[MR];
    UNROLL for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_si512();
        acc1[i] = _mm512_setzero_si512();
    }
    for (int g = 0; g < kc / 4; g++) {
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
        UNROLL for (int i = 0; i < rows; i++) {
            acc0[i] = dp_u8s8(acc0[i], a + i, b0);
            acc1[i] = dp_u8s8(acc1[i], a + i, b1);
        }
        a += MR;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
    UNROLL for (int i = 0; i < rows; i++)
        store_row(c + i * ldc, _mm512_cvtepi32_ps(acc0[i]), _mm512_cvtepi32_ps(acc1[i]), m0, m1, ep);
}

static void int8_kernel(int m, int n, int kc, const void *a, const int8_t *b, float *c, ptrdiff_t ldc,
                        const struct nn_gemm_epilogue *ep)
{
#define ROWS(R) \
    case R: int8_tile(R, n, kc, a, b, c, ldc, ep); break;
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
    .pack_bf16 = pack_bf16, .pack_int8 = pack_int8, .pack_u8 = pack_u8,
    .quantize = quantize, .bf16 = bf16_kernel, .int8 = int8_kernel,
};
