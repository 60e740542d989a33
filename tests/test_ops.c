/* The small ops: ReLU, concat, fully connected, dropout and softmax
 * cross-entropy with label smoothing; forward against double references,
 * backward against finite differences, and accumulation into gradients. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "ops/activation.h"
#include "ops/concat.h"
#include "ops/dense.h"
#include "tests/gradcheck.h"

/* ---- ReLU ---- */

struct relu_ctx {
    long n;
    double *x;
    const float *r;
};

static double relu_loss(void *ctx)
{
    struct relu_ctx *c = ctx;
    double s = 0;
    for (long i = 0; i < c->n; i++) s += (c->x[i] > 0 ? c->x[i] : 0) * c->r[i];
    return s;
}

START_TEST(relu_forward_and_backward)
{
    /* Sizes below and above the parallel split. */
    const long n = _i == 0 ? 37 : 200003;
    float *x = rand_floats(n, -1, 1, 1), *y = zero_floats(n), *r = rand_floats(n, -1, 1, 2);
    x[0] = 0.0f;
    x[1] = -0.0f;
    nn_relu_forward(y, x, n);
    long wrong = 0;
    for (long i = 0; i < n; i++) wrong += y[i] != (x[i] > 0 ? x[i] : 0.0f);
    ck_assert_int_eq(wrong, 0);
    struct relu_ctx ctx = {n, to_doubles(x, n), r};
    double *g = zero_doubles(n);
    if (n < 1000) {
        numgrad(ctx.x, n, 1e-6, relu_loss, &ctx, g);
        g[0] = g[1] = 0; /* the kink at +-0: an output of 0 passes no gradient */
    } else {
        for (long i = 0; i < n; i++) g[i] = x[i] > 0 ? r[i] : 0;
    }
    struct accum a;
    accum_init(&a, n, 3);
    nn_relu_backward(a.buf, r, y, n);
    nn_relu_backward(a.buf, r, y, n);
    CHECK_ERR(accum_err(&a, g), 1e-6, "n=%ld", n);
    /* In place. */
    nn_relu_forward(x, x, n);
    ck_assert_int_eq(memcmp(x, y, (size_t)n * sizeof(float)), 0);
    accum_free(&a);
    nn_free(x);
    nn_free(y);
    nn_free(r);
    free(ctx.x);
    free(g);
}
END_TEST

/* ---- concat ---- */

START_TEST(concat_forward_and_backward)
{
    const long M = 7;
    const int channels[3] = {3, 1, 5}, total = 9;
    float *in[3], *din_base[3];
    struct accum a[3];
    for (int i = 0; i < 3; i++) {
        in[i] = rand_floats(M * channels[i], -1, 1, 10 + i);
        accum_init(&a[i], M * channels[i], 20 + i);
        din_base[i] = a[i].buf;
    }
    float *out = zero_floats(M * total), *dout = rand_floats(M * total, -1, 1, 30);
    nn_concat_forward(out, (const float *const *)in, channels, 3, M);
    for (long m = 0; m < M; m++) {
        int off = 0;
        for (int i = 0; i < 3; i++) {
            for (int c = 0; c < channels[i]; c++)
                ck_assert_float_eq(out[m * total + off + c], in[i][m * channels[i] + c]);
            off += channels[i];
        }
    }
    /* The loss <out, dout> is linear: its gradient w.r.t. input i is dout's slice. */
    nn_concat_backward(din_base, dout, channels, 3, M);
    nn_concat_backward(din_base, dout, channels, 3, M);
    int off = 0;
    for (int i = 0; i < 3; i++) {
        double *want = zero_doubles(M * channels[i]);
        for (long m = 0; m < M; m++)
            for (int c = 0; c < channels[i]; c++) want[m * channels[i] + c] = dout[m * total + off + c];
        CHECK_ERR(accum_err(&a[i], want), 1e-7, "input %d", i);
        off += channels[i];
        free(want);
    }
    /* NULL skips an input. */
    float *skip[3] = {a[0].buf, NULL, a[2].buf};
    float before = a[0].buf[0];
    nn_concat_backward(skip, dout, channels, 3, M);
    ck_assert_float_eq_tol(a[0].buf[0], before + dout[0], 1e-6f);
    for (int i = 0; i < 3; i++) {
        nn_free(in[i]);
        accum_free(&a[i]);
    }
    nn_free(out);
    nn_free(dout);
}
END_TEST

