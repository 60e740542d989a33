/* The portable level of nn_gemm: plain C that the compiler vectorises with
 * the baseline SSE2 of x86-64 (or whatever the target has), and the
 * reference packing routines every level can fall back on.
 *
 * Register tile 3 x 8, accumulated in double (see kernel()): 12 SSE2
 * registers of two doubles, plus the converted B row and a broadcast, fit
 * the 16 registers; of the double tiles tried (6x4, 4x4, 5x4, 2x8, 3x8)
 * this was the fastest. */
#include <string.h>

#include "ops/gemm_internal.h"

#define MR 3
#define NR 8

void nn_gemm_pack_a_ref(int mr, int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    /* Rows m..mr-1 are zeroed so kernels that always compute mr rows see finite values. */
    if (cs == 1) {
        for (int i = 0; i < mr; i++) {
            if (i < m) {
                const float *row = a + i * rs;
                for (int p = 0; p < k; p++) dst[(ptrdiff_t)p * mr + i] = row[p];
            } else {
                for (int p = 0; p < k; p++) dst[(ptrdiff_t)p * mr + i] = 0.0f;
            }
        }
        return;
    }
    for (int p = 0; p < k; p++) {
        const float *col = a + p * cs;
        float *d = dst + (ptrdiff_t)p * mr;
        int i = 0;
        for (; i < m; i++) d[i] = col[i * rs];
        for (; i < mr; i++) d[i] = 0.0f;
    }
}

void nn_gemm_pack_b_ref(int nr, int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    for (int j0 = 0; j0 < n; j0 += nr) {
        int w = n - j0 < nr ? n - j0 : nr;
        float *panel = dst + (ptrdiff_t)(j0 / nr) * k * nr;
        if (cs == 1) {
            for (int p = 0; p < k; p++) {
                float *d = panel + (ptrdiff_t)p * nr;
                memcpy(d, b + p * rs + j0, (size_t)w * sizeof(float));
                for (int j = w; j < nr; j++) d[j] = 0.0f;
            }
        } else {
            /* Walk each source row (contiguous when rs == 1) and scatter it down the panel. */
            for (int j = 0; j < nr; j++) {
                if (j < w) {
                    const float *src = b + (j0 + j) * cs;
                    for (int p = 0; p < k; p++) panel[(ptrdiff_t)p * nr + j] = src[p * rs];
                } else {
                    for (int p = 0; p < k; p++) panel[(ptrdiff_t)p * nr + j] = 0.0f;
                }
            }
        }
    }
}

static void pack_a(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    nn_gemm_pack_a_ref(MR, m, k, a, rs, cs, dst);
}

static void pack_b(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    nn_gemm_pack_b_ref(NR, k, n, b, rs, cs, dst);
}

/* One row of C: c[j] = alpha * acc[j] + beta * c[j], j < n. */
static void store_row(float *c, const double *acc, int n, float alpha, float beta)
{
    if (beta == 0.0f) {
        for (int j = 0; j < n; j++) c[j] = alpha * (float)acc[j];
    } else if (beta == 1.0f) {
        for (int j = 0; j < n; j++) c[j] += alpha * (float)acc[j];
    } else {
        for (int j = 0; j < n; j++) c[j] = alpha * (float)acc[j] + beta * c[j];
    }
}

/* Products and sums in double: a float product is exact in double, so the
 * only rounding is of the sum, far below float's. Without FMA (baseline
 * x86-64 has none) a float kernel rounds every product and every sum, which
 * left this path visibly less accurate than the FMA paths (first-layer
 * gradients of the golden training test 1.4x further from PyTorch). It costs
 * speed (about 11 against 28 GFLOP/s on a Zen 4 core), which a fallback for
 * CPUs without AVX2 can spare. */
static void kernel(int m, int n, int k, const float *a, const float *b, ptrdiff_t b_step, float *c, ptrdiff_t ldc,
                   float alpha, float beta)
{
    double acc[MR][NR] = {{0}};
    for (int p = 0; p < k; p++) {
        const float *ap = a + (ptrdiff_t)p * MR, *bp = b + p * b_step;
        double bv[NR];
        for (int j = 0; j < NR; j++) bv[j] = bp[j];
        for (int i = 0; i < MR; i++) {
            const double ai = ap[i];
            for (int j = 0; j < NR; j++) acc[i][j] += ai * bv[j];
        }
    }
    for (int i = 0; i < m; i++) store_row(c + i * ldc, acc[i], n, alpha, beta);
}

const struct nn_gemm_kernels nn_gemm_kernels_scalar = {
    .name = "scalar", .mr = MR, .nr = NR, .kc = 512, .nc = 1024,
    .pack_a = pack_a, .pack_b = pack_b, .kernel = kernel,
};
