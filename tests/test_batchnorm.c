/* Batch norm: forward against a two-pass double reference (train and
 * inference, with and without the fused ReLU), running statistics, precision
 * over many rows, backward against finite differences, and results that do
 * not depend on the thread count. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/threads.h"
#include "ops/batchnorm.h"
#include "tests/gradcheck.h"

#define EPS 1e-3f

/* ---- references in double ---- */

static void bn_ref_stats(double *mean, double *var, const double *x, long M, int C)
{
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (long m = 0; m < M; m++) s += x[m * C + c];
        mean[c] = s / M;
        for (long m = 0; m < M; m++) q += (x[m * C + c] - mean[c]) * (x[m * C + c] - mean[c]);
        var[c] = q / M;
    }
}

static void bn_ref_apply(double *y, const double *x, const double *gamma, const double *beta, const double *mean,
                         const double *var, long M, int C, int relu)
{
    for (long m = 0; m < M; m++)
        for (int c = 0; c < C; c++) {
            double v = gamma[c] * (x[m * C + c] - mean[c]) / sqrt(var[c] + (double)EPS) + beta[c];
            y[m * C + c] = relu && v < 0 ? 0 : v;
        }
}

struct bn_ctx {
    long M;
    int C, relu, train;
    double *x, *gamma, *beta, *rmean, *rvar; /* running stats: inference only */
    double *y, *mean, *var;
    const float *r;
};

static double bn_loss(void *ctx)
{
    struct bn_ctx *b = ctx;
    if (b->train) {
        bn_ref_stats(b->mean, b->var, b->x, b->M, b->C);
        bn_ref_apply(b->y, b->x, b->gamma, b->beta, b->mean, b->var, b->M, b->C, b->relu);
    } else {
        bn_ref_apply(b->y, b->x, b->gamma, b->beta, b->rmean, b->rvar, b->M, b->C, b->relu);
    }
    return dot_dr(b->y, b->r, b->M * b->C);
}

/* Rows x channels: few rows, channels not a multiple of 16, more than the
 * 256 channels handled at once without the workspace, and M = 2, where the
 * training backward is ill-conditioned (dx ~ eps / (var + eps)). */
static const struct {
    long M;
    int C;
} cases[] = {{12, 5}, {105, 3}, {6, 19}, {4, 300}, {1, 7}, {2, 8}};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

struct bn_data {
    long M;
    int C;
    float *x, *gamma, *beta, *rmean, *rvar, *r;
};

static void data_init(struct bn_data *d, long M, int C, unsigned seed)
{
    d->M = M;
    d->C = C;
    d->x = rand_floats(M * C, -2, 3, seed);
    d->gamma = rand_floats(C, 0.5f, 1.5f, seed + 1);
    d->beta = rand_floats(C, -0.5f, 0.5f, seed + 2);
    d->rmean = rand_floats(C, -0.5f, 0.5f, seed + 3);
    d->rvar = rand_floats(C, 0.5f, 2.0f, seed + 4);
    d->r = rand_floats(M * C, -1, 1, seed + 5);
}

static void data_free(struct bn_data *d)
{
    nn_free(d->x);
    nn_free(d->gamma);
    nn_free(d->beta);
    nn_free(d->rmean);
    nn_free(d->rvar);
    nn_free(d->r);
}

static void ctx_init(struct bn_ctx *b, const struct bn_data *d, int relu, int train)
{
    long n = d->M * d->C;
    *b = (struct bn_ctx){.M = d->M, .C = d->C, .relu = relu, .train = train};
    b->x = to_doubles(d->x, n);
    b->gamma = to_doubles(d->gamma, d->C);
    b->beta = to_doubles(d->beta, d->C);
    b->rmean = to_doubles(d->rmean, d->C);
    b->rvar = to_doubles(d->rvar, d->C);
    b->y = zero_doubles(n);
    b->mean = zero_doubles(d->C);
    b->var = zero_doubles(d->C);
    b->r = d->r;
}

static void ctx_free(struct bn_ctx *b)
{
    free(b->x);
    free(b->gamma);
    free(b->beta);
    free(b->rmean);
    free(b->rvar);
    free(b->y);
    free(b->mean);
    free(b->var);
}

