/* Pooling: max, average (count of real inputs only) and global average,
 * forward against direct loops in double, backward against finite
 * differences, and max-pool ties going to the first maximum. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "ops/pool.h"
#include "tests/gradcheck.h"

static long in_size(const struct nn_pool_shape *s) { return (long)s->n * s->h * s->w * s->c; }
static long out_size(const struct nn_pool_shape *s) { return (long)s->n * s->oh * s->ow * s->c; }

static long in_at(const struct nn_pool_shape *s, int n, int ih, int iw, int c)
{
    return (((long)n * s->h + ih) * s->w + iw) * s->c + c;
}

static long out_at(const struct nn_pool_shape *s, int n, int oh, int ow, int c)
{
    return (((long)n * s->oh + oh) * s->ow + ow) * s->c + c;
}

/* Input position of tap (ki, kj) of output (oh, ow); false in the padding. */
static int tap(const struct nn_pool_shape *s, int oh, int ow, int ki, int kj, int *ih, int *iw)
{
    *ih = oh * s->stride - s->pad_top + ki;
    *iw = ow * s->stride - s->pad_left + kj;
    return *ih >= 0 && *ih < s->h && *iw >= 0 && *iw < s->w;
}

/* The real taps of output (oh, ow), row-major. */
#define FOR_TAPS(s, oh, ow, ih, iw)                                                                                \
    for (int ki_ = 0, ih, iw; ki_ < (s)->kh; ki_++)                                                                \
        for (int kj_ = 0; kj_ < (s)->kw; kj_++)                                                                    \
            if (tap(s, oh, ow, ki_, kj_, &ih, &iw))

#define FOR_OUTPUTS(s, n, oh, ow, c)                                                                               \
    for (int n = 0; n < (s)->n; n++)                                                                               \
        for (int oh = 0; oh < (s)->oh; oh++)                                                                       \
            for (int ow = 0; ow < (s)->ow; ow++)                                                                   \
                for (int c = 0; c < (s)->c; c++)

static void maxpool_ref(double *out, const double *in, const struct nn_pool_shape *s)
{
    FOR_OUTPUTS(s, n, oh, ow, c)
    {
        double m = -INFINITY;
        FOR_TAPS(s, oh, ow, ih, iw) m = fmax(m, in[in_at(s, n, ih, iw, c)]);
        out[out_at(s, n, oh, ow, c)] = m;
    }
}

/* The gradient goes to the first real tap (row-major) holding the maximum. */
static void maxpool_ref_backward(double *din, const float *dout, const double *in, const struct nn_pool_shape *s)
{
    FOR_OUTPUTS(s, n, oh, ow, c)
    {
        long best = -1;
        FOR_TAPS(s, oh, ow, ih, iw)
        {
            long i = in_at(s, n, ih, iw, c);
            if (best < 0 || in[i] > in[best]) best = i;
        }
        din[best] += dout[out_at(s, n, oh, ow, c)];
    }
}

static void avgpool_ref(double *out, const double *in, const struct nn_pool_shape *s)
{
    FOR_OUTPUTS(s, n, oh, ow, c)
    {
        double sum = 0;
        int count = 0;
        FOR_TAPS(s, oh, ow, ih, iw)
        {
            sum += in[in_at(s, n, ih, iw, c)];
            count++;
        }
        out[out_at(s, n, oh, ow, c)] = sum / count;
    }
}

struct pool_ctx {
    const struct nn_pool_shape *s;
    double *in, *out;
    const float *r;
    int max;
};

static double pool_loss(void *ctx)
{
    struct pool_ctx *p = ctx;
    if (p->max)
        maxpool_ref(p->out, p->in, p->s);
    else
        avgpool_ref(p->out, p->in, p->s);
    return dot_dr(p->out, p->r, out_size(p->s));
}

