/* Inside nn_gemm: the contract between the blocked driver (ops/gemm.c) and
 * the per-instruction-set packing routines and micro-kernels
 * (ops/gemm_scalar.c, ops/gemm_avx2.c, ops/gemm_avx512.c), plus hooks that
 * let the tests reach every level on one machine.
 *
 * Layouts (Goto/BLIS): op(A) is copied MR rows at a time into an "A panel"
 * dst[p * mr + i] (depth p, row i), so one step of the kernel reads MR
 * consecutive floats; op(B) is copied NR columns at a time into "B panels"
 * dst[p * nr + j], each panel k * nr floats, the last one zero-padded to NR
 * columns. All transposes are absorbed by the packing, so one kernel serves
 * NN, TN, NT and TT. */
#ifndef NN_OPS_GEMM_INTERNAL_H
#define NN_OPS_GEMM_INTERNAL_H

#include <stddef.h>

#include "base/cpu.h"

struct nn_gemm_kernels {
    const char *name;
    int mr, nr;   /* register tile: rows of op(A), columns of op(B) */
    int kc;       /* largest depth block: an A panel (mr x kc) fits L1 */
    int nc;       /* largest column block of packed B (kc x nc) */
    /* Copies op(A)[i][p] = a[i * rs + p * cs], i < m <= mr, p < k, into
     * dst[p * mr + i]. Rows m..mr-1 may be left undefined; dst has mr * k + 16
     * floats of room (the SIMD versions store whole vectors that overlap). */
    void (*pack_a)(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst);
    /* Copies op(B)[p][j] = b[p * rs + j * cs], p < k, j < n, into
     * ceil(n / nr) panels dst[(j / nr) * k * nr + p * nr + j % nr], zero-padded. */
    void (*pack_b)(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst);
    /* C[i][j] = alpha * sum_p a[p * mr + i] * b[p * b_step + j] + beta * C[i][j]
     * for i < m <= mr, j < n <= nr. b has nr readable floats per step (a packed
     * panel has b_step == nr; a full-width panel of an untransposed B can be
     * read in place with b_step == ldb). beta == 0 never reads C. */
    void (*kernel)(int m, int n, int k, const float *a, const float *b, ptrdiff_t b_step, float *c, ptrdiff_t ldc,
                   float alpha, float beta);
};

extern const struct nn_gemm_kernels nn_gemm_kernels_scalar;
extern const struct nn_gemm_kernels nn_gemm_kernels_avx2;
extern const struct nn_gemm_kernels nn_gemm_kernels_avx512;

/* The portable packing routines (any strides); the SIMD levels use them for
 * the cases they have no faster copy for. dst as in struct nn_gemm_kernels,
 * with mr / nr given. */
void nn_gemm_pack_a_ref(int mr, int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst);
void nn_gemm_pack_b_ref(int nr, int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst);

/* Test hook: use nn's kernels at this SIMD level from now on, instead of
 * nn_simd_level() (and even under NN_GEMM=openblas); -1 returns to the
 * normal choice. A level above nn_simd_level() (what the CPU has, capped by
 * NN_SIMD) is lowered to it. Not for use while GEMMs run. */
void nn_gemm_set_level(int level);
/* The level the next nn_gemm will use (after the hook and the CPU cap). */
enum nn_simd nn_gemm_level(void);

#endif
