/* conv2d: TensorFlow geometry, forward against a direct 7-loop convolution,
 * backward against finite differences of a double-precision reference, and
 * im2col chunk boundaries anywhere (inside rows, across images). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "ops/conv2d.h"
#include "tests/gradcheck.h"

/* ---- the reference: direct convolution in double ---- */

static long in_size(const struct nn_conv_shape *s) { return (long)s->n * s->h * s->w * s->c; }
static long w_size(const struct nn_conv_shape *s) { return (long)s->kh * s->kw * s->c * s->k; }
static long out_size(const struct nn_conv_shape *s) { return (long)s->n * s->oh * s->ow * s->k; }
static long pixels(const struct nn_conv_shape *s) { return (long)s->n * s->oh * s->ow; }
static long row_len(const struct nn_conv_shape *s) { return (long)s->kh * s->kw * s->c; }

static void conv_ref(double *out, const double *in, const double *w, const struct nn_conv_shape *s)
{
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int k = 0; k < s->k; k++) {
                    double sum = 0;
                    for (int ki = 0; ki < s->kh; ki++)
                        for (int kj = 0; kj < s->kw; kj++)
                            for (int c = 0; c < s->c; c++) {
                                int ih = oh * s->stride - s->pad_top + ki;
                                int iw = ow * s->stride - s->pad_left + kj;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                sum += in[(((long)n * s->h + ih) * s->w + iw) * s->c + c] *
                                       w[(((long)ki * s->kw + kj) * s->c + c) * s->k + k];
                            }
                    out[(((long)n * s->oh + oh) * s->ow + ow) * s->k + k] = sum;
                }
}

/* The adjoint of conv_ref, for shapes too big for finite differences. */
static void conv_ref_backward(double *din, double *dw, const float *dout, const double *in, const double *w,
                              const struct nn_conv_shape *s)
{
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int ki = 0; ki < s->kh; ki++)
                    for (int kj = 0; kj < s->kw; kj++) {
                        int ih = oh * s->stride - s->pad_top + ki;
                        int iw = ow * s->stride - s->pad_left + kj;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                        for (int c = 0; c < s->c; c++)
                            for (int k = 0; k < s->k; k++) {
                                long i = (((long)n * s->h + ih) * s->w + iw) * s->c + c;
                                long wi = (((long)ki * s->kw + kj) * s->c + c) * s->k + k;
                                double g = dout[(((long)n * s->oh + oh) * s->ow + ow) * s->k + k];
                                din[i] += g * w[wi];
                                dw[wi] += g * in[i];
                            }
                    }
}

struct conv_ctx {
    const struct nn_conv_shape *s;
    double *in, *w, *out;
    const float *r;
};

static double conv_loss(void *ctx)
{
    struct conv_ctx *c = ctx;
    conv_ref(c->out, c->in, c->w, c->s);
    return dot_dr(c->out, c->r, out_size(c->s));
}

/* Scratch from malloc with the exact size, so ASan sees any overrun. */
static float *scratch_for(long floats) { return floats > 0 ? malloc((size_t)floats * sizeof(float)) : NULL; }

/* ---- geometry ---- */