/* ---- fully connected ---- */

struct fc_ctx {
    int N, IN, OUT;
    double *in, *w, *b, *out;
    const float *r;
};

static double fc_loss(void *ctx)
{
    struct fc_ctx *c = ctx;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OUT; o++) {
            double s = c->b[o];
            for (int i = 0; i < c->IN; i++) s += c->in[n * c->IN + i] * c->w[i * c->OUT + o];
            c->out[n * c->OUT + o] = s;
        }
    return dot_dr(c->out, c->r, (long)c->N * c->OUT);
}

START_TEST(fc_forward_and_backward)
{
    const int N = 3, IN = 7, OUT = 5;
    float *in = rand_floats(N * IN, -1, 1, 1), *w = rand_floats(IN * OUT, -1, 1, 2), *b = rand_floats(OUT, -1, 1, 3);
    float *r = rand_floats(N * OUT, -1, 1, 4), *out = zero_floats(N * OUT);
    struct fc_ctx ctx = {N, IN, OUT, to_doubles(in, N * IN), to_doubles(w, IN * OUT), to_doubles(b, OUT),
                         zero_doubles(N * OUT), r};
    fc_loss(&ctx);
    nn_fc_forward(out, in, w, b, N, IN, OUT);
    CHECK_ERR(rel_err(out, ctx.out, N * OUT), 1e-6, "forward");

    double *gi = zero_doubles(N * IN), *gw = zero_doubles(IN * OUT), *gb = zero_doubles(OUT);
    numgrad(ctx.in, N * IN, 0.01, fc_loss, &ctx, gi);
    numgrad(ctx.w, IN * OUT, 0.01, fc_loss, &ctx, gw);
    numgrad(ctx.b, OUT, 0.01, fc_loss, &ctx, gb);
    struct accum ai, aw, ab;
    accum_init(&ai, N * IN, 5);
    accum_init(&aw, IN * OUT, 6);
    accum_init(&ab, OUT, 7);
    for (int rep = 0; rep < 2; rep++) nn_fc_backward(ai.buf, aw.buf, ab.buf, r, in, w, N, IN, OUT);
    CHECK_ERR(accum_err(&ai, gi), 1e-5, "din");
    CHECK_ERR(accum_err(&aw, gw), 1e-5, "dw");
    CHECK_ERR(accum_err(&ab, gb), 1e-5, "db");

    /* No input gradient (the first layer) and no bias. */
    float *dw = zero_floats(IN * OUT);
    nn_fc_backward(NULL, dw, NULL, r, in, w, N, IN, OUT);
    CHECK_ERR(rel_err(dw, gw, IN * OUT), 1e-5, "dw alone");
    for (int o = 0; o < OUT; o++) ctx.b[o] = 0;
    fc_loss(&ctx);
    nn_fc_forward(out, in, w, NULL, N, IN, OUT);
    CHECK_ERR(rel_err(out, ctx.out, N * OUT), 1e-6, "forward without bias");

    accum_free(&ai);
    accum_free(&aw);
    accum_free(&ab);
    nn_free(dw);
    nn_free(in);
    nn_free(w);
    nn_free(b);
    nn_free(r);
    nn_free(out);
    free(ctx.in);
    free(ctx.w);
    free(ctx.b);
    free(ctx.out);
    free(gi);
    free(gw);
    free(gb);
}
END_TEST

/* ---- dropout ---- */