/* _i: case index * 2 + relu. */
START_TEST(train_forward_matches_reference)
{
    int relu = _i % 2;
    struct bn_data d;
    data_init(&d, cases[_i / 2].M, cases[_i / 2].C, 100 + _i);
    long M = d.M, n = M * d.C;
    int C = d.C;
    struct bn_ctx b;
    ctx_init(&b, &d, relu, 1);
    bn_loss(&b);

    float *y = zero_floats(n), *mean = zero_floats(C), *invstd = zero_floats(C);
    float *rm = rand_floats(C, -1, 1, 7), *rv = rand_floats(C, 0.5f, 2, 8);
    float *rm0 = rand_floats(C, -1, 1, 7), *rv0 = rand_floats(C, 0.5f, 2, 8);
    const float decay = 0.9f;
    nn_batchnorm_forward_train(y, mean, invstd, d.x, d.gamma, d.beta, rm, rv, M, C, EPS, decay, relu);
    CHECK_ERR(rel_err(y, b.y, n), 1e-5, "M=%ld C=%d relu=%d: y", M, C, relu);
    CHECK_ERR(rel_err(mean, b.mean, C), 1e-6, "mean");
    double *want = zero_doubles(C);
    for (int c = 0; c < C; c++) want[c] = 1 / sqrt(b.var[c] + EPS);
    CHECK_ERR(rel_err(invstd, want, C), 1e-5, "invstd");
    /* running = decay * running + (1 - decay) * batch, with the unbiased
     * variance (M / (M-1)); a single row has no unbiased variance and keeps
     * the biased one. */
    for (int c = 0; c < C; c++) want[c] = decay * rm0[c] + (1 - decay) * b.mean[c];
    CHECK_ERR(rel_err(rm, want, C), 1e-6, "running mean");
    for (int c = 0; c < C; c++)
        want[c] = decay * rv0[c] + (1 - decay) * b.var[c] * (M > 1 ? (double)M / (M - 1) : 1.0);
    CHECK_ERR(rel_err(rv, want, C), 1e-6, "running var");

    /* Without running statistics it computes the same. */
    float *y2 = zero_floats(n);
    nn_batchnorm_forward_train(y2, mean, invstd, d.x, d.gamma, d.beta, NULL, NULL, M, C, EPS, decay, relu);
    ck_assert_int_eq(memcmp(y, y2, (size_t)n * sizeof(float)), 0);

    nn_free(y);
    nn_free(y2);
    nn_free(mean);
    nn_free(invstd);
    nn_free(rm);
    nn_free(rv);
    nn_free(rm0);
    nn_free(rv0);
    free(want);
    ctx_free(&b);
    data_free(&d);
}
END_TEST

START_TEST(infer_forward_matches_reference)
{
    int relu = _i % 2;
    struct bn_data d;
    data_init(&d, cases[_i / 2].M, cases[_i / 2].C, 200 + _i);
    long n = d.M * d.C;
    struct bn_ctx b;
    ctx_init(&b, &d, relu, 0);
    bn_loss(&b);
    float *y = zero_floats(n);
    nn_batchnorm_forward_infer(y, d.x, d.gamma, d.beta, d.rmean, d.rvar, d.M, d.C, EPS, relu);
    CHECK_ERR(rel_err(y, b.y, n), 1e-5, "M=%ld C=%d relu=%d", d.M, d.C, relu);
    /* In place. */
    nn_batchnorm_forward_infer(d.x, d.x, d.gamma, d.beta, d.rmean, d.rvar, d.M, d.C, EPS, relu);
    ck_assert_int_eq(memcmp(y, d.x, (size_t)n * sizeof(float)), 0);
    nn_free(y);
    ctx_free(&b);
    data_free(&d);
}
END_TEST

/* Plain float sums of 200k values near 1000 lose the variance entirely. */
START_TEST(statistics_keep_precision_over_many_rows)
{
    const long M = 200000;
    const int C = 3;
    float *x = rand_floats(M * C, -1, 1, 5);
    for (long i = 0; i < M * C; i++) x[i] += 1000.0f + 100.0f * (float)(i % C);
    double *xd = to_doubles(x, M * C), *mean = zero_doubles(C), *var = zero_doubles(C);
    bn_ref_stats(mean, var, xd, M, C);
    float gamma[3] = {1, 1, 1}, beta[3] = {0, 0, 0}, fmean[3], finv[3];
    float *y = zero_floats(M * C);
    nn_batchnorm_forward_train(y, fmean, finv, x, gamma, beta, NULL, NULL, M, C, EPS, 0.9f, false);
    for (int c = 0; c < C; c++) {
        ck_assert_double_eq_tol(fmean[c], mean[c], 1e-7 * mean[c]);
        double want = 1 / sqrt(var[c] + EPS);
        ck_assert_double_eq_tol(finv[c], want, 1e-5 * want);
    }
    nn_free(x);
    nn_free(y);
    free(xd);
    free(mean);
    free(var);
}
END_TEST