START_TEST(tf_padding_geometry)
{
    struct nn_conv_shape s;
    /* SAME, stride 2, odd input: total pad 2, split 1 + 1. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 7, 7, 1, 1, 3, 3, 2, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(s.oh, 4);
    ck_assert_int_eq(s.pad_top, 1);
    /* SAME, stride 2, even input: total pad 1, the smaller half (0) on top. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 8, 8, 1, 1, 3, 3, 2, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(s.oh, 4);
    ck_assert_int_eq(s.pad_top, 0);
    /* Asymmetric 1x7 SAME: 3 columns each side, none on rows. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 6, 1, 1, 1, 7, 1, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(s.oh, 5);
    ck_assert_int_eq(s.ow, 6);
    ck_assert_int_eq(s.pad_top, 0);
    ck_assert_int_eq(s.pad_left, 3);
    /* Even kernel: total 3, 1 before and 2 after. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 1, 1, 4, 4, 1, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(s.pad_top, 1);
    /* VALID: ceil((H - K + 1) / S). Inception's 299 -> 149 -> 147. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 299, 299, 3, 32, 3, 3, 2, NN_PAD_VALID), NN_OK);
    ck_assert_int_eq(s.oh, 149);
    ck_assert_int_eq(s.pad_top, 0);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 8, 7, 1, 1, 3, 3, 2, NN_PAD_VALID), NN_OK);
    ck_assert_int_eq(s.oh, 3);
    ck_assert_int_eq(s.ow, 3);
    /* SAME with stride larger than the kernel needs no padding. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 9, 9, 1, 1, 1, 1, 3, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(s.oh, 3);
    ck_assert_int_eq(s.pad_top, 0);
}
END_TEST

START_TEST(bad_shapes_are_errors)
{
    struct nn_conv_shape s;
    ck_assert_int_eq(nn_conv_shape_init(&s, 0, 5, 5, 1, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, -5, 5, 1, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 0, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 1, 0, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 1, 1, 0, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 1, 1, 3, -1, 1, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 1, 1, 3, 3, 0, NN_PAD_SAME), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 5, 1, 1, 3, 3, 1, (enum nn_padding)7), NN_ERR_ARG);
    ck_assert_int_eq(nn_conv_shape_init(NULL, 1, 5, 5, 1, 1, 3, 3, 1, NN_PAD_SAME), NN_ERR_ARG);
    /* A VALID kernel larger than the input (either axis) leaves no output. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 2, 5, 1, 1, 3, 3, 1, NN_PAD_VALID), NN_ERR_SHAPE);
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 5, 2, 1, 1, 3, 3, 1, NN_PAD_VALID), NN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "conv2d"));
    /* The same kernel is fine with SAME padding. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 2, 2, 1, 1, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(s.oh, 2);
    /* Sizes whose products overflow GEMM's int. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 65536, 256, 256, 1, 1, 1, 1, 1, NN_PAD_SAME), NN_ERR_UNSUPPORTED);
}
END_TEST

/* ---- the shape table ---- */

struct conv_case {
    int n, h, w, c, k, kh, kw, stride;
    enum nn_padding pad;
};

static const struct conv_case cases[] = {
    {1, 7, 5, 3, 4, 3, 3, 1, NN_PAD_SAME},   /* odd sizes, batch 1 */
    {3, 7, 5, 5, 6, 3, 3, 2, NN_PAD_VALID},  /* stride 2 VALID on odd sizes, batch 3 */
    {2, 7, 5, 3, 4, 1, 7, 1, NN_PAD_SAME},   /* 1x7 wider than the input */
    {2, 7, 5, 3, 4, 7, 1, 1, NN_PAD_SAME},   /* 7x1 */
    {1, 6, 9, 10, 3, 1, 3, 1, NN_PAD_SAME},  /* 1x3 */
    {1, 9, 6, 10, 3, 3, 1, 1, NN_PAD_SAME},  /* 3x1 */
    {2, 9, 8, 3, 5, 5, 5, 1, NN_PAD_SAME},   /* 5x5 */
    {3, 8, 7, 6, 5, 3, 3, 2, NN_PAD_SAME},   /* stride 2 SAME, pad 0 before on the even axis */
    {2, 1, 1, 7, 5, 1, 1, 1, NN_PAD_VALID},  /* 1x1 spatial, pointwise GEMM */
    {3, 5, 4, 9, 7, 1, 1, 1, NN_PAD_SAME},   /* pointwise, channels not a multiple of 8 */
    {1, 1, 1, 4, 3, 3, 3, 1, NN_PAD_SAME},   /* 1x1 spatial: only the centre tap is real */
    {2, 6, 7, 5, 4, 1, 1, 2, NN_PAD_VALID},  /* strided 1x1 goes through im2col */
    {1, 5, 5, 3, 2, 5, 5, 1, NN_PAD_VALID},  /* kernel = input: one output pixel */
    {2, 8, 8, 4, 3, 4, 4, 2, NN_PAD_SAME},   /* even kernel */
    {1, 10, 9, 3, 2, 3, 3, 3, NN_PAD_SAME},  /* stride 3 */
    {2, 6, 5, 17, 3, 3, 3, 1, NN_PAD_VALID}, /* 17 channels */
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void case_shape(struct nn_conv_shape *s, int i)
{
    const struct conv_case *c = &cases[i];
    ck_assert_int_eq(nn_conv_shape_init(s, c->n, c->h, c->w, c->c, c->k, c->kh, c->kw, c->stride, c->pad), NN_OK);
}

START_TEST(forward_matches_direct_convolution)
{
    struct nn_conv_shape s;
    case_shape(&s, _i);
    float *in = rand_floats(in_size(&s), -1, 1, 10 + _i), *w = rand_floats(w_size(&s), -1, 1, 20 + _i);
    float *out = zero_floats(out_size(&s));
    double *ref = zero_doubles(out_size(&s));
    double *din = to_doubles(in, in_size(&s)), *dw = to_doubles(w, w_size(&s));
    conv_ref(ref, din, dw, &s);

    float *scratch = scratch_for((long)nn_conv2d_scratch_floats(&s));
    nn_conv2d_forward(out, in, w, &s, scratch);
    CHECK_ERR(rel_err(out, ref, out_size(&s)), 1e-5, "case %d default chunk", _i);
    free(scratch);

    /* Chunks of 1 pixel, of a few pixels ending mid-row, and of everything. */
    long chunks[] = {1, 3, 7, pixels(&s)};
    for (int t = 0; t < 4; t++) {
        scratch = scratch_for(chunks[t] * row_len(&s));
        for (long i = 0; i < out_size(&s); i++) out[i] = 1e30f;
        nn_conv2d_forward_chunked(out, in, w, &s, scratch, chunks[t]);
        CHECK_ERR(rel_err(out, ref, out_size(&s)), 1e-5, "case %d chunk %ld", _i, chunks[t]);
        free(scratch);
    }
    nn_free(in);
    nn_free(w);
    nn_free(out);
    free(ref);
    free(din);
    free(dw);
}
END_TEST

START_TEST(backward_matches_finite_differences)
{
    struct nn_conv_shape s;
    case_shape(&s, _i);
    float *in = rand_floats(in_size(&s), -1, 1, 30 + _i), *w = rand_floats(w_size(&s), -1, 1, 40 + _i);
    float *r = rand_floats(out_size(&s), -1, 1, 50 + _i);
    struct conv_ctx ctx = {&s, to_doubles(in, in_size(&s)), to_doubles(w, w_size(&s)), zero_doubles(out_size(&s)),
                           r};
    /* The loss is linear in each argument: differences are exact up to rounding. */
    double *g_in = zero_doubles(in_size(&s)), *g_w = zero_doubles(w_size(&s));
    numgrad(ctx.in, in_size(&s), 0.05, conv_loss, &ctx, g_in);
    numgrad(ctx.w, w_size(&s), 0.05, conv_loss, &ctx, g_w);

    long chunks[] = {nn_conv2d_chunk_pixels(&s), 5};
    for (int t = 0; t < 2; t++) {
        float *scratch = scratch_for(t == 0 ? (long)nn_conv2d_scratch_floats(&s) : chunks[t] * row_len(&s));
        struct accum a_in, a_w;
        accum_init(&a_in, in_size(&s), 60 + _i);
        accum_init(&a_w, w_size(&s), 70 + _i);
        for (int rep = 0; rep < 2; rep++)
            nn_conv2d_backward_chunked(a_in.buf, a_w.buf, r, in, w, &s, scratch, chunks[t]);
        CHECK_ERR(accum_err(&a_in, g_in), 1e-5, "case %d chunk %ld: dIn", _i, chunks[t]);
        CHECK_ERR(accum_err(&a_w, g_w), 1e-5, "case %d chunk %ld: dW", _i, chunks[t]);

        /* Each gradient alone: NULL skips the other. */
        float *only = zero_floats(in_size(&s) > w_size(&s) ? in_size(&s) : w_size(&s));
        nn_conv2d_backward_chunked(only, NULL, r, in, w, &s, scratch, chunks[t]);
        CHECK_ERR(rel_err(only, g_in, in_size(&s)), 1e-5, "case %d chunk %ld: dIn alone", _i, chunks[t]);
        for (long i = 0; i < w_size(&s); i++) only[i] = 0;
        nn_conv2d_backward_chunked(NULL, only, r, in, w, &s, scratch, chunks[t]);
        CHECK_ERR(rel_err(only, g_w, w_size(&s)), 1e-5, "case %d chunk %ld: dW alone", _i, chunks[t]);
        nn_free(only);
        accum_free(&a_in);
        accum_free(&a_w);
        free(scratch);
    }
    nn_free(in);
    nn_free(w);
    nn_free(r);
    free(ctx.in);
    free(ctx.w);
    free(ctx.out);
    free(g_in);
    free(g_w);
}
END_TEST

/* A conv big enough for several default-sized chunks, the boundary inside
 * an image row, checked against the direct loops both ways. */
START_TEST(default_chunks_cover_large_convs)
{
    struct nn_conv_shape s;
    ck_assert_int_eq(nn_conv_shape_init(&s, 2, 50, 47, 64, 6, 3, 3, 1, NN_PAD_SAME), NN_OK);
    long chunk = nn_conv2d_chunk_pixels(&s);
    ck_assert_int_lt(2 * chunk, pixels(&s));
    ck_assert_int_ne(chunk % s.ow, 0);
    ck_assert_uint_eq(nn_conv2d_scratch_floats(&s), (size_t)(chunk * row_len(&s)));

    float *in = rand_floats(in_size(&s), -1, 1, 1), *w = rand_floats(w_size(&s), -1, 1, 2);
    float *dout = rand_floats(out_size(&s), -1, 1, 3), *out = zero_floats(out_size(&s));
    double *din_d = to_doubles(in, in_size(&s)), *dw_d = to_doubles(w, w_size(&s));
    double *ref = zero_doubles(out_size(&s));
    float *scratch = scratch_for((long)nn_conv2d_scratch_floats(&s));
    conv_ref(ref, din_d, dw_d, &s);
    nn_conv2d_forward(out, in, w, &s, scratch);
    CHECK_ERR(rel_err(out, ref, out_size(&s)), 1e-5, "large forward");

    double *g_in = zero_doubles(in_size(&s)), *g_w = zero_doubles(w_size(&s));
    conv_ref_backward(g_in, g_w, dout, din_d, dw_d, &s);
    float *gi = zero_floats(in_size(&s)), *gw = zero_floats(w_size(&s));
    nn_conv2d_backward(gi, gw, dout, in, w, &s, scratch);
    CHECK_ERR(rel_err(gi, g_in, in_size(&s)), 1e-5, "large dIn");
    CHECK_ERR(rel_err(gw, g_w, w_size(&s)), 1e-5, "large dW");

    free(scratch);
    nn_free(in);
    nn_free(w);
    nn_free(dout);
    nn_free(out);
    nn_free(gi);
    nn_free(gw);
    free(din_d);
    free(dw_d);
    free(ref);
    free(g_in);
    free(g_w);
}
END_TEST

START_TEST(scratch_is_bounded_independently_of_batch)
{
    struct nn_conv_shape a, b;
    ck_assert_int_eq(nn_conv_shape_init(&a, 1, 147, 147, 32, 64, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert_int_eq(nn_conv_shape_init(&b, 256, 147, 147, 32, 64, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert_uint_gt(nn_conv2d_scratch_floats(&a), 0);
    ck_assert_uint_eq(nn_conv2d_scratch_floats(&a), nn_conv2d_scratch_floats(&b));
    ck_assert_uint_le(nn_conv2d_scratch_floats(&b), (size_t)4 << 20);
    /* Pointwise convs need none. */
    ck_assert_int_eq(nn_conv_shape_init(&a, 32, 35, 35, 288, 64, 1, 1, 1, NN_PAD_SAME), NN_OK);
    ck_assert_uint_eq(nn_conv2d_scratch_floats(&a), 0);
    /* A tiny conv never asks for more rows than it has pixels. */
    ck_assert_int_eq(nn_conv_shape_init(&a, 1, 2, 2, 3, 4, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert_uint_eq(nn_conv2d_scratch_floats(&a), 4 * 27);
}
END_TEST

Suite *suite_conv(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tf_padding_geometry);
    tcase_add_test(tc, bad_shapes_are_errors);
    tcase_add_loop_test(tc, forward_matches_direct_convolution, 0, NCASES);
    tcase_add_loop_test(tc, backward_matches_finite_differences, 0, NCASES);
    tcase_add_test(tc, default_chunks_cover_large_convs);
    tcase_add_test(tc, scratch_is_bounded_independently_of_batch);
    suite_add_tcase(s, tc);
    return s;
}
