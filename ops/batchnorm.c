#include "ops/batchnorm.h"

#include <math.h>

#include "base/threads.h"

/* Statistics and gradients are per channel, so the threads split the
 * channels, not the rows: each channel's sums then run over all M rows in
 * row order on one thread, whatever the thread count, and the results are
 * bit-for-bit reproducible. Sums are double: M reaches 32*147*147 = 691k rows.
 * The split is in blocks of 16 channels (one cache line of a row), and a
 * thread sweeps the rows once per CSUB channels so its per-channel
 * accumulators fit on the stack. */
#define CBLOCK 16
#define CSUB 256
#define GRAIN_FLOATS 65536L

static int nblocks(int C) { return (C + CBLOCK - 1) / CBLOCK; }

static long block_grain(long M)
{
    long per_block = M * CBLOCK;
    return per_block >= GRAIN_FLOATS ? 1 : (GRAIN_FLOATS + per_block - 1) / per_block;
}

/* Runs fn on every channel sub-range [c0, c1) of at most CSUB channels that
 * the block range [b0, b1) covers. */
typedef void (*bn_channels_fn)(void *ctx, int c0, int c1);

struct bn_split {
    bn_channels_fn fn;
    void *ctx;
    int C;
};

static void split_range(void *ctx, long b0, long b1)
{
    const struct bn_split *sp = ctx;
    int end = (int)b1 * CBLOCK < sp->C ? (int)b1 * CBLOCK : sp->C;
    for (int c0 = (int)b0 * CBLOCK; c0 < end; c0 += CSUB) sp->fn(sp->ctx, c0, c0 + CSUB < end ? c0 + CSUB : end);
}

static void for_channels(long M, int C, bn_channels_fn fn, void *ctx)
{
    struct bn_split sp = {fn, ctx, C};
    nn_parallel_for(nblocks(C), block_grain(M), split_range, &sp);
}

/* ---- training forward ---- */

struct bn_fwd {
    float *y, *mean, *invstd, *running_mean, *running_var;
    const float *x, *gamma, *beta;
    long M;
    int C;
    float eps, decay;
    bool relu;
};

