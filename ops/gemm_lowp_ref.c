/* The definition of the low-precision arithmetic (ops/gemm_lowp.h): the
 * conversions, the packing, and the product as plain loops. Every kernel
 * level is tested bit for bit against nn_gemm_lowp_ref. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp.h"
#include "ops/gemm_lowp_internal.h"

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

uint16_t nn_bf16_round(float x)
{
    uint32_t u = bits_of(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                              /* nearest, ties to even */
    return (uint16_t)(u >> 16);
}

/* Denormals read as zero (sign kept), as vdpbf16ps reads its operands. */
static float flush_denormal(float x)
{
    uint32_t u = bits_of(x);
    if ((u & 0x7f800000u) == 0) return float_of(u & 0x80000000u);
    return x;
}

float nn_lowp_bf16_step(float acc, float x, float y)
{
    /* fmaf: the product exact and one rounding of the sum, but to the
     * denormal grid below 2^-126, where the definition rounds to 24 bits as
     * if the exponent were unbounded and then flushes. The two agree except
     * just below 2^-126, handled next. */
    float r = fmaf(x, y, acc);
    float mag = fabsf(r);
    if (mag < 0x1p-126f) return copysignf(0.0f, r);
    if (mag == 0x1p-126f) {
        /* The exact sum is s + e (Knuth's two-sum; the product of two bf16,
         * 8-bit significands, is exact in double). Just below 2^-126 the
         * 24-bit grid steps by 2^-150, so the sum rounds below 2^-126, and
         * flushes, when it lies more than 2^-151 below it (exactly 2^-151
         * below is a tie, to the even 2^-126). */
        double p = (double)x * (double)y, s = (double)acc + p, bb = s - acc;
        double e = ((double)acc - (s - bb)) + (p - bb);
        double t = 0x1p-126 - fabs(s), toward = s < 0.0 ? -e : e; /* |exact| = |s| + toward */
        if (t - 0x1p-151 > toward) return copysignf(0.0f, r);
    }
    return r;
}

uint8_t nn_lowp_quantize_activation(float a, float a_inv_scale)
{
    float t = rintf(a * a_inv_scale);
    if (!(t > 0.0f)) return 0; /* negative, zero and NaN */
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

void nn_lowp_quantize_weights(const float *w, int k, int n, int8_t *q, float *scale)
{
    for (int j = 0; j < n; j++) {
        float m = 0.0f;
        for (int i = 0; i < k; i++) {
            float a = fabsf(w[(size_t)i * n + j]);
            if (a > m) m = a;
        }
        float s = m > 0.0f && isfinite(m) ? m / 127.0f : 1.0f;
        scale[j] = s;
        for (int i = 0; i < k; i++) {
            float t = rintf(w[(size_t)i * n + j] / s);
            if (!(t == t)) t = 0.0f;
            if (t > 127.0f) t = 127.0f;
            if (t < -127.0f) t = -127.0f;
            q[(size_t)i * n + j] = (int8_t)t;
        }
    }
}

/* Index of element (i, j) of B in the packed layout. */
static size_t packed_index(const struct nn_lowp_weights *w, int i, int j)
{
    const int G = NN_LOWP_KGROUP, NR = NN_LOWP_NR;
    return (size_t)(j / NR) * w->kpad * NR + (size_t)(i / G) * NR * G + (size_t)(j % NR) * G + (size_t)(i % G);
}

static enum nn_status pack_alloc(enum nn_lowp type, int k, int n, size_t elem, struct nn_lowp_weights **out)
{
    *out = NULL;
    if (k <= 0 || n <= 0) return nn_fail(NN_ERR_ARG, "low-precision weights of shape [%d, %d]", k, n);
    struct nn_lowp_weights *w = calloc(1, sizeof *w);
    if (!w) return nn_fail(NN_ERR_NOMEM, "out of memory");
    w->type = type;
    w->k = k;
    w->n = n;
    w->kpad = (k + NN_LOWP_KGROUP - 1) / NN_LOWP_KGROUP * NN_LOWP_KGROUP;
    size_t panels = ((size_t)n + NN_LOWP_NR - 1) / NN_LOWP_NR;
    w->bytes = panels * (size_t)w->kpad * NN_LOWP_NR * elem;
    w->data = nn_calloc(w->bytes);
    if (!w->data) {
        size_t bytes = w->bytes;
        free(w);
        return nn_fail(NN_ERR_NOMEM, "cannot allocate %zu bytes of packed weights", bytes);
    }
    *out = w;
    return NN_OK;
}

enum nn_status nn_lowp_pack_bf16(const float *b, int k, int n, struct nn_lowp_weights **out)
{
    NN_TRY(pack_alloc(NN_LOWP_BF16, k, n, sizeof(uint16_t), out));
    uint16_t *d = (*out)->data;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n; j++) d[packed_index(*out, i, j)] = nn_bf16_round(b[(size_t)i * n + j]);
    return NN_OK;
}

