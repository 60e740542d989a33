/* AVX2 level of nn_gemm_lowp (compiled with AVX2, FMA; the AVX-VNNI
 * kernel, in inline assembly, runs only where the CPU has AVX-VNNI).
 *
 * bf16: bf16 values widened to float32 (a shift or a mask of the packed
 * pairs) and summed with FMA in the definition's order, odd depth of each
 * pair first. FMA computes the product exactly and rounds the sum once, as
 * vdpbf16ps does; with MXCSR's DAZ and FTZ set for the kernel (this thread
 * only, restored on return), denormals read as zero and tiny sums flush
 * with vdpbf16ps' rule (tininess after rounding; the gemm_lowp tests check
 * FMA under FTZ against the definition on a million adversarial pairs).
 *
 * int8: with AVX-VNNI, vpdpbusd on the packed groups as they are (lane j:
 * column j's four depths); without it, vpmaddwd on values widened to 16
 * bits (u8 x s8 products and their pairwise sums fit), summed per lane and
 * folded pairwise at the end; integer sums are exact in any order. */
#include <immintrin.h>

#include "ops/gemm_lowp_pack.h"

#define MR_BF16 4
#define MR_MADD 4
#define MR_VNNI 6

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* gcc 12 keeps accumulator arrays on the stack unless the row loops are
 * unrolled completely. */
#define UNROLL _Pragma("GCC unroll 8")

static ALWAYS_INLINE __m256i first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The order in which the shuffles below leave 8 columns, and (being its own
 * inverse) the permutation that restores them. */
static ALWAYS_INLINE __m256i column_order(void) { return _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7); }

/* nn_bf16_round on 8 floats, denormals then read as zero, widened back to
 * float (the f32 panel format). */
static ALWAYS_INLINE __m256 bf16_values(__m256 x)
{
    const __m256i u = _mm256_castps_si256(x), high = _mm256_srli_epi32(u, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(high, _mm256_set1_epi32(1)));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    /* NaN: |u| > inf as signed integers (|u| < 2^31) */
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(high, _mm256_set1_epi32(0x40)), nan);
    const __m256i zero_exp = _mm256_cmpeq_epi32(_mm256_and_si256(r, _mm256_set1_epi32(0x7f80)), _mm256_setzero_si256());
    r = _mm256_blendv_epi8(r, _mm256_and_si256(r, _mm256_set1_epi32(0x8000)), zero_exp);
    return _mm256_castsi256_ps(_mm256_slli_epi32(r, 16));
}

/* 4 rows x 8 depths per step, transposed in registers into [p][4]. */
static void pack_bf16(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, void *dst_)
{
    float *dst = dst_;
    const int nk = kvalid < kc ? kvalid : kc;
    for (int p0 = 0; p0 < kc; p0 += 8) {
        const __m256i mk = first_lanes(nk - p0);
        __m256 v[MR_BF16];
        UNROLL for (int i = 0; i < MR_BF16; i++)
            v[i] = i < m ? bf16_values(_mm256_maskload_ps(a + i * lda + p0, mk)) : _mm256_setzero_ps();
        const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
        const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
        /* d[e], per 128-bit lane L: depth 4L + e of the 4 rows */
        const __m256 d0 = _mm256_shuffle_ps(t0, t2, 0x44), d1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 d2 = _mm256_shuffle_ps(t1, t3, 0x44), d3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        float *d = dst + (ptrdiff_t)p0 * MR_BF16;
        _mm256_storeu_ps(d, _mm256_permute2f128_ps(d0, d1, 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(d2, d3, 0x20));
        if (kc - p0 > 4) { /* kc is a multiple of 4, not always of 8 */
            _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(d0, d1, 0x31));
            _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(d2, d3, 0x31));
        }
    }
}

