/* AVX-512 level of nn_gemm (compiled with -mavx512f/bw/vl/dq -mfma; called
 * only when the CPU has them).
 *
 * Register tile 14 x 32: 28 zmm accumulators, two B vectors and one
 * broadcast of A use 31 of the 32 registers. Each depth step is 2 loads of B,
 * 14 broadcasts of A and 28 FMAs, so the FMA units, not the loads, set the
 * pace, and 28 independent accumulators cover the FMA latency on any core.
 * Thirty-two columns suit the channel counts of the networks nn runs (32 to
 * 448, mostly multiples of 32); a tile of 16 columns or fewer uses the
 * one-vector variant, and ragged edges use masked loads and stores. */
#include <immintrin.h>

#include "ops/gemm_internal.h"

#define MR 14
#define NR 32

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Transposes the 16 x 16 block held in r[0..15] (r[i] = row i) in place. */
static ALWAYS_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + c]: column 4L + c of rows 4g..4g+3, in 128-bit lane L */
    for (int g = 0; g < 4; g++) {
        __m512d lo0 = _mm512_castps_pd(t[4 * g]), hi0 = _mm512_castps_pd(t[4 * g + 1]);
        __m512d lo1 = _mm512_castps_pd(t[4 * g + 2]), hi1 = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
    }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);      /* lanes 0,1 of rows 0-3 | 4-7 */
        __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);      /* lanes 2,3 */
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44); /* rows 8-11 | 12-15 */
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
    }
}

static void pack_a(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    if (cs == 1) {
        /* Rows are contiguous in depth: transpose 16 x 16 blocks. Each
         * 16-float store overlaps the next one's first two floats, which
         * that store then overwrites, so the panel keeps its stride of MR. */
        for (int p0 = 0; p0 < k; p0 += 16) {
            const int kt = k - p0 < 16 ? k - p0 : 16;
            const __mmask16 mk = first_lanes(kt);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < m ? _mm512_maskz_loadu_ps(mk, a + i * rs + p0) : _mm512_setzero_ps();
            transpose16(r);
            for (int q = 0; q < kt; q++) _mm512_storeu_ps(dst + (ptrdiff_t)(p0 + q) * MR, r[q]);
        }
    } else if (rs == 1) {
        /* Transposed A: each depth step's m values are contiguous. */
        const __mmask16 mm = first_lanes(m);
        for (int p = 0; p < k; p++) _mm512_storeu_ps(dst + (ptrdiff_t)p * MR, _mm512_maskz_loadu_ps(mm, a + p * cs));
    } else {
        nn_gemm_pack_a_ref(MR, m, k, a, rs, cs, dst);
    }
}

static void pack_b(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    for (int j0 = 0; j0 < n; j0 += NR) {
        const int w = n - j0 < NR ? n - j0 : NR;
        float *panel = dst + (ptrdiff_t)(j0 / NR) * k * NR;
        if (cs == 1) {
            const __mmask16 m0 = first_lanes(w), m1 = first_lanes(w - 16);
            const float *src = b + j0;
            for (int p = 0; p < k; p++) {
                _mm512_store_ps(panel + (ptrdiff_t)p * NR, _mm512_maskz_loadu_ps(m0, src + p * rs));
                _mm512_store_ps(panel + (ptrdiff_t)p * NR + 16, _mm512_maskz_loadu_ps(m1, src + p * rs + 16));
            }
        } else if (rs == 1) {
            /* Transposed B: rows of the source are columns of the panel. */
            for (int h = 0; h < NR; h += 16) {
                for (int p0 = 0; p0 < k; p0 += 16) {
                    const int kt = k - p0 < 16 ? k - p0 : 16;
                    const __mmask16 mk = first_lanes(kt);
                    __m512 r[16];
                    for (int i = 0; i < 16; i++)
                        r[i] = h + i < w ? _mm512_maskz_loadu_ps(mk, b + (j0 + h + i) * cs + p0) : _mm512_setzero_ps();
                    transpose16(r);
                    for (int q = 0; q < kt; q++) _mm512_store_ps(panel + (ptrdiff_t)(p0 + q) * NR + h, r[q]);
                }
            }
        } else {
            nn_gemm_pack_b_ref(NR, k, n - j0 < NR ? n - j0 : NR, b + j0 * cs, rs, cs, panel);
        }
    }
}

/* c[0..15] = alpha * acc + beta * c on the lanes in `mask`. */
static ALWAYS_INLINE void store_c(float *c, __m512 acc, __mmask16 mask, __m512 va, float beta)
{
    __m512 v;
    if (beta == 0.0f) v = _mm512_mul_ps(acc, va);
    else if (beta == 1.0f) v = _mm512_fmadd_ps(acc, va, _mm512_maskz_loadu_ps(mask, c));
    else v = _mm512_fmadd_ps(acc, va, _mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, c)));
    if (mask == 0xFFFF) _mm512_storeu_ps(c, v);
    else _mm512_mask_storeu_ps(c, mask, v);
}

/* The tile for `rows` rows and `nv` vectors of columns, both constants after
 * inlining so the accumulators live in registers. */
static ALWAYS_INLINE void tile(const int rows, const int nv, int n, int k, const float *a, const float *b,
                               ptrdiff_t b_step, float *c, ptrdiff_t ldc, float alpha, float beta)
{
    __m512 acc0[MR], acc1[MR];
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm512_setzero_ps();
        acc1[i] = _mm512_setzero_ps();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        if (nv == 2) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
    }
    for (int p = 0; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = nv == 2 ? _mm512_loadu_ps(b + 16) : b0;
        for (int i = 0; i < rows; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            if (nv == 2) acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
        a += MR;
        b += b_step;
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __mmask16 m0 = first_lanes(n), m1 = first_lanes(n - 16);
    for (int i = 0; i < rows; i++) {
        store_c(c + i * ldc, acc0[i], m0, va, beta);
        if (nv == 2) store_c(c + i * ldc + 16, acc1[i], m1, va, beta);
    }
}

static void kernel(int m, int n, int k, const float *a, const float *b, ptrdiff_t b_step, float *c, ptrdiff_t ldc,
                   float alpha, float beta)
{
#define ROWS(R)                                                                  \
    case R:                                                                      \
        if (n > 16) tile(R, 2, n, k, a, b, b_step, c, ldc, alpha, beta);         \
        else tile(R, 1, n, k, a, b, b_step, c, ldc, alpha, beta);                \
        break;
    switch (m) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6) ROWS(7)
        ROWS(8) ROWS(9) ROWS(10) ROWS(11) ROWS(12) ROWS(13) ROWS(14)
    default: break;
    }
#undef ROWS
}

/* Blocks measured on AMD Zen 4 (32 KB L1d, 1 MB L2 per core): speed is flat
 * for kc from 384 to 768 (kc = 512 keeps the 28 KB A panel in L1); nc = 1024
 * beat 512 by a few percent on wide N (fewer re-packs of A). */
const struct nn_gemm_kernels nn_gemm_kernels_avx512 = {
    .name = "avx512", .mr = MR, .nr = NR, .kc = 512, .nc = 1024,
    .pack_a = pack_a, .pack_b = pack_b, .kernel = kernel,
};