START_TEST(train_backward_matches_finite_differences)
{
    int relu = _i % 2;
    struct bn_data d;
    data_init(&d, cases[_i / 2].M, cases[_i / 2].C, 300 + _i);
    long M = d.M, n = M * d.C;
    int C = d.C;
    if (M == 1) { /* one row normalises to beta: nothing to differentiate but the bias */
        data_free(&d);
        return;
    }
    struct bn_ctx b;
    ctx_init(&b, &d, relu, 1);
    double *gx = zero_doubles(n), *gg = zero_doubles(C), *gb = zero_doubles(C);
    numgrad(b.x, n, 1e-6, bn_loss, &b, gx);
    numgrad(b.gamma, C, 1e-6, bn_loss, &b, gg);
    numgrad(b.beta, C, 1e-6, bn_loss, &b, gb);

    float *y = zero_floats(n), *mean = zero_floats(C), *invstd = zero_floats(C);
    nn_batchnorm_forward_train(y, mean, invstd, d.x, d.gamma, d.beta, NULL, NULL, M, C, EPS, 0.9f, relu);
    struct accum ax, ag, ab;
    accum_init(&ax, n, 1);
    accum_init(&ag, C, 2);
    accum_init(&ab, C, 3);
    for (int rep = 0; rep < 2; rep++)
        nn_batchnorm_backward(ax.buf, ag.buf, ab.buf, d.r, d.x, y, mean, invstd, d.gamma, M, C, EPS, relu);
    CHECK_ERR(accum_err(&ax, gx), 1e-4, "M=%ld C=%d relu=%d: dx", M, C, relu);
    CHECK_ERR(accum_err(&ag, gg), 1e-4, "dgamma");
    CHECK_ERR(accum_err(&ab, gb), 1e-4, "dbeta");

    /* dx may be skipped. */
    float *g2 = zero_floats(C), *b2 = zero_floats(C);
    nn_batchnorm_backward(NULL, g2, b2, d.r, d.x, y, mean, invstd, d.gamma, M, C, EPS, relu);
    CHECK_ERR(rel_err(g2, gg, C), 1e-4, "dgamma without dx");
    CHECK_ERR(rel_err(b2, gb, C), 1e-4, "dbeta without dx");

    nn_free(g2);
    nn_free(b2);
    accum_free(&ax);
    accum_free(&ag);
    accum_free(&ab);
    nn_free(y);
    nn_free(mean);
    nn_free(invstd);
    free(gx);
    free(gg);
    free(gb);
    ctx_free(&b);
    data_free(&d);
}
END_TEST

START_TEST(infer_backward_matches_finite_differences)
{
    int relu = _i % 2;
    struct bn_data d;
    data_init(&d, cases[_i / 2].M, cases[_i / 2].C, 400 + _i);
    long M = d.M, n = M * d.C;
    int C = d.C;
    struct bn_ctx b;
    ctx_init(&b, &d, relu, 0);
    double *gx = zero_doubles(n), *gg = zero_doubles(C), *gb = zero_doubles(C);
    numgrad(b.x, n, 1e-6, bn_loss, &b, gx);
    numgrad(b.gamma, C, 1e-6, bn_loss, &b, gg);
    numgrad(b.beta, C, 1e-6, bn_loss, &b, gb);

    float *y = zero_floats(n);
    nn_batchnorm_forward_infer(y, d.x, d.gamma, d.beta, d.rmean, d.rvar, M, C, EPS, relu);
    struct accum ax, ag, ab;
    accum_init(&ax, n, 4);
    accum_init(&ag, C, 5);
    accum_init(&ab, C, 6);
    for (int rep = 0; rep < 2; rep++)
        nn_batchnorm_backward_infer(ax.buf, ag.buf, ab.buf, d.r, d.x, y, d.gamma, d.rmean, d.rvar, M, C, EPS,
                                    relu);
    CHECK_ERR(accum_err(&ax, gx), 1e-4, "M=%ld C=%d relu=%d: dx", M, C, relu);
    CHECK_ERR(accum_err(&ag, gg), 1e-4, "dgamma");
    CHECK_ERR(accum_err(&ab, gb), 1e-4, "dbeta");

    /* Frozen parameters: only dx. */
    float *dx = zero_floats(n);
    nn_batchnorm_backward_infer(dx, NULL, NULL, d.r, d.x, y, d.gamma, d.rmean, d.rvar, M, C, EPS, relu);
    CHECK_ERR(rel_err(dx, gx, n), 1e-4, "dx alone");

    nn_free(dx);
    accum_free(&ax);
    accum_free(&ag);
    accum_free(&ab);
    nn_free(y);
    free(gx);
    free(gg);
    free(gb);
    ctx_free(&b);
    data_free(&d);
}
END_TEST