/* nn_lowp_quantize_activation on 8 floats, as int32. */
static ALWAYS_INLINE __m256i quantize8(__m256 x, __m256 inv)
{
    __m256 t = _mm256_round_ps(_mm256_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    t = _mm256_max_ps(t, _mm256_setzero_ps()); /* NaN gives the second operand, 0 */
    t = _mm256_min_ps(t, _mm256_set1_ps(255.0f));
    return _mm256_cvtps_epi32(t);
}

/* Row by row, 8 depths (two groups of four) per step. */
static void pack_int8_madd(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv_scale, void *dst_)
{
    int16_t *dst = dst_;
    const int nk = kvalid < kc ? kvalid : kc;
    const __m256 inv = _mm256_set1_ps(inv_scale);
    for (int i = 0; i < MR_MADD; i++) {
        for (int p0 = 0; p0 < kc; p0 += 8) {
            const __m256i q = i < m ? quantize8(_mm256_maskload_ps(a + i * lda + p0, first_lanes(nk - p0)), inv)
                                    : _mm256_setzero_si256();
            const __m256i w = _mm256_packus_epi32(q, q); /* lane L: depths 4L..4L+3 as 16 bits, twice */
            int64_t g0 = _mm256_extract_epi64(w, 0), g1 = _mm256_extract_epi64(w, 2);
            int16_t *d = dst + (ptrdiff_t)(p0 / 4) * MR_MADD * 4 + i * 4;
            memcpy(d, &g0, sizeof g0);
            if (kc - p0 > 4) memcpy(d + MR_MADD * 4, &g1, sizeof g1);
        }
    }
}

static void pack_int8_vnni(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv_scale, void *dst_)
{
    uint8_t *dst = dst_;
    const int nk = kvalid < kc ? kvalid : kc;
    const __m256 inv = _mm256_set1_ps(inv_scale);
    /* byte 0 of each dword of a lane into the lane's first dword */
    const __m256i bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12,
                                           -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    for (int i = 0; i < MR_VNNI; i++) {
        for (int p0 = 0; p0 < kc; p0 += 8) {
            const __m256i q = i < m ? quantize8(_mm256_maskload_ps(a + i * lda + p0, first_lanes(nk - p0)), inv)
                                    : _mm256_setzero_si256();
            const __m256i w = _mm256_shuffle_epi8(q, bytes);
            int32_t g0 = _mm256_extract_epi32(w, 0), g1 = _mm256_extract_epi32(w, 4);
            uint8_t *d = dst + (ptrdiff_t)(p0 / 4) * MR_VNNI * 4 + i * 4;
            memcpy(d, &g0, sizeof g0);
            if (kc - p0 > 4) memcpy(d + MR_VNNI * 4, &g1, sizeof g1);
        }
    }
}

/* Panels from quantised bytes (nn_gemm_lowp_u8): group copies. */
static void pack_u8_madd(int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda, void *dst)
{
    nn_lowp_pack_s16x4_bytes(MR_MADD, m, kc, kvalid, a, lda, dst);
}

static void pack_u8_vnni(int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda, void *dst)
{
    nn_lowp_pack_u8x4_bytes(MR_VNNI, m, kc, kvalid, a, lda, dst);
}

/* nn_lowp_quantize's work, 32 values per step: four quantize8 narrowed by
 * two saturating packs (exact: the values are already 0..255), whose
 * per-lane interleave one dword permutation undoes. */
static void quantize(size_t n, const float *a, float inv_scale, uint8_t *q)
{
    const __m256 inv = _mm256_set1_ps(inv_scale);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i q0 = quantize8(_mm256_loadu_ps(a + i), inv), q1 = quantize8(_mm256_loadu_ps(a + i + 8), inv);
        const __m256i q2 = quantize8(_mm256_loadu_ps(a + i + 16), inv), q3 = quantize8(_mm256_loadu_ps(a + i + 24), inv);
        /* The packs work per 128-bit lane: their dwords hold the 4-value
         * runs q0[0..3], q1[0..3], q2[0..3], q3[0..3], q0[4..7], ..., q3[4..7]. */
        const __m256i w01 = _mm256_packus_epi32(q0, q1), w23 = _mm256_packus_epi32(q2, q3);
        const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(w01, w23), order);
        _mm256_storeu_si256((__m256i *)(q + i), b);
    }
    nn_lowp_quantize_loop(n - i, a + i, inv_scale, q + i);
}

