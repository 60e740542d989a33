#include "ops/dense.h"

#include <math.h>
#include <string.h>

#include "ops/gemm.h"

void nn_fc_forward(float *out, const float *in, const float *w, const float *b, int N, int IN, int OUT)
{
    /* Start from the bias so one GEMM with beta = 1 adds the product. */
    for (int n = 0; n < N; n++) {
        if (b)
            memcpy(out + (long)n * OUT, b, (size_t)OUT * sizeof(float));
        else
            memset(out + (long)n * OUT, 0, (size_t)OUT * sizeof(float));
    }
    nn_gemm(false, false, N, OUT, IN, 1.0f, in, IN, w, OUT, 1.0f, out, OUT);
}

void nn_fc_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int N,
                    int IN, int OUT)
{
    if (din) nn_gemm(false, true, N, IN, OUT, 1.0f, dout, OUT, w, OUT, 1.0f, din, IN);
    if (dw) nn_gemm(true, false, IN, OUT, N, 1.0f, in, IN, dout, OUT, 1.0f, dw, OUT);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *g = dout + (long)n * OUT;
            for (int o = 0; o < OUT; o++) db[o] += g[o];
        }
}

void nn_dropout_forward(float *out, float *mask, const float *in, long n, float keep, struct nn_rng *rng)
{
    if (keep >= 1.0f) {
        if (out != in) memmove(out, in, (size_t)n * sizeof(float));
        for (long i = 0; i < n; i++) mask[i] = 1.0f;
        return;
    }
    const float scale = 1.0f / keep;
    for (long i = 0; i < n; i++) {
        mask[i] = nn_rng_uniform(rng) < keep ? scale : 0.0f;
        out[i] = in[i] * mask[i];
    }
}

void nn_dropout_backward(float *din, const float *dout, const float *mask, long n)
{
    for (long i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}

static int label_ok(int32_t label, int K) { return label >= 0 && label < K; }

double nn_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int N, int K,
                               float smoothing)
{
    double total = 0;
    const double off = (double)smoothing / K, on = 1.0 - (double)smoothing;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (long)n * K;
        float *p = probs + (long)n * K;
        float zmax = z[0];
        for (int k = 1; k < K; k++) zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0, zsum = 0;
        for (int k = 0; k < K; k++) {
            p[k] = expf(z[k] - zmax);
            sum += p[k];
            zsum += z[k];
        }
        float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++) p[k] *= inv;
        /* -sum_k t_k log p_k = logZ - sum_k t_k z_k, since sum_k t_k = 1. */
        double logz = zmax + log(sum);
        total += label_ok(labels[n], K) ? logz - on * z[labels[n]] - off * zsum : NAN;
    }
    return N > 0 ? total / N : 0.0;
}

void nn_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int N, int K,
                              float smoothing, float scale)
{
    const float g = scale / (float)N, off = smoothing / (float)K, on = 1.0f - smoothing;
    for (int n = 0; n < N; n++) {
        const float *p = probs + (long)n * K;
        float *d = dlogits + (long)n * K;
        for (int k = 0; k < K; k++) d[k] += g * (p[k] - off);
        if (label_ok(labels[n], K)) d[labels[n]] -= g * on;
    }
}