static void fwd_train_channels(void *ctx, int c0, int c1)
{
    const struct bn_fwd *j = ctx;
    const long M = j->M;
    const int C = j->C, n = c1 - c0;
    double sum[CSUB] = {0}, sumsq[CSUB] = {0};
    for (long m = 0; m < M; m++) {
        const float *xr = j->x + m * C + c0;
        for (int i = 0; i < n; i++) {
            double v = xr[i];
            sum[i] += v;
            sumsq[i] += v * v;
        }
    }
    float mu[CSUB], scale[CSUB], shift[CSUB];
    for (int i = 0; i < n; i++) {
        int c = c0 + i;
        double mean = sum[i] / (double)M;
        double var = sumsq[i] / (double)M - mean * mean;
        if (var < 0) var = 0;
        float invstd = (float)(1.0 / sqrt(var + (double)j->eps));
        j->mean[c] = mu[i] = (float)mean;
        j->invstd[c] = invstd;
        scale[i] = invstd * j->gamma[c];
        shift[i] = j->beta[c];
        if (j->running_mean) j->running_mean[c] = j->decay * j->running_mean[c] + (1.0f - j->decay) * (float)mean;
        if (j->running_var) {
            double unbiased = M > 1 ? var * (double)M / (double)(M - 1) : var;
            j->running_var[c] = j->decay * j->running_var[c] + (1.0f - j->decay) * (float)unbiased;
        }
    }
    for (long m = 0; m < M; m++) {
        const float *xr = j->x + m * C + c0;
        float *yr = j->y + m * C + c0;
        if (j->relu) {
            for (int i = 0; i < n; i++) {
                float v = (xr[i] - mu[i]) * scale[i] + shift[i];
                yr[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int i = 0; i < n; i++) yr[i] = (xr[i] - mu[i]) * scale[i] + shift[i];
        }
    }
}

void nn_batchnorm_forward_train(float *y, float *mean, float *invstd, const float *x, const float *gamma,
                                const float *beta, float *running_mean, float *running_var, long M, int C,
                                float eps, float decay, bool relu)
{
    if (M <= 0 || C <= 0) return;
    struct bn_fwd j = {.y = y, .mean = mean, .invstd = invstd, .running_mean = running_mean,
                       .running_var = running_var, .x = x, .gamma = gamma, .beta = beta, .M = M, .C = C,
                       .eps = eps, .decay = decay, .relu = relu};
    for_channels(M, C, fwd_train_channels, &j);
}

/* ---- inference forward: elementwise, so split by rows ---- */

struct bn_infer {
    float *y;
    const float *x, *gamma, *beta, *rmean, *rvar;
    int C;
    float eps;
    bool relu;
};

static void fwd_infer_rows(void *ctx, long m0, long m1)
{
    const struct bn_infer *j = ctx;
    const int C = j->C;
    float scale[CSUB], shift[CSUB];
    for (int c0 = 0; c0 < C; c0 += CSUB) {
        int n = C - c0 < CSUB ? C - c0 : CSUB;
        for (int i = 0; i < n; i++) {
            int c = c0 + i;
            scale[i] = j->gamma[c] / sqrtf(j->rvar[c] + j->eps);
            shift[i] = j->beta[c] - j->rmean[c] * scale[i];
        }
        for (long m = m0; m < m1; m++) {
            const float *xr = j->x + m * C + c0;
            float *yr = j->y + m * C + c0;
            if (j->relu) {
                for (int i = 0; i < n; i++) {
                    float v = xr[i] * scale[i] + shift[i];
                    yr[i] = v > 0.0f ? v : 0.0f;
                }
            } else {
                for (int i = 0; i < n; i++) yr[i] = xr[i] * scale[i] + shift[i];
            }
        }
    }
}

void nn_batchnorm_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, long M, int C, float eps,
                                bool relu)
{
    if (M <= 0 || C <= 0) return;
    struct bn_infer j = {y, x, gamma, beta, running_mean, running_var, C, eps, relu};
    long grain = GRAIN_FLOATS / C > 0 ? GRAIN_FLOATS / C : 1;
    nn_parallel_for(M, grain, fwd_infer_rows, &j);
}

/* ---- training backward ---- */

struct bn_bwd {
    float *dx, *dgamma, *dbeta;
    const float *dy, *x, *y, *mean, *invstd, *gamma;
    const float *rmean, *rvar; /* inference backward only */
    long M;
    int C;
    float eps;
    bool relu;
};

/* Small batches make this backward ill-conditioned: with M = 2 (the aux
 * head's 1x1 conv at batch 2) xhat is +-sqrt(var / (var + eps)), and dx is
 * the tiny difference eps / (var + eps) of two large terms. Float
 * arithmetic, or statistics rounded to float, then lose most digits, and the
 * error reaches every layer below. So the statistics are recomputed here in
 * double (shifted by the stored float mean to keep the sums small) and the
 * per-element combination runs in double too. */