/* Rows 0..rows-1, 16 columns from b (a panel's group pointer plus the first
 * column's offset), n of them stored. */
static ALWAYS_INLINE void bf16_tile16(const int rows, int n, int kc, const float *a, const uint16_t *b, float *c,
                                      ptrdiff_t ldc, bool accumulate)
{
    const __m256i order = column_order();
    const __m256i mk0 = first_lanes(n), mk1 = first_lanes(n - 8);
    const __m256 high = _mm256_castsi256_ps(_mm256_set1_epi32((int)0xffff0000u));
    __m256 acc0[MR_BF16], acc1[MR_BF16];
    UNROLL for (int i = 0; i < rows; i++) {
        if (accumulate) {
            acc0[i] = _mm256_permutevar8x32_ps(_mm256_maskload_ps(c + i * ldc, mk0), order);
            acc1[i] = _mm256_permutevar8x32_ps(_mm256_maskload_ps(c + i * ldc + 8, mk1), order);
        } else {
            acc0[i] = _mm256_setzero_ps();
            acc1[i] = _mm256_setzero_ps();
        }
    }
    for (int g = 0; g < kc / 4; g++) {
        /* y[h]: columns 4h..4h+3, each as (depth 0|1, depth 2|3) dwords. */
        const __m256 y0 = _mm256_loadu_ps((const float *)b), y1 = _mm256_loadu_ps((const float *)(b + 16));
        const __m256 y2 = _mm256_loadu_ps((const float *)(b + 32)), y3 = _mm256_loadu_ps((const float *)(b + 48));
        UNROLL for (int h = 0; h < 2; h++) {
            /* Pair h (depths 2h, 2h+1) of 8 + 8 columns, in column_order. */
            const __m256 x0 = h ? _mm256_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 1, 3, 1))
                                : _mm256_shuffle_ps(y0, y1, _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 x1 = h ? _mm256_shuffle_ps(y2, y3, _MM_SHUFFLE(3, 1, 3, 1))
                                : _mm256_shuffle_ps(y2, y3, _MM_SHUFFLE(2, 0, 2, 0));
            const float *ap = a + (2 * h + 1) * MR_BF16;
            __m256 v0 = _mm256_and_ps(x0, high), v1 = _mm256_and_ps(x1, high); /* the odd depth */
            UNROLL for (int i = 0; i < rows; i++) {
                const __m256 ai = _mm256_broadcast_ss(ap + i);
                acc0[i] = _mm256_fmadd_ps(ai, v0, acc0[i]);
                acc1[i] = _mm256_fmadd_ps(ai, v1, acc1[i]);
            }
            ap -= MR_BF16;
            v0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(x0), 16)); /* the even depth */
            v1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(x1), 16));
            UNROLL for (int i = 0; i < rows; i++) {
                const __m256 ai = _mm256_broadcast_ss(ap + i);
                acc0[i] = _mm256_fmadd_ps(ai, v0, acc0[i]);
                acc1[i] = _mm256_fmadd_ps(ai, v1, acc1[i]);
            }
        }
        a += 4 * MR_BF16;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    UNROLL for (int i = 0; i < rows; i++) {
        _mm256_maskstore_ps(c + i * ldc, mk0, _mm256_permutevar8x32_ps(acc0[i], order));
        _mm256_maskstore_ps(c + i * ldc + 8, mk1, _mm256_permutevar8x32_ps(acc1[i], order));
    }
}

