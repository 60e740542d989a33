/* Winograd F(2x2, 3x3) against a direct convolution in double: odd and even
 * maps (partial tiles), SAME and VALID, channel counts that leave partial
 * vectors, chunk boundaries anywhere, every SIMD level of the transforms,
 * the general form (row stride, accumulation, epilogue), and
 * nn_conv2d_forward with Winograd on and off. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/winograd.h"
#include "ops/winograd_internal.h"
#include "tests/gradcheck.h"

/* Float32 rounding through the transforms stays a few ulps of the scale of
 * each output, sum |x| |w| over its taps; a wrong tap or transform entry is
 * off by the order of that scale. */
#define TOL 1e-6

static long in_size(const struct nn_conv_shape *s) { return (long)s->n * s->h * s->w * s->c; }
static long w_size(const struct nn_conv_shape *s) { return 9L * s->c * s->k; }
static long out_size(const struct nn_conv_shape *s) { return (long)s->n * s->oh * s->ow * s->k; }
static long tiles(const struct nn_conv_shape *s) { return (long)s->n * ((s->oh + 1) / 2) * ((s->ow + 1) / 2); }

/* ref = conv(in, w) and mag = conv(|in|, |w|), the scale of each output. */
static void conv_ref(double *ref, double *mag, const float *in, const float *w, const struct nn_conv_shape *s)
{
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int k = 0; k < s->k; k++) {
                    double sum = 0, abs_sum = 0;
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int ih = oh - s->pad_top + ki, iw = ow - s->pad_left + kj;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            const float *x = in + (((long)n * s->h + ih) * s->w + iw) * s->c;
                            const float *g = w + ((long)(ki * 3 + kj) * s->c) * s->k + k;
                            for (int c = 0; c < s->c; c++) {
                                sum += (double)x[c] * g[(long)c * s->k];
                                abs_sum += fabs((double)x[c] * g[(long)c * s->k]);
                            }
                        }
                    long o = (((long)n * s->oh + oh) * s->ow + ow) * s->k + k;
                    ref[o] = sum;
                    mag[o] = abs_sum;
                }
}

/* The adjoint: din = dL/din of L = <conv(in, w), dout>, and its scale. */
static void conv_ref_din(double *din, double *mag, const float *dout, const float *w, const struct nn_conv_shape *s)
{
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++) {
                        int ih = oh - s->pad_top + ki, iw = ow - s->pad_left + kj;
                        if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                        const float *g = dout + (((long)n * s->oh + oh) * s->ow + ow) * s->k;
                        long i = (((long)n * s->h + ih) * s->w + iw) * s->c;
                        for (int c = 0; c < s->c; c++)
                            for (int k = 0; k < s->k; k++) {
                                double p = (double)g[k] * w[((long)(ki * 3 + kj) * s->c + c) * s->k + k];
                                din[i + c] += p;
                                mag[i + c] += fabs(p);
                            }
                    }
}

/* max over outputs of |got - want| / (scale + tiny): the error in units of
 * each output's own scale. Outputs with no taps (scale 0) must be exactly 0. */
static double scaled_err(const float *got, int ldo, const double *want, const double *mag,
                         const struct nn_conv_shape *s)
{
    double worst = 0;
    long pixels = (long)s->n * s->oh * s->ow;
    for (long p = 0; p < pixels; p++)
        for (int k = 0; k < s->k; k++) {
            double g = got[p * ldo + k], e = fabs(g - want[p * s->k + k]);
            double r = mag[p * s->k + k] > 0 ? e / mag[p * s->k + k] : (g == 0 ? 0 : INFINITY);
            if (!(r <= worst)) worst = r; /* NaN wins */
        }
    return worst;
}

/* Scratch from malloc with the exact size, so ASan sees any overrun. */
static float *scratch_for(size_t floats) { return malloc((floats ? floats : 1) * sizeof(float)); }

struct wcase {
    int n, h, w, c, k;
    enum nn_padding pad;
};