static void bwd_train_channels(void *ctx, int c0, int c1)
{
    const struct bn_bwd *j = ctx;
    const long M = j->M;
    const int C = j->C, n = c1 - c0;
    const bool relu = j->relu;
    double shift[CSUB];
    for (int i = 0; i < n; i++) shift[i] = j->mean[c0 + i];
    /* s1 = sum(d), s2 = sum(d^2), sdy = sum(g), sdyd = sum(g * d), with
     * d = x - shift and g = dy masked by y > 0 under ReLU. */
    double s1[CSUB] = {0}, s2[CSUB] = {0}, sdy[CSUB] = {0}, sdyd[CSUB] = {0};
    for (long m = 0; m < M; m++) {
        const float *xr = j->x + m * C + c0, *dyr = j->dy + m * C + c0, *yr = j->y + m * C + c0;
        for (int i = 0; i < n; i++) {
            double g = relu && !(yr[i] > 0.0f) ? 0.0 : (double)dyr[i];
            double d = (double)xr[i] - shift[i];
            s1[i] += d;
            s2[i] += d * d;
            sdy[i] += g;
            sdyd[i] += g * d;
        }
    }
    /* dx = gamma*invstd * (g - sum(g)/M - xhat * sum(g*xhat)/M), with
     * xhat = (x - mean)*invstd, as a*g + b*(x - mean) + c per channel. */
    double a[CSUB], b[CSUB], cc[CSUB], mean[CSUB];
    for (int i = 0; i < n; i++) {
        int c = c0 + i;
        double dm = s1[i] / (double)M;
        double var = s2[i] / (double)M - dm * dm;
        if (var < 0) var = 0;
        double invstd = 1.0 / sqrt(var + (double)j->eps);
        double sdy_xhat = (sdyd[i] - dm * sdy[i]) * invstd;
        if (j->dgamma) j->dgamma[c] += (float)sdy_xhat;
        if (j->dbeta) j->dbeta[c] += (float)sdy[i];
        double gi = (double)j->gamma[c] * invstd;
        mean[i] = shift[i] + dm;
        a[i] = gi;
        b[i] = -gi * invstd * sdy_xhat / (double)M;
        cc[i] = -gi * sdy[i] / (double)M;
    }
    if (!j->dx) return;
    for (long m = 0; m < M; m++) {
        const float *xr = j->x + m * C + c0, *dyr = j->dy + m * C + c0, *yr = j->y + m * C + c0;
        float *dxr = j->dx + m * C + c0;
        for (int i = 0; i < n; i++) {
            double g = relu && !(yr[i] > 0.0f) ? 0.0 : (double)dyr[i];
            dxr[i] += (float)(a[i] * g + b[i] * ((double)xr[i] - mean[i]) + cc[i]);
        }
    }
}

void nn_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *y,
                           const float *mean, const float *invstd, const float *gamma, long M, int C, float eps,
                           bool relu)
{
    if (M <= 0 || C <= 0) return;
    struct bn_bwd j = {.dx = dx, .dgamma = dgamma, .dbeta = dbeta, .dy = dy, .x = x, .y = relu ? y : x,
                       .mean = mean, .invstd = invstd, .gamma = gamma, .M = M, .C = C, .relu = relu, .eps = eps};
    for_channels(M, C, bwd_train_channels, &j);
}

/* ---- inference backward: statistics are constants ---- */

static void bwd_infer_channels(void *ctx, int c0, int c1)
{
    const struct bn_bwd *j = ctx;
    const long M = j->M;
    const int C = j->C, n = c1 - c0;
    const bool relu = j->relu, sums = j->dgamma || j->dbeta;
    float mu[CSUB], rinv[CSUB], a[CSUB];
    for (int i = 0; i < n; i++) {
        int c = c0 + i;
        mu[i] = j->rmean[c];
        rinv[i] = 1.0f / sqrtf(j->rvar[c] + j->eps);
        a[i] = j->gamma[c] * rinv[i];
    }
    double sdy[CSUB] = {0}, sdyx[CSUB] = {0};
    for (long m = 0; m < M; m++) {
        const float *xr = j->x + m * C + c0, *dyr = j->dy + m * C + c0, *yr = j->y + m * C + c0;
        if (j->dx) {
            float *dxr = j->dx + m * C + c0;
            for (int i = 0; i < n; i++) {
                float g = relu && !(yr[i] > 0.0f) ? 0.0f : dyr[i];
                dxr[i] += a[i] * g;
            }
        }
        if (sums) {
            for (int i = 0; i < n; i++) {
                float g = relu && !(yr[i] > 0.0f) ? 0.0f : dyr[i];
                sdy[i] += g;
                sdyx[i] += (double)g * (double)(xr[i] - mu[i]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (j->dgamma) j->dgamma[c0 + i] += (float)(sdyx[i] * rinv[i]);
        if (j->dbeta) j->dbeta[c0 + i] += (float)sdy[i];
    }
}

void nn_batchnorm_backward_infer(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                 const float *y, const float *gamma, const float *running_mean,
                                 const float *running_var, long M, int C, float eps, bool relu)
{
    if (M <= 0 || C <= 0) return;
    struct bn_bwd j = {.dx = dx, .dgamma = dgamma, .dbeta = dbeta, .dy = dy, .x = x, .y = relu ? y : x,
                       .gamma = gamma, .rmean = running_mean, .rvar = running_var, .M = M, .C = C, .eps = eps,
                       .relu = relu};
    for_channels(M, C, bwd_infer_channels, &j);
}
