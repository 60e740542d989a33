/* Portable level of nn_gemm_lowp: the definition's arithmetic one element at
 * a time over packed panels (nn_lowp_bf16_step for bf16, int32 sums for
 * int8), for CPUs without AVX2. */
#include "ops/gemm_lowp_pack.h"

#define MR 4

static void pack_bf16(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, void *dst)
{
    nn_lowp_pack_f32(MR, m, kc, kvalid, a, lda, dst);
}

static void pack_int8(int m, int kc, int kvalid, const float *a, ptrdiff_t lda, float inv, void *dst)
{
    nn_lowp_pack_u8x4(MR, m, kc, kvalid, a, lda, inv, dst);
}

static void pack_u8(int m, int kc, int kvalid, const uint8_t *a, ptrdiff_t lda, void *dst)
{
    nn_lowp_pack_u8x4_bytes(MR, m, kc, kvalid, a, lda, dst);
}

/* Element (p, j) of a packed B panel. */
#define B_AT(b, p, j) ((b)[(ptrdiff_t)((p) / NN_LOWP_KGROUP) * NN_LOWP_NR * NN_LOWP_KGROUP + (j) * NN_LOWP_KGROUP + (p) % NN_LOWP_KGROUP])

static void bf16_kernel(int m, int n, int kc, const void *a_, const uint16_t *b, float *c, ptrdiff_t ldc,
                        bool accumulate, const struct nn_gemm_epilogue *ep)
{
    const float *a = a_;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            float acc = accumulate ? c[i * ldc + j] : 0.0f;
            for (int p = 0; p < kc; p += 2) {
                acc = nn_lowp_bf16_step(acc, a[(p + 1) * MR + i], nn_bf16_value(nn_lowp_bf16_daz(B_AT(b, p + 1, j))));
                acc = nn_lowp_bf16_step(acc, a[p * MR + i], nn_bf16_value(nn_lowp_bf16_daz(B_AT(b, p, j))));
            }
            c[i * ldc + j] = acc;
        }
    }
    if (ep) nn_lowp_tile_epilogue(ep, c, ldc, m, n);
}

static void int8_kernel(int m, int n, int kc, const void *a_, const int8_t *b, float *c, ptrdiff_t ldc,
                        const struct nn_gemm_epilogue *ep)
{
    const uint8_t *a = a_;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            int32_t acc = 0;
            for (int p = 0; p < kc; p++) acc += (int32_t)a[(p / 4) * MR * 4 + i * 4 + p % 4] * B_AT(b, p, j);
            c[i * ldc + j] = (float)acc;
        }
    }
    if (ep) nn_lowp_tile_epilogue(ep, c, ldc, m, n);
}

const struct nn_lowp_kernels nn_lowp_kernels_scalar = {
    .bf16_name = "scalar", .int8_name = "scalar", .mr_bf16 = MR, .mr_int8 = MR,
    .a_bytes_bf16 = sizeof(float), .a_bytes_int8 = 1,
    .pack_bf16 = pack_bf16, .pack_int8 = pack_int8, .pack_u8 = pack_u8,
    .quantize = nn_lowp_quantize_loop, .bf16 = bf16_kernel, .int8 = int8_kernel,
};