START_TEST(dropout_mask_statistics)
{
    const long n = 100000;
    const float keep = 0.8f;
    float *in = rand_floats(n, -1, 1, 1), *out = zero_floats(n), *mask = zero_floats(n);
    float *out2 = zero_floats(n), *mask2 = zero_floats(n);
    struct nn_rng rng, rng2;
    nn_rng_seed(&rng, 42, 3);
    nn_dropout_forward(out, mask, in, n, keep, &rng);
    long kept = 0, wrong = 0;
    for (long i = 0; i < n; i++) {
        wrong += !(mask[i] == 0.0f || mask[i] == 1.0f / keep) || out[i] != in[i] * mask[i];
        kept += mask[i] != 0.0f;
    }
    ck_assert_int_eq(wrong, 0);
    /* Binomial: sd = sqrt(n k (1-k)) = 126 kept values; allow 8 sd. */
    ck_assert_int_lt(labs(kept - (long)(keep * n)), 1000);

    /* Same seed, same mask; another seed, another mask. */
    nn_rng_seed(&rng2, 42, 3);
    nn_dropout_forward(out2, mask2, in, n, keep, &rng2);
    ck_assert_int_eq(memcmp(mask, mask2, (size_t)n * sizeof(float)), 0);
    nn_rng_seed(&rng2, 43, 3);
    nn_dropout_forward(out2, mask2, in, n, keep, &rng2);
    ck_assert_int_ne(memcmp(mask, mask2, (size_t)n * sizeof(float)), 0);

    /* keep = 1 is the identity, and draws nothing. */
    nn_rng_seed(&rng2, 42, 3);
    struct nn_rng before = rng2;
    nn_dropout_forward(out2, mask2, in, n, 1.0f, &rng2);
    ck_assert_int_eq(memcmp(out2, in, (size_t)n * sizeof(float)), 0);
    for (long i = 0; i < n; i++) wrong += mask2[i] != 1.0f;
    ck_assert_int_eq(wrong, 0);
    ck_assert(rng2.state == before.state && rng2.inc == before.inc);

    nn_free(in);
    nn_free(out);
    nn_free(mask);
    nn_free(out2);
    nn_free(mask2);
}
END_TEST

struct dropout_ctx {
    long n;
    double *in;
    const float *mask, *r;
};

static double dropout_loss(void *ctx)
{
    struct dropout_ctx *c = ctx;
    double s = 0;
    for (long i = 0; i < c->n; i++) s += c->in[i] * c->mask[i] * c->r[i];
    return s;
}

START_TEST(dropout_backward_matches_finite_differences)
{
    const long n = 50;
    float *in = rand_floats(n, -1, 1, 1), *out = zero_floats(n), *mask = zero_floats(n), *r = rand_floats(n, -1, 1, 2);
    struct nn_rng rng;
    nn_rng_seed(&rng, 7, 1);
    nn_dropout_forward(out, mask, in, n, 0.5f, &rng);
    struct dropout_ctx ctx = {n, to_doubles(in, n), mask, r};
    double *g = zero_doubles(n);
    numgrad(ctx.in, n, 0.01, dropout_loss, &ctx, g);
    struct accum a;
    accum_init(&a, n, 3);
    nn_dropout_backward(a.buf, r, mask, n);
    nn_dropout_backward(a.buf, r, mask, n);
    CHECK_ERR(accum_err(&a, g), 1e-6, "din");
    accum_free(&a);
    nn_free(in);
    nn_free(out);
    nn_free(mask);
    nn_free(r);
    free(ctx.in);
    free(g);
}
END_TEST

/* ---- softmax cross-entropy ---- */

struct xent_ctx {
    int N, K;
    double *logits;
    const int32_t *labels;
    double smoothing;
};