/* M = 2 with var >> eps: dx is eps / (var + eps) ~ 1e-6 of its terms, so it
 * needs double arithmetic inside. The reference is the textbook formula in
 * double (finite differences cannot resolve a gradient this small). */
START_TEST(small_batch_backward_keeps_precision)
{
    const long M = 2;
    const int C = 8;
    struct bn_data d;
    data_init(&d, M, C, 77);
    for (long i = 0; i < M * C; i++) d.x[i] *= 40.0f;
    double *x = to_doubles(d.x, M * C), *mean = zero_doubles(C), *var = zero_doubles(C), *want = zero_doubles(M * C);
    bn_ref_stats(mean, var, x, M, C);
    for (int c = 0; c < C; c++) {
        double invstd = 1 / sqrt(var[c] + EPS), sg = 0, sgx = 0;
        for (long m = 0; m < M; m++) {
            sg += d.r[m * C + c];
            sgx += d.r[m * C + c] * (x[m * C + c] - mean[c]) * invstd;
        }
        for (long m = 0; m < M; m++) {
            double xhat = (x[m * C + c] - mean[c]) * invstd;
            want[m * C + c] = d.gamma[c] * invstd / M * (M * d.r[m * C + c] - sg - xhat * sgx);
        }
    }
    float *y = zero_floats(M * C), *fmean = zero_floats(C), *finv = zero_floats(C), *dx = zero_floats(M * C);
    nn_batchnorm_forward_train(y, fmean, finv, d.x, d.gamma, d.beta, NULL, NULL, M, C, EPS, 0.9f, false);
    nn_batchnorm_backward(dx, NULL, NULL, d.r, d.x, y, fmean, finv, d.gamma, M, C, EPS, false);
    CHECK_ERR(rel_err(dx, want, M * C), 1e-4, "M=2 dx");
    nn_free(y);
    nn_free(fmean);
    nn_free(finv);
    nn_free(dx);
    free(x);
    free(mean);
    free(var);
    free(want);
    data_free(&d);
}
END_TEST

/* The same bits from 1 thread and from 3. */
START_TEST(results_do_not_depend_on_thread_count)
{
    const long M = 3000;
    const int C = 48;
    struct bn_data d;
    data_init(&d, M, C, 9);
    float *y[2], *mean[2], *inv[2], *dx[2], *dg[2], *db[2];
    for (int t = 0; t < 2; t++) {
        ck_assert_int_eq(nn_threads_set(t == 0 ? 1 : 3), NN_OK);
        y[t] = zero_floats(M * C);
        mean[t] = zero_floats(C);
        inv[t] = zero_floats(C);
        dx[t] = zero_floats(M * C);
        dg[t] = zero_floats(C);
        db[t] = zero_floats(C);
        nn_batchnorm_forward_train(y[t], mean[t], inv[t], d.x, d.gamma, d.beta, NULL, NULL, M, C, EPS, 0.9f, true);
        nn_batchnorm_backward(dx[t], dg[t], db[t], d.r, d.x, y[t], mean[t], inv[t], d.gamma, M, C, EPS, true);
    }
    nn_threads_set(0);
    ck_assert_int_eq(memcmp(y[0], y[1], M * C * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(mean[0], mean[1], C * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(inv[0], inv[1], C * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(dx[0], dx[1], M * C * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(dg[0], dg[1], C * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(db[0], db[1], C * sizeof(float)), 0);
    for (int t = 0; t < 2; t++) {
        nn_free(y[t]);
        nn_free(mean[t]);
        nn_free(inv[t]);
        nn_free(dx[t]);
        nn_free(dg[t]);
        nn_free(db[t]);
    }
    data_free(&d);
}
END_TEST

Suite *suite_batchnorm(void)
{
    Suite *s = suite_create("batchnorm");
    TCase *tc = tcase_create("batchnorm");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, train_forward_matches_reference, 0, 2 * NCASES);
    tcase_add_loop_test(tc, infer_forward_matches_reference, 0, 2 * NCASES);
    tcase_add_test(tc, statistics_keep_precision_over_many_rows);
    tcase_add_loop_test(tc, train_backward_matches_finite_differences, 0, 2 * NCASES);
    tcase_add_loop_test(tc, infer_backward_matches_finite_differences, 0, 2 * NCASES);
    tcase_add_test(tc, small_batch_backward_keeps_precision);
    tcase_add_test(tc, results_do_not_depend_on_thread_count);
    suite_add_tcase(s, tc);
    return s;
}