static const struct {
    int n, h, w, c, kh, kw, stride;
    enum nn_padding pad;
} cases[] = {
    {1, 7, 5, 3, 3, 3, 2, NN_PAD_VALID}, /* Inception's reduction pool on odd sizes */
    {3, 7, 5, 5, 3, 3, 1, NN_PAD_SAME},  /* Inception's branch pool: edges see 4 or 6 inputs */
    {2, 8, 7, 4, 3, 3, 2, NN_PAD_SAME},  /* stride 2 SAME */
    {2, 1, 1, 6, 3, 3, 1, NN_PAD_SAME},  /* 1x1 spatial: one real input */
    {1, 6, 6, 19, 2, 2, 2, NN_PAD_VALID},
    {2, 5, 7, 3, 1, 3, 1, NN_PAD_SAME},  /* asymmetric window */
    {1, 9, 8, 2, 5, 5, 1, NN_PAD_SAME},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void case_shape(struct nn_pool_shape *s, int i)
{
    ck_assert_int_eq(nn_pool_shape_init(s, cases[i].n, cases[i].h, cases[i].w, cases[i].c, cases[i].kh, cases[i].kw,
                                        cases[i].stride, cases[i].pad),
                     NN_OK);
}

START_TEST(bad_shapes_are_errors)
{
    struct nn_pool_shape s;
    ck_assert_int_eq(nn_pool_shape_init(&s, 0, 5, 5, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_pool_shape_init(&s, 1, 5, 0, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_pool_shape_init(&s, 1, 5, 5, -1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_pool_shape_init(&s, 1, 5, 5, 1, 0, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_pool_shape_init(&s, 1, 5, 5, 1, 3, 3, -2, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_pool_shape_init(&s, 1, 2, 5, 1, 3, 3, 1, NN_PAD_VALID), NN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "pool"));
    ck_assert_int_eq(nn_pool_shape_init(NULL, 1, 5, 5, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    /* Inception: 147 -> 73 with a 3x3 stride-2 VALID pool. */
    ck_assert_int_eq(nn_pool_shape_init(&s, 32, 147, 147, 64, 3, 3, 2, NN_PAD_VALID), NN_OK);
    ck_assert_int_eq(s.oh, 73);
    ck_assert_int_eq(s.ow, 73);
}
END_TEST

START_TEST(maxpool_forward_matches_reference)
{
    struct nn_pool_shape s;
    case_shape(&s, _i);
    /* All negative, so a padded zero would win if padding were counted. */
    float *in = rand_floats(in_size(&s), -3, -1, 10 + _i), *out = zero_floats(out_size(&s));
    double *ind = to_doubles(in, in_size(&s)), *ref = zero_doubles(out_size(&s));
    maxpool_ref(ref, ind, &s);
    nn_maxpool_forward(out, in, &s);
    CHECK_ERR(rel_err(out, ref, out_size(&s)), 0, "case %d", _i);
    nn_free(in);
    nn_free(out);
    free(ind);
    free(ref);
}
END_TEST

START_TEST(avgpool_forward_matches_reference)
{
    struct nn_pool_shape s;
    case_shape(&s, _i);
    float *in = rand_floats(in_size(&s), -1, 2, 20 + _i), *out = zero_floats(out_size(&s));
    double *ind = to_doubles(in, in_size(&s)), *ref = zero_doubles(out_size(&s));
    avgpool_ref(ref, ind, &s);
    nn_avgpool_forward(out, in, &s);
    CHECK_ERR(rel_err(out, ref, out_size(&s)), 1e-6, "case %d", _i);
    nn_free(in);
    nn_free(out);
    free(ind);
    free(ref);
}
END_TEST

/* Edge outputs of a 3x3 SAME pool average 4 (corner) or 6 (edge) inputs. */
START_TEST(avgpool_same_divides_by_real_inputs)
{
    struct nn_pool_shape s;
    ck_assert_int_eq(nn_pool_shape_init(&s, 1, 4, 4, 1, 3, 3, 1, NN_PAD_SAME), NN_OK);
    float in[16], out[16];
    for (int i = 0; i < 16; i++) in[i] = 1.0f;
    nn_avgpool_forward(out, in, &s);
    for (int i = 0; i < 16; i++) ck_assert_float_eq_tol(out[i], 1.0f, 1e-6f);
    float dout[16], din[16] = {0};
    for (int i = 0; i < 16; i++) dout[i] = 1.0f;
    nn_avgpool_backward(din, dout, &s);
    /* The corner input is under 4 windows: the corner (1/4), two edges (1/6) and the inner one (1/9). */
    ck_assert_float_eq_tol(din[0], 0.25f + 2.0f / 6.0f + 1.0f / 9.0f, 1e-6f);
}
END_TEST

START_TEST(pool_backward_matches_finite_differences)
{
    int max = _i % 2;
    struct nn_pool_shape s;
    case_shape(&s, _i / 2);
    float *in = rand_floats(in_size(&s), -3, 1, 30 + _i), *r = rand_floats(out_size(&s), -1, 1, 40 + _i);
    float *out = zero_floats(out_size(&s));
    struct pool_ctx ctx = {&s, to_doubles(in, in_size(&s)), zero_doubles(out_size(&s)), r, max};
    double *g = zero_doubles(in_size(&s));
    /* Max pooling is piecewise linear: a tiny step never crosses a tie. */
    numgrad(ctx.in, in_size(&s), 1e-6, pool_loss, &ctx, g);
    struct accum a;
    accum_init(&a, in_size(&s), 50 + _i);
    if (max) nn_maxpool_forward(out, in, &s);
    for (int rep = 0; rep < 2; rep++) {
        if (max)
            nn_maxpool_backward(a.buf, r, in, out, &s);
        else
            nn_avgpool_backward(a.buf, r, &s);
    }
    CHECK_ERR(accum_err(&a, g), 1e-5, "case %d %s", _i / 2, max ? "max" : "avg");
    accum_free(&a);
    nn_free(in);
    nn_free(r);
    nn_free(out);
    free(ctx.in);
    free(ctx.out);
    free(g);
}
END_TEST

/* Inputs from {0, 1, 2}: most windows hold the maximum more than once. */
START_TEST(maxpool_ties_go_to_first_maximum)
{
    struct nn_pool_shape s;
    case_shape(&s, _i);
    float *in = rand_floats(in_size(&s), 0, 3, 60 + _i), *dout = rand_floats(out_size(&s), -1, 1, 70 + _i);
    for (long i = 0; i < in_size(&s); i++) in[i] = floorf(in[i]);
    float *out = zero_floats(out_size(&s)), *din = zero_floats(in_size(&s));
    double *ind = to_doubles(in, in_size(&s)), *ref = zero_doubles(in_size(&s));
    maxpool_ref_backward(ref, dout, ind, &s);
    nn_maxpool_forward(out, in, &s);
    nn_maxpool_backward(din, dout, in, out, &s);
    CHECK_ERR(rel_err(din, ref, in_size(&s)), 1e-6, "case %d", _i);
    nn_free(in);
    nn_free(dout);
    nn_free(out);
    nn_free(din);
    free(ind);
    free(ref);
}
END_TEST

/* Channels beyond the 256 the max-pool backward handles at once. */
START_TEST(maxpool_many_channels)
{
    struct nn_pool_shape s;
    ck_assert_int_eq(nn_pool_shape_init(&s, 2, 5, 5, 300, 3, 3, 2, NN_PAD_VALID), NN_OK);
    float *in = rand_floats(in_size(&s), 0, 4, 1), *dout = rand_floats(out_size(&s), -1, 1, 2);
    for (long i = 0; i < in_size(&s); i++) in[i] = floorf(in[i]);
    float *out = zero_floats(out_size(&s)), *din = zero_floats(in_size(&s));
    double *ind = to_doubles(in, in_size(&s)), *ref = zero_doubles(in_size(&s)), *oref = zero_doubles(out_size(&s));
    maxpool_ref(oref, ind, &s);
    maxpool_ref_backward(ref, dout, ind, &s);
    nn_maxpool_forward(out, in, &s);
    nn_maxpool_backward(din, dout, in, out, &s);
    CHECK_ERR(rel_err(out, oref, out_size(&s)), 0, "forward");
    CHECK_ERR(rel_err(din, ref, in_size(&s)), 1e-6, "backward");
    nn_free(in);
    nn_free(dout);
    nn_free(out);
    nn_free(din);
    free(ind);
    free(ref);
    free(oref);
}
END_TEST

struct gap_ctx {
    int N, HW, C;
    double *in, *out;
    const float *r;
};

static double gap_loss(void *ctx)
{
    struct gap_ctx *g = ctx;
    for (int n = 0; n < g->N; n++)
        for (int c = 0; c < g->C; c++) {
            double sum = 0;
            for (int p = 0; p < g->HW; p++) sum += g->in[((long)n * g->HW + p) * g->C + c];
            g->out[n * g->C + c] = sum / g->HW;
        }
    return dot_dr(g->out, g->r, (long)g->N * g->C);
}

START_TEST(global_avgpool_matches_reference)
{
    const int N = 3, HW = 10, C = 7; /* e.g. a 2x5 map */
    float *in = rand_floats(N * HW * C, -1, 1, 1), *r = rand_floats(N * C, -1, 1, 2);
    float *out = zero_floats(N * C);
    struct gap_ctx ctx = {N, HW, C, to_doubles(in, N * HW * C), zero_doubles(N * C), r};
    gap_loss(&ctx);
    nn_global_avgpool_forward(out, in, N, HW, C);
    CHECK_ERR(rel_err(out, ctx.out, N * C), 1e-6, "forward");
    double *g = zero_doubles(N * HW * C);
    numgrad(ctx.in, N * HW * C, 0.01, gap_loss, &ctx, g);
    struct accum a;
    accum_init(&a, N * HW * C, 3);
    nn_global_avgpool_backward(a.buf, r, N, HW, C);
    nn_global_avgpool_backward(a.buf, r, N, HW, C);
    CHECK_ERR(accum_err(&a, g), 1e-5, "backward");
    accum_free(&a);
    nn_free(in);
    nn_free(r);
    nn_free(out);
    free(ctx.in);
    free(ctx.out);
    free(g);
}
END_TEST

Suite *suite_pool(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bad_shapes_are_errors);
    tcase_add_loop_test(tc, maxpool_forward_matches_reference, 0, NCASES);
    tcase_add_loop_test(tc, avgpool_forward_matches_reference, 0, NCASES);
    tcase_add_test(tc, avgpool_same_divides_by_real_inputs);
    tcase_add_loop_test(tc, pool_backward_matches_finite_differences, 0, 2 * NCASES);
    tcase_add_loop_test(tc, maxpool_ties_go_to_first_maximum, 0, NCASES);
    tcase_add_test(tc, maxpool_many_channels);
    tcase_add_test(tc, global_avgpool_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}