/* The tiles, kept out of line so that no compiler moves their arithmetic
 * across the MXCSR writes around the call (C has no such ordering without
 * FENV_ACCESS, which gcc does not support). */
static __attribute__((noinline)) void bf16_columns(int m, int n, int kc, const void *a, const uint16_t *b, float *c,
                                                   ptrdiff_t ldc, bool accumulate)
{
    for (int j0 = 0; j0 < n; j0 += 16) {
        const uint16_t *bj = b + j0 * NN_LOWP_KGROUP;
        float *cj = c + j0;
        const int nj = n - j0;
        switch (m) {
        case 1: bf16_tile16(1, nj, kc, a, bj, cj, ldc, accumulate); break;
        case 2: bf16_tile16(2, nj, kc, a, bj, cj, ldc, accumulate); break;
        case 3: bf16_tile16(3, nj, kc, a, bj, cj, ldc, accumulate); break;
        case 4: bf16_tile16(4, nj, kc, a, bj, cj, ldc, accumulate); break;
        default: break;
        }
    }
}

static void bf16_kernel(int m, int n, int kc, const void *a, const uint16_t *b, float *c, ptrdiff_t ldc,
                        bool accumulate, const struct nn_gemm_epilogue *ep)
{
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ (bit 15) and DAZ (bit 6), this thread only, restored below */
    bf16_columns(m, n, kc, a, b, c, ldc, accumulate);
    _mm_setcsr(csr);
    if (ep) nn_lowp_tile_epilogue(ep, c, ldc, m, n);
}

/* ---- int8 with vpmaddwd ---- */

static ALWAYS_INLINE void madd_tile8(const int rows, int n, int kc, const int16_t *a, const int8_t *b, float *c,
                                     ptrdiff_t ldc)
{
    __m256i lo[MR_MADD], hi[MR_MADD];
    UNROLL for (int i = 0; i < rows; i++) lo[i] = hi[i] = _mm256_setzero_si256();
    for (int g = 0; g < kc / 4; g++) {
        /* Columns 0-3 and 4-7, four depths each, as 16-bit values. */
        const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b));
        const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 16)));
        UNROLL for (int i = 0; i < rows; i++) {
            int64_t four;
            memcpy(&four, a + i * 4, sizeof four);
            const __m256i ai = _mm256_set1_epi64x(four); /* even lanes: depths 0, 1; odd lanes: 2, 3 */
            lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(ai, b0));
            hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(ai, b1));
        }
        a += 4 * MR_MADD;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    const __m256i order = column_order(), mk = first_lanes(n);
    UNROLL for (int i = 0; i < rows; i++) {
        const __m256i sum = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(lo[i], hi[i]), order);
        _mm256_maskstore_ps(c + i * ldc, mk, _mm256_cvtepi32_ps(sum));
    }
}

static void int8_kernel_madd(int m, int n, int kc, const void *a, const int8_t *b, float *c, ptrdiff_t ldc,
                             const struct nn_gemm_epilogue *ep)
{
    for (int j0 = 0; j0 < n; j0 += 8) {
        const int8_t *bj = b + j0 * NN_LOWP_KGROUP;
        float *cj = c + j0;
        switch (m) {
        case 1: madd_tile8(1, n - j0, kc, a, bj, cj, ldc); break;
        case 2: madd_tile8(2, n - j0, kc, a, bj, cj, ldc); break;
        case 3: madd_tile8(3, n - j0, kc, a, bj, cj, ldc); break;
        case 4: madd_tile8(4, n - j0, kc, a, bj, cj, ldc); break;
        default: break;
        }
    }
    if (ep) nn_lowp_tile_epilogue(ep, c, ldc, m, n);
}

/* ---- int8 with AVX-VNNI ---- */

