/* AVX2 + FMA level of nn_gemm (compiled with -mavx2 -mfma; called only when
 * the CPU has them).
 *
 * Register tile 6 x 16: 12 ymm accumulators, two B vectors and one broadcast
 * of A use 15 of the 16 registers; each depth step is 2 loads, 6 broadcasts
 * and 12 FMAs. Ragged edges use masked loads and stores. */
#include <immintrin.h>

#include "ops/gemm_internal.h"

#define MR 6
#define NR 16

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Lane masks: lanes_mask(n) has its first n lanes set (0 <= n <= 8). */
static const int mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static ALWAYS_INLINE __m256i lanes_mask(int n)
{
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n));
}

/* Transposes the 8 x 8 block r[0..7] (r[i] = row i) in place. */
static ALWAYS_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* s[4g + c]: column 4L + c of rows 4g..4g+3, in 128-bit lane L */
    for (int g = 0; g < 2; g++) {
        s[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}

static ALWAYS_INLINE __m256 load_first(const float *p, int n)
{
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes_mask(n));
}

static void pack_a(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    if (cs == 1) {
        /* Rows contiguous in depth: transpose 8 x 8 blocks; each 8-float
         * store overlaps the next one's first two floats (rewritten by it). */
        for (int p0 = 0; p0 < k; p0 += 8) {
            const int kt = k - p0 < 8 ? k - p0 : 8;
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = i < m ? load_first(a + i * rs + p0, kt) : _mm256_setzero_ps();
            transpose8(r);
            for (int q = 0; q < kt; q++) _mm256_storeu_ps(dst + (ptrdiff_t)(p0 + q) * MR, r[q]);
        }
    } else if (rs == 1) {
        const __m256i mm = lanes_mask(m);
        for (int p = 0; p < k; p++) _mm256_storeu_ps(dst + (ptrdiff_t)p * MR, _mm256_maskload_ps(a + p * cs, mm));
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
            const float *src = b + j0;
            if (w == NR) {
                for (int p = 0; p < k; p++) {
                    _mm256_store_ps(panel + (ptrdiff_t)p * NR, _mm256_loadu_ps(src + p * rs));
                    _mm256_store_ps(panel + (ptrdiff_t)p * NR + 8, _mm256_loadu_ps(src + p * rs + 8));
                }
            } else {
                const __m256i m0 = lanes_mask(w), m1 = lanes_mask(w - 8);
                for (int p = 0; p < k; p++) {
                    _mm256_store_ps(panel + (ptrdiff_t)p * NR, _mm256_maskload_ps(src + p * rs, m0));
                    _mm256_store_ps(panel + (ptrdiff_t)p * NR + 8, _mm256_maskload_ps(src + p * rs + 8, m1));
                }
            }
        } else if (rs == 1) {
            for (int h = 0; h < NR; h += 8) {
                for (int p0 = 0; p0 < k; p0 += 8) {
                    const int kt = k - p0 < 8 ? k - p0 : 8;
                    __m256 r[8];
                    for (int i = 0; i < 8; i++)
                        r[i] = h + i < w ? load_first(b + (j0 + h + i) * cs + p0, kt) : _mm256_setzero_ps();
                    transpose8(r);
                    for (int q = 0; q < kt; q++) _mm256_store_ps(panel + (ptrdiff_t)(p0 + q) * NR + h, r[q]);
                }
            }
        } else {
            nn_gemm_pack_b_ref(NR, k, w, b + j0 * cs, rs, cs, panel);
        }
    }
}

/* c[0..7] = alpha * acc + beta * c on the first n lanes. */
static ALWAYS_INLINE void store_c(float *c, __m256 acc, int n, __m256 va, float beta)
{
    if (n >= 8) {
        __m256 v;
        if (beta == 0.0f) v = _mm256_mul_ps(acc, va);
        else if (beta == 1.0f) v = _mm256_fmadd_ps(acc, va, _mm256_loadu_ps(c));
        else v = _mm256_fmadd_ps(acc, va, _mm256_mul_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c)));
        _mm256_storeu_ps(c, v);
    } else if (n > 0) {
        const __m256i mask = lanes_mask(n);
        __m256 v;
        if (beta == 0.0f) v = _mm256_mul_ps(acc, va);
        else if (beta == 1.0f) v = _mm256_fmadd_ps(acc, va, _mm256_maskload_ps(c, mask));
        else v = _mm256_fmadd_ps(acc, va, _mm256_mul_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(c, mask)));
        _mm256_maskstore_ps(c, mask, v);
    }
}

static ALWAYS_INLINE void tile(const int rows, const int nv, int n, int k, const float *a, const float *b,
                               ptrdiff_t b_step, float *c, ptrdiff_t ldc, float alpha, float beta)
{
    __m256 acc0[MR], acc1[MR];
    for (int i = 0; i < rows; i++) {
        acc0[i] = _mm256_setzero_ps();
        acc1[i] = _mm256_setzero_ps();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    }
    for (int p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = nv == 2 ? _mm256_loadu_ps(b + 8) : b0;
        for (int i = 0; i < rows; i++) {
            const __m256 ai = _mm256_set1_ps(a[i]);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            if (nv == 2) acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
        a += MR;
        b += b_step;
    }
    const __m256 va = _mm256_set1_ps(alpha);
    for (int i = 0; i < rows; i++) {
        store_c(c + i * ldc, acc0[i], n, va, beta);
        if (nv == 2) store_c(c + i * ldc + 8, acc1[i], n - 8, va, beta);
    }
}

static void kernel(int m, int n, int k, const float *a, const float *b, ptrdiff_t b_step, float *c, ptrdiff_t ldc,
                   float alpha, float beta)
{
#define ROWS(R)                                                                  \
    case R:                                                                      \
        if (n > 8) tile(R, 2, n, k, a, b, b_step, c, ldc, alpha, beta);          \
        else tile(R, 1, n, k, a, b, b_step, c, ldc, alpha, beta);                \
        break;
    switch (m) {
        ROWS(1) ROWS(2) ROWS(3) ROWS(4) ROWS(5) ROWS(6)
    default: break;
    }
#undef ROWS
}

/* Blocks as for AVX-512 (measured the same way: kc 512 and nc 1024 were the
 * best of 256/384/512/768 and 512/1024). */
const struct nn_gemm_kernels nn_gemm_kernels_avx2 = {
    .name = "avx2", .mr = MR, .nr = NR, .kc = 512, .nc = 1024,
    .pack_a = pack_a, .pack_b = pack_b, .kernel = kernel,
};