static const struct wcase cases[] = {
    {1, 1, 1, 3, 4, NN_PAD_SAME},      /* one pixel: only the centre tap, a partial tile */
    {3, 1, 1, 17, 5, NN_PAD_SAME},
    {1, 2, 2, 17, 3, NN_PAD_SAME},     /* one whole tile, all of it border */
    {1, 3, 3, 3, 17, NN_PAD_VALID},    /* one output pixel */
    {3, 3, 3, 33, 17, NN_PAD_SAME},
    {1, 5, 7, 17, 33, NN_PAD_SAME},    /* odd both ways */
    {3, 5, 7, 3, 17, NN_PAD_VALID},    /* 3x5 outputs */
    {1, 8, 8, 33, 17, NN_PAD_SAME},
    {3, 8, 8, 17, 3, NN_PAD_VALID},    /* 6x6 */
    {1, 17, 17, 17, 33, NN_PAD_VALID}, /* 15x15 */
    {3, 17, 17, 3, 17, NN_PAD_SAME},
    {2, 9, 10, 32, 48, NN_PAD_SAME},   /* whole vectors at every level */
    {1, 35, 35, 33, 17, NN_PAD_SAME},
    {3, 35, 35, 17, 33, NN_PAD_VALID},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void case_shape(struct nn_conv_shape *s, int i)
{
    const struct wcase *c = &cases[i];
    ck_assert_int_eq(nn_conv_shape_init(s, c->n, c->h, c->w, c->c, c->k, 3, 3, 1, c->pad), NN_OK);
    ck_assert(nn_winograd_supports(s));
}

static void fill(float *x, long n, float v)
{
    for (long i = 0; i < n; i++) x[i] = v;
}

START_TEST(forward_matches_direct_convolution)
{
    struct nn_conv_shape s;
    case_shape(&s, _i);
    float *in = rand_floats(in_size(&s), -1, 1, 100 + _i), *w = rand_floats(w_size(&s), -1, 1, 200 + _i);
    double *ref = zero_doubles(out_size(&s)), *mag = zero_doubles(out_size(&s));
    conv_ref(ref, mag, in, w, &s);
    float *u = nn_alloc(nn_winograd_weight_floats(s.c, s.k) * sizeof(float));
    float *out = zero_floats(out_size(&s));
    ck_assert_ptr_nonnull(u);

    /* One thread (blocks), two and three (blocks or, for few tiles, the
     * phased split; three splits unevenly). */
    for (int run = 0; run < 3 * ((int)nn_simd_level() + 1); run++) {
        const int level = run / 3, threads = 1 + run % 3;
        ck_assert_int_eq(nn_threads_set(threads), NN_OK);
        nn_winograd_set_level(level);
        nn_winograd_transform_weights(u, w, s.c, s.k);
        /* The default chunk, the whole conv, then chunks of 1 tile and of a
         * few tiles ending mid-row (small chunks mean many trips through the
         * pool: one thread only). */
        long chunks[] = {nn_winograd_chunk_tiles(&s), tiles(&s), 1, 3, 7};
        for (int t = 0; t < (threads == 1 ? 5 : 2); t++) {
            size_t floats = t == 0 ? nn_winograd_scratch_floats(&s) : nn_winograd_scratch_floats_chunked(&s, chunks[t]);
            float *scratch = scratch_for(floats);
            fill(out, out_size(&s), NAN);
            fill(scratch, (long)floats, NAN); /* the zero row must be written, not found */
            if (t == 0) nn_conv2d_winograd_forward(out, in, u, &s, scratch);
            else nn_conv2d_winograd_forward_ex(out, s.k, false, in, u, &s, scratch, chunks[t], NULL);
            CHECK_ERR(scaled_err(out, s.k, ref, mag, &s), TOL, "case %d, %s, %d threads, chunk %ld", _i,
                      nn_simd_name((enum nn_simd)level), threads, chunks[t]);
            free(scratch);
        }
    }
    nn_winograd_set_level(-1);
    nn_threads_set(0);
    nn_free(in);
    nn_free(w);
    nn_free(u);
    nn_free(out);
    free(ref);
    free(mag);
}
END_TEST

/* dL/din through the rotated conv, accumulated onto what din holds. */
START_TEST(backward_input_matches_direct_adjoint)
{
    struct nn_conv_shape s;
    case_shape(&s, _i);
    struct nn_conv_shape bs;
    nn_winograd_backward_shape(&bs, &s);
    ck_assert(nn_winograd_supports(&bs));
    ck_assert_int_eq(bs.oh, s.h);
    ck_assert_int_eq(bs.ow, s.w);
    float *dout = rand_floats(out_size(&s), -1, 1, 300 + _i), *w = rand_floats(w_size(&s), -1, 1, 400 + _i);
    float *base = rand_floats(in_size(&s), -1, 1, 500 + _i);
    double *ref = zero_doubles(in_size(&s)), *mag = zero_doubles(in_size(&s));
    conv_ref_din(ref, mag, dout, w, &s);
    for (long i = 0; i < in_size(&s); i++) {
        ref[i] += base[i];
        mag[i] += fabs(base[i]);
    }
    float *u = nn_alloc(nn_winograd_weight_floats(s.c, s.k) * sizeof(float));
    float *din = zero_floats(in_size(&s));
    const long btiles = (long)bs.n * ((bs.oh + 1) / 2) * ((bs.ow + 1) / 2);
    for (int run = 0; run < 2 * ((int)nn_simd_level() + 1); run++) {
        const int level = run / 2, threads = 1 + run % 2;
        ck_assert_int_eq(nn_threads_set(threads), NN_OK);
        nn_winograd_set_level(level);
        nn_winograd_transform_weights(u, w, s.c, s.k);
        long chunks[] = {nn_winograd_backward_chunk_tiles(&s), btiles, 1, 5};
        for (int t = 0; t < (threads == 1 ? 4 : 2); t++) {
            size_t floats = t == 0 ? nn_winograd_backward_scratch_floats(&s)
                                   : nn_winograd_backward_scratch_floats_chunked(&s, chunks[t]);
            float *scratch = scratch_for(floats);
            fill(scratch, (long)floats, NAN);
            memcpy(din, base, (size_t)in_size(&s) * sizeof(float));
            if (t == 0) nn_conv2d_winograd_backward_input(din, dout, u, &s, scratch);
            else nn_conv2d_winograd_backward_input_chunked(din, dout, u, &s, scratch, chunks[t]);
            CHECK_ERR(scaled_err(din, s.c, ref, mag, &bs), TOL, "case %d, %s, %d threads, chunk %ld", _i,
                      nn_simd_name((enum nn_simd)level), threads, chunks[t]);
            free(scratch);
        }
    }
    nn_winograd_set_level(-1);
    nn_threads_set(0);
    nn_free(dout);
    nn_free(w);
    nn_free(base);
    nn_free(u);
    nn_free(din);
    free(ref);
    free(mag);
}
END_TEST

/* The general form: rows ldo apart inside a wider buffer (the rest left
 * alone), accumulation onto what is there, then scale, shift and ReLU. */
START_TEST(row_stride_accumulate_and_epilogue)
{
    struct nn_conv_shape s;
    ck_assert_int_eq(nn_conv_shape_init(&s, 2, 7, 9, 19, 21, 3, 3, 1, NN_PAD_SAME), NN_OK);
    const int ldo = 30, off = 5;
    const long pixels = (long)s.n * s.oh * s.ow;
    float *in = rand_floats(in_size(&s), -1, 1, 1), *w = rand_floats(w_size(&s), -1, 1, 2);
    float *base = rand_floats(pixels * ldo, -1, 1, 3);
    float *scale = rand_floats(s.k, 0.5f, 2, 4), *shift = rand_floats(s.k, -3, 3, 5);
    double *ref = zero_doubles(out_size(&s)), *mag = zero_doubles(out_size(&s));
    conv_ref(ref, mag, in, w, &s);
    float *u = nn_alloc(nn_winograd_weight_floats(s.c, s.k) * sizeof(float));
    float *out = nn_alloc((size_t)pixels * ldo * sizeof(float));
    float *scratch = scratch_for(nn_winograd_scratch_floats_chunked(&s, 5));
    nn_winograd_transform_weights(u, w, s.c, s.k);

    for (int mode = 0; mode < 3; mode++) {
        bool accumulate = mode >= 1;
        struct nn_gemm_epilogue ep = {scale, shift, true};
        memcpy(out, base, (size_t)pixels * ldo * sizeof(float));
        nn_conv2d_winograd_forward_ex(out + off, ldo, accumulate, in, u, &s, scratch, 5, mode == 2 ? &ep : NULL);
        double *want = zero_doubles(out_size(&s)), *wmag = zero_doubles(out_size(&s));
        int relu_zero = 0;
        for (long p = 0; p < pixels; p++)
            for (int k = 0; k < s.k; k++) {
                long o = p * s.k + k;
                double b = accumulate ? base[p * ldo + off + k] : 0;
                double v = ref[o] + b, m = mag[o] + fabs(b);
                if (mode == 2) {
                    v = v * scale[k] + shift[k];
                    m = m * scale[k] + fabs(shift[k]);
                    if (v < 0) {
                        v = 0;
                        relu_zero++;
                    }
                }
                want[o] = v;
                wmag[o] = m;
            }
        if (mode == 2) ck_assert_int_gt(relu_zero, 0); /* the ReLU was really tested */
        CHECK_ERR(scaled_err(out + off, ldo, want, wmag, &s), TOL, "mode %d", mode);
        /* Channels outside the slice are untouched. */
        for (long p = 0; p < pixels; p++)
            for (int c = 0; c < ldo; c++)
                if (c < off || c >= off + s.k) ck_assert_float_eq(out[p * ldo + c], base[p * ldo + c]);
        free(want);
        free(wmag);
    }
    free(scratch);
    nn_free(in);
    nn_free(w);
    nn_free(base);
    nn_free(scale);
    nn_free(shift);
    nn_free(u);
    nn_free(out);
    free(ref);
    free(mag);
}
END_TEST

/* nn_conv2d_forward and nn_conv2d_backward take the Winograd path for
 * shapes where it pays, and give the same result (within rounding) with it
 * switched off. */
START_TEST(conv2d_with_and_without_winograd)
{
    struct nn_conv_shape s;
    ck_assert_int_eq(nn_conv_shape_init(&s, 2, 19, 17, 48, 64, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert(nn_winograd_pays(&s));
    float *in = rand_floats(in_size(&s), -1, 1, 7), *w = rand_floats(w_size(&s), -1, 1, 8);
    double *ref = zero_doubles(out_size(&s)), *mag = zero_doubles(out_size(&s));
    conv_ref(ref, mag, in, w, &s);
    float *a = zero_floats(out_size(&s)), *b = zero_floats(out_size(&s));
    size_t floats = nn_conv2d_scratch_floats(&s);
    ck_assert_uint_ge(floats, nn_winograd_weight_floats(s.c, s.k) + nn_winograd_scratch_floats(&s));
    ck_assert_uint_ge(floats, nn_winograd_weight_floats(s.c, s.k) + nn_winograd_backward_scratch_floats(&s));
    float *scratch = scratch_for(floats);

    nn_winograd_set_enabled(1);
    ck_assert(nn_winograd_applies(&s));
    nn_conv2d_forward(a, in, w, &s, scratch);
    nn_winograd_set_enabled(0);
    ck_assert(!nn_winograd_applies(&s));
    nn_conv2d_forward(b, in, w, &s, scratch);
    nn_winograd_set_enabled(-1);

    CHECK_ERR(scaled_err(a, s.k, ref, mag, &s), TOL, "Winograd");
    CHECK_ERR(scaled_err(b, s.k, ref, mag, &s), TOL, "im2col");
    /* The two paths round differently: the same result, not the same bits. */
    ck_assert(memcmp(a, b, (size_t)out_size(&s) * sizeof(float)) != 0);

    /* Backward: din through Winograd or col2im, dW always through im2col. */
    struct nn_conv_shape bs;
    nn_winograd_backward_shape(&bs, &s);
    ck_assert(nn_winograd_backward_pays(&s));
    float *dout = rand_floats(out_size(&s), -1, 1, 9);
    double *dref = zero_doubles(in_size(&s)), *dmag = zero_doubles(in_size(&s));
    conv_ref_din(dref, dmag, dout, w, &s);
    float *din[2], *dw[2];
    for (int on = 0; on < 2; on++) {
        din[on] = zero_floats(in_size(&s));
        dw[on] = zero_floats(w_size(&s));
        nn_winograd_set_enabled(on);
        ck_assert(nn_winograd_backward_applies(&s) == (on == 1));
        nn_conv2d_backward(din[on], dw[on], dout, in, w, &s, scratch);
        CHECK_ERR(scaled_err(din[on], s.c, dref, dmag, &bs), TOL, "din, Winograd %s", on ? "on" : "off");
    }
    nn_winograd_set_enabled(-1);
    ck_assert(memcmp(din[0], din[1], (size_t)in_size(&s) * sizeof(float)) != 0);
    ck_assert(memcmp(dw[0], dw[1], (size_t)w_size(&s) * sizeof(float)) == 0);
    /* din alone takes the same path. */
    float *only = zero_floats(in_size(&s));
    nn_winograd_set_enabled(1);
    nn_conv2d_backward(only, NULL, dout, in, w, &s, scratch);
    nn_winograd_set_enabled(-1);
    ck_assert(memcmp(only, din[1], (size_t)in_size(&s) * sizeof(float)) == 0);
    for (int on = 0; on < 2; on++) {
        nn_free(din[on]);
        nn_free(dw[on]);
    }
    nn_free(only);
    nn_free(dout);
    free(dref);
    free(dmag);
    free(scratch);
    nn_free(in);
    nn_free(w);
    nn_free(a);
    nn_free(b);
    free(ref);
    free(mag);
}
END_TEST

START_TEST(where_it_applies)
{
    struct nn_conv_shape s;
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 35, 35, 64, 96, 3, 3, 2, NN_PAD_VALID), NN_OK);
    ck_assert(!nn_winograd_supports(&s));
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 35, 35, 64, 96, 5, 5, 1, NN_PAD_SAME), NN_OK);
    ck_assert(!nn_winograd_supports(&s));
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 17, 17, 64, 96, 1, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert(!nn_winograd_supports(&s));
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 35, 35, 64, 96, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert(nn_winograd_supports(&s));
    ck_assert(nn_winograd_pays(&s));
    /* Supported, but measured slower: few channels, or few tiles at batch 1. */
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 35, 35, 8, 96, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert(nn_winograd_supports(&s) && !nn_winograd_pays(&s));
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 4, 4, 64, 64, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert(!nn_winograd_pays(&s));
    ck_assert_int_eq(nn_conv_shape_init(&s, 4, 4, 4, 64, 64, 3, 3, 1, NN_PAD_SAME), NN_OK);
    ck_assert(nn_winograd_pays(&s));
    ck_assert_int_eq(nn_conv_shape_init(&s, 1, 35, 35, 64, 96, 3, 3, 1, NN_PAD_SAME), NN_OK);
    nn_winograd_set_enabled(0);
    ck_assert(!nn_winograd_applies(&s));
    nn_winograd_set_enabled(-1);
}
END_TEST

