/* The one GEMM entry point of nn. Everything that multiplies matrices goes
 * through here, so faster kernels for particular shapes can be slotted in
 * behind it without touching callers. Row-major, like cblas with CblasRowMajor:
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * op(X) is X or its transpose as trans_a / trans_b say. beta == 0 never reads
 * C (it may hold garbage, NaN included).
 *
 * nn's own blocked kernels do the work (AVX-512, AVX2+FMA or portable C, as
 * nn_simd_level() says), split across the engine's thread pool; the result
 * does not depend on the thread count. NN_GEMM=openblas sends every call to
 * OpenBLAS's cblas_sgemm instead, for comparison. Safe to call from several
 * threads at once. */
#ifndef NN_OPS_GEMM_H
#define NN_OPS_GEMM_H

#include <stdbool.h>

void nn_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* A per-column affine map and ReLU applied to C once the product is
 * complete, while each tile is still in cache:
 *   C[i][j] = max(C[i][j] * scale[j] + shift[j], 0)   (ReLU only if relu)
 * scale or shift may be NULL (1 and 0). This is a conv's inference batch
 * norm and ReLU at no extra pass over memory. */
struct nn_gemm_epilogue {
    const float *scale, *shift;
    bool relu;
};

/* nn_gemm followed by the epilogue (NULL: none). */
void nn_gemm_ex(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, const struct nn_gemm_epilogue *ep);

/* Frees the calling thread's packing buffers, nn_gemm_lowp's included (they are kept between calls;
 * the pool's workers free theirs when they exit). Call before a thread that
 * used nn_gemm ends, or at shutdown, to leave nothing for leak checkers. */
void nn_gemm_release_scratch(void);

#endif