/* Mean over rows of -sum_k t_k log softmax(z)_k, t = (1-s) one-hot + s/K. */
static double xent_loss(void *ctx)
{
    struct xent_ctx *c = ctx;
    double total = 0;
    for (int n = 0; n < c->N; n++) {
        const double *z = c->logits + (long)n * c->K;
        double zmax = z[0], sum = 0;
        for (int k = 1; k < c->K; k++) zmax = fmax(zmax, z[k]);
        for (int k = 0; k < c->K; k++) sum += exp(z[k] - zmax);
        for (int k = 0; k < c->K; k++) {
            double t = c->smoothing / c->K + (k == c->labels[n] ? 1 - c->smoothing : 0);
            total -= t * (z[k] - zmax - log(sum));
        }
    }
    return total / c->N;
}

START_TEST(softmax_xent_forward_and_backward)
{
    const float smoothing = _i == 0 ? 0.0f : 0.1f;
    const int N = 4, K = 6;
    const int32_t labels[4] = {0, 5, 2, 2};
    float *logits = rand_floats(N * K, -3, 3, 1 + _i), *probs = zero_floats(N * K);
    struct xent_ctx ctx = {N, K, to_doubles(logits, N * K), labels, smoothing};
    double loss = nn_softmax_xent_forward(probs, logits, labels, N, K, smoothing);
    ck_assert_double_eq_tol(loss, xent_loss(&ctx), 1e-6 * xent_loss(&ctx));
    double *p = zero_doubles(N * K);
    for (int n = 0; n < N; n++) {
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp(ctx.logits[n * K + k]);
        for (int k = 0; k < K; k++) p[n * K + k] = exp(ctx.logits[n * K + k]) / sum;
    }
    CHECK_ERR(rel_err(probs, p, N * K), 1e-6, "probs");

    double *g = zero_doubles(N * K);
    numgrad(ctx.logits, N * K, 1e-5, xent_loss, &ctx, g);
    struct accum a;
    accum_init(&a, N * K, 2);
    nn_softmax_xent_backward(a.buf, probs, labels, N, K, smoothing, 1.0f);
    nn_softmax_xent_backward(a.buf, probs, labels, N, K, smoothing, 1.0f);
    CHECK_ERR(accum_err(&a, g), 1e-5, "smoothing %g", smoothing);
    /* scale multiplies the gradient (a loss weight). */
    float *d = zero_floats(N * K);
    nn_softmax_xent_backward(d, probs, labels, N, K, smoothing, 2.5f);
    for (long i = 0; i < N * K; i++) g[i] *= 2.5;
    CHECK_ERR(rel_err(d, g, N * K), 1e-5, "scale 2.5");

    accum_free(&a);
    nn_free(d);
    nn_free(logits);
    nn_free(probs);
    free(ctx.logits);
    free(p);
    free(g);
}
END_TEST

START_TEST(softmax_xent_is_stable_and_checks_labels)
{
    const int N = 2, K = 3;
    float logits[6] = {1000, 0, -1000, 50, 50, 50}, probs[6];
    int32_t labels[2] = {0, 1};
    double loss = nn_softmax_xent_forward(probs, logits, labels, N, K, 0.0f);
    /* Row 0 is certain and right (loss 0), row 1 uniform (loss log 3). */
    ck_assert_double_eq_tol(loss, log(3.0) / 2, 1e-6);
    ck_assert_float_eq_tol(probs[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(probs[4], 1.0f / 3, 1e-6f);
    labels[1] = 3;
    ck_assert(isnan(nn_softmax_xent_forward(probs, logits, labels, N, K, 0.0f)));
    labels[1] = -1;
    ck_assert(isnan(nn_softmax_xent_forward(probs, logits, labels, N, K, 0.0f)));
}
END_TEST

Suite *suite_ops(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, relu_forward_and_backward, 0, 2);
    tcase_add_test(tc, concat_forward_and_backward);
    tcase_add_test(tc, fc_forward_and_backward);
    tcase_add_test(tc, dropout_mask_statistics);
    tcase_add_test(tc, dropout_backward_matches_finite_differences);
    tcase_add_loop_test(tc, softmax_xent_forward_and_backward, 0, 2);
    tcase_add_test(tc, softmax_xent_is_stable_and_checks_labels);
    suite_add_tcase(s, tc);
    return s;
}
