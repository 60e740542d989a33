/* nn_gemm_lowp: for now the definition itself (ops/gemm_lowp_ref.c); the
 * blocked, threaded driver over SIMD kernels replaces this. */
#include "ops/gemm_lowp.h"

void nn_gemm_lowp(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B, float *C,
                  int ldc, const struct nn_gemm_epilogue *ep)
{
    nn_gemm_lowp_ref(M, A, lda, a_inv_scale, B, C, ldc, ep);
}

const char *nn_gemm_lowp_kernel(enum nn_lowp type)
{
    (void)type;
    return "scalar";
}
