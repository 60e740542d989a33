/* The one GEMM entry point of nn. Everything that multiplies matrices goes
 * through here, so faster kernels for particular shapes can be slotted in
 * behind it without touching callers. Row-major, like cblas with CblasRowMajor:
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * op(X) is X or its transpose as trans_a / trans_b say. */
#ifndef NN_OPS_GEMM_H
#define NN_OPS_GEMM_H

#include <stdbool.h>

void nn_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

#endif