enum nn_status nn_lowp_pack_int8(const int8_t *b, int k, int n, struct nn_lowp_weights **out)
{
    *out = NULL;
    if (k > NN_LOWP_INT8_MAX_K)
        return nn_fail(NN_ERR_ARG, "int8 weights with %d rows: at most %d keep the int32 sums exact", k,
                       NN_LOWP_INT8_MAX_K);
    NN_TRY(pack_alloc(NN_LOWP_INT8, k, n, sizeof(int8_t), out));
    int8_t *d = (*out)->data;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < n; j++) d[packed_index(*out, i, j)] = b[(size_t)i * n + j];
    return NN_OK;
}

void nn_lowp_weights_free(struct nn_lowp_weights *w)
{
    if (!w) return;
    nn_free(w->data);
    free(w);
}

static float epilogue_one(float c, const struct nn_gemm_epilogue *ep, int j)
{
    if (!ep) return c;
    if (ep->scale) c *= ep->scale[j];
    if (ep->shift) c += ep->shift[j];
    if (ep->relu) c = c > 0.0f ? c : 0.0f;
    return c;
}

void nn_gemm_lowp_ref(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B, float *C,
                      int ldc, const struct nn_gemm_epilogue *ep)
{
    nn_gemm_lowp_ref_cols(M, A, lda, a_inv_scale, B, C, ldc, ep, 0, B->n);
}

void nn_gemm_lowp_ref_cols(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B,
                           float *C, int ldc, const struct nn_gemm_epilogue *ep, int n0, int n1)
{
    const int K = B->k;
    for (int i = 0; i < M; i++) {
        const float *a = A + (size_t)i * lda;
        for (int j = n0; j < n1; j++) {
            float c;
            if (B->type == NN_LOWP_BF16) {
                const uint16_t *w = B->data;
                float acc = 0.0f;
                for (int g = 0; g < B->kpad; g += 2) {
                    for (int h = 1; h >= 0; h--) { /* the odd depth of the pair first */
                        int p = g + h;
                        float x = p < K ? flush_denormal(nn_bf16_value(nn_bf16_round(a[p]))) : 0.0f;
                        float y = flush_denormal(nn_bf16_value(w[packed_index(B, p, j)]));
                        acc = nn_lowp_bf16_step(acc, x, y);
                    }
                }
                c = acc;
            } else {
                const int8_t *w = B->data;
                int32_t acc = 0;
                for (int p = 0; p < K; p++)
                    acc += (int32_t)nn_lowp_quantize_activation(a[p], a_inv_scale) * w[packed_index(B, p, j)];
                c = (float)acc;
            }
            C[(size_t)i * ldc + j] = epilogue_one(c, ep, j);
        }
    }
}

void nn_gemm_lowp_ref_cols_u8(int M, const uint8_t *A, int lda, const struct nn_lowp_weights *B, float *C, int ldc,
                              const struct nn_gemm_epilogue *ep, int n0, int n1)
{
    if (B->type != NN_LOWP_INT8) return;
    const int8_t *w = B->data;
    for (int i = 0; i < M; i++) {
        const uint8_t *a = A + (size_t)i * lda;
        for (int j = n0; j < n1; j++) {
            int32_t acc = 0;
            for (int p = 0; p < B->k; p++) acc += (int32_t)a[p] * w[packed_index(B, p, j)];
            C[(size_t)i * ldc + j] = epilogue_one((float)acc, ep, j);
        }
    }
}