/* acc += the quad dot products of a (u8, the first source) and b (s8),
 * AVX-VNNI's VEX-encoded vpdpbusd. Inline assembly, as in
 * gemm_lowp_avx512.c: with the intrinsic gcc 12 keeps the accumulators on
 * the stack. Run only where the CPU has AVX-VNNI. */
static ALWAYS_INLINE __m256i dp_u8s8(__m256i acc, __m256i a, __m256i b)
{
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
}

static ALWAYS_INLINE void vnni_tile16(const int rows, int n, int kc, const uint32_t *a, const int8_t *b,
                                           float *c, ptrdiff_t ldc)
{
    __m256i acc0[MR_VNNI], acc1[MR_VNNI];
    UNROLL for (int i = 0; i < rows; i++) acc0[i] = acc1[i] = _mm256_setzero_si256();
    for (int g = 0; g < kc / 4; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)b), b1 = _mm256_loadu_si256((const __m256i *)(b + 32));
        UNROLL for (int i = 0; i < rows; i++) {
            const __m256i ai = _mm256_set1_epi32((int)a[i]);
            acc0[i] = dp_u8s8(acc0[i], ai, b0);
            acc1[i] = dp_u8s8(acc1[i], ai, b1);
        }
        a += MR_VNNI;
        b += NN_LOWP_NR * NN_LOWP_KGROUP;
    }
    const __m256i mk0 = first_lanes(n), mk1 = first_lanes(n - 8);
    UNROLL for (int i = 0; i < rows; i++) {
        _mm256_maskstore_ps(c + i * ldc, mk0, _mm256_cvtepi32_ps(acc0[i]));
        _mm256_maskstore_ps(c + i * ldc + 8, mk1, _mm256_cvtepi32_ps(acc1[i]));
    }
}

static void int8_kernel_vnni(int m, int n, int kc, const void *a, const int8_t *b, float *c, ptrdiff_t ldc,
                                  const struct nn_gemm_epilogue *ep)
{
    for (int j0 = 0; j0 < n; j0 += 16) {
        const int8_t *bj = b + j0 * NN_LOWP_KGROUP;
        float *cj = c + j0;
        switch (m) {
        case 1: vnni_tile16(1, n - j0, kc, a, bj, cj, ldc); break;
        case 2: vnni_tile16(2, n - j0, kc, a, bj, cj, ldc); break;
        case 3: vnni_tile16(3, n - j0, kc, a, bj, cj, ldc); break;
        case 4: vnni_tile16(4, n - j0, kc, a, bj, cj, ldc); break;
        case 5: vnni_tile16(5, n - j0, kc, a, bj, cj, ldc); break;
        case 6: vnni_tile16(6, n - j0, kc, a, bj, cj, ldc); break;
        default: break;
        }
    }
    if (ep) nn_lowp_tile_epilogue(ep, c, ldc, m, n);
}

const struct nn_lowp_kernels nn_lowp_kernels_avx2 = {
    .bf16_name = "avx2-fma", .int8_name = "avx2-maddwd", .mr_bf16 = MR_BF16, .mr_int8 = MR_MADD,
    .a_bytes_bf16 = sizeof(float), .a_bytes_int8 = sizeof(int16_t),
    .pack_bf16 = pack_bf16, .pack_int8 = pack_int8_madd, .pack_u8 = pack_u8_madd,
    .quantize = quantize, .bf16 = bf16_kernel, .int8 = int8_kernel_madd,
};

const struct nn_lowp_kernels nn_lowp_kernels_avx2_vnni = {
    .bf16_name = "avx2-fma", .int8_name = "avx-vnni", .mr_bf16 = MR_BF16, .mr_int8 = MR_VNNI,
    .a_bytes_bf16 = sizeof(float), .a_bytes_int8 = 1,
    .pack_bf16 = pack_bf16, .pack_int8 = pack_int8_vnni, .pack_u8 = pack_u8_vnni,
    .quantize = quantize, .bf16 = bf16_kernel, .int8 = int8_kernel_vnni,
};