/* The scratch does not grow with the batch, and a smaller batch of the same
 * layer never needs more (networks size it for their largest batch), also
 * where the choice between Winograd and im2col changes with the batch. */
START_TEST(scratch_bounded_and_monotone_in_batch)
{
    const int layers[][4] = {{147, 32, 64, 1}, {73, 80, 192, 0}, {35, 64, 96, 1}, {8, 448, 384, 1}, {8, 384, 384, 1}};
    for (int l = 0; l < 5; l++) {
        size_t prev_conv = 0, prev_wino = 0, prev_back = 0;
        for (int n = 1; n <= 256; n *= 2) {
            struct nn_conv_shape s;
            ck_assert_int_eq(nn_conv_shape_init(&s, n, layers[l][0], layers[l][0], layers[l][1], layers[l][2], 3, 3,
                                                1, layers[l][3] ? NN_PAD_SAME : NN_PAD_VALID),
                             NN_OK);
            size_t conv = nn_conv2d_scratch_floats(&s), wino = nn_winograd_scratch_floats(&s);
            size_t back = nn_winograd_backward_scratch_floats(&s), u = nn_winograd_weight_floats(s.c, s.k);
            ck_assert_uint_ge(conv, prev_conv);
            ck_assert_uint_ge(wino, prev_wino);
            ck_assert_uint_ge(back, prev_back);
            ck_assert_uint_le(wino, (size_t)2 << 20);
            ck_assert_uint_le(back, (size_t)2 << 20);
            if (nn_winograd_pays(&s)) ck_assert_uint_ge(conv, u + wino);
            if (nn_winograd_backward_pays(&s)) ck_assert_uint_ge(conv, u + back);
            prev_conv = conv;
            prev_wino = wino;
            prev_back = back;
        }
    }
}
END_TEST

Suite *suite_winograd(void)
{
    Suite *s = suite_create("winograd");
    TCase *tc = tcase_create("winograd");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, forward_matches_direct_convolution, 0, NCASES);
    tcase_add_loop_test(tc, backward_input_matches_direct_adjoint, 0, NCASES);
    tcase_add_test(tc, row_stride_accumulate_and_epilogue);
    tcase_add_test(tc, conv2d_with_and_without_winograd);
    tcase_add_test(tc, where_it_applies);
    tcase_add_test(tc, scratch_bounded_and_monotone_in_batch);
    suite_add_tcase(s, tc);
    return s;
}
