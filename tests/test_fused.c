/* The inference fast path: the GEMM epilogue (batch norm as a per-channel
 * scale and shift, ReLU) and the fused convolution that writes into a
 * channel slice of a wider tensor, both against the unfused ops. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/threads.h"
#include "ops/batchnorm.h"
#include "ops/conv2d.h"
#include "ops/gemm.h"
#include "tests/testutil.h"

static void apply(float *c, int M, int N, int ldc, const float *scale, const float *shift, bool relu)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float v = c[(size_t)i * ldc + j];
            if (scale) v *= scale[j];
            if (shift) v += shift[j];
            if (relu && v < 0) v = 0;
            c[(size_t)i * ldc + j] = v;
        }
}

START_TEST(gemm_epilogue_matches_separate_pass)
{
    /* small M (column-outer order), large M (row-outer), several depth blocks */
    const int shapes[][3] = {{1, 37, 20}, {13, 70, 300}, {64, 33, 1100}, {150, 129, 77}, {301, 48, 1300}};
    for (int threads = 1; threads <= 2; threads++) {
        nn_threads_set(threads);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldc = N + 5;
            float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
            float *c1 = malloc(sizeof(float) * M * ldc), *c2 = malloc(sizeof(float) * M * ldc);
            float *scale = malloc(sizeof(float) * N), *shift = malloc(sizeof(float) * N);
            fill_uniform(a, (size_t)M * K, -1, 1, 1 + s);
            fill_uniform(b, (size_t)K * N, -1, 1, 2 + s);
            fill_uniform(scale, N, 0.2f, 2, 3 + s);
            fill_uniform(shift, N, -1, 1, 4 + s);
            for (int variant = 0; variant < 3; variant++) {
                struct nn_gemm_epilogue ep = {variant != 1 ? scale : NULL, variant != 2 ? shift : NULL, variant != 2};
                for (int i = 0; i < M * ldc; i++) c1[i] = c2[i] = 7.0f; /* the padding columns must survive */
                nn_gemm(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c1, ldc);
                apply(c1, M, N, ldc, ep.scale, ep.shift, ep.relu);
                nn_gemm_ex(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c2, ldc, &ep);
                double d = max_abs_diff(c1, c2, (size_t)M * ldc);
                ck_assert_msg(d <= 1e-5 * sqrt(K), "%dx%dx%d variant %d threads %d: %g", M, N, K, variant, threads, d);
                for (int i = 0; i < M; i++)
                    for (int j = N; j < ldc; j++) ck_assert_float_eq(c2[(size_t)i * ldc + j], 7.0f);
            }
            free(a);
            free(b);
            free(c1);
            free(c2);
            free(scale);
            free(shift);
        }
    }
    nn_threads_set(0);
}
END_TEST

START_TEST(fused_conv_writes_its_slice)
{
    /* 1x1 (one GEMM), 3x3 SAME, 1x7 and stride-2 VALID */
    const int shapes[][7] = {{2, 9, 7, 16, 24, 1, 1}, {1, 12, 12, 8, 20, 3, 3}, {3, 5, 11, 6, 10, 1, 7}, {2, 11, 9, 5, 12, 3, 2}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *d = shapes[t];
        int stride = d[5] == 3 && d[6] == 2 ? 2 : 1, kw = d[6] == 2 ? 3 : d[6];
        struct nn_conv_shape s;
        ck_assert_int_eq(nn_conv_shape_init(&s, d[0], d[1], d[2], d[3], d[4], d[5], kw, stride,
                                            stride == 2 ? NN_PAD_VALID : NN_PAD_SAME),
                         NN_OK);
        size_t in_n = (size_t)s.n * s.h * s.w * s.c, w_n = (size_t)s.kh * s.kw * s.c * s.k;
        long M = (long)s.n * s.oh * s.ow;
        int ldo = s.k + 9, off = 4;
        float *in = nn_alloc(in_n * 4), *w = nn_alloc(w_n * 4), *ref = nn_alloc((size_t)M * s.k * 4);
        float *wide = nn_alloc((size_t)M * ldo * 4), *scratch = nn_alloc((nn_conv2d_scratch_floats(&s) + 1) * 4);
        float gamma[32], beta[32], mean[32], var[32], scale[32], shift[32];
        fill_uniform(in, in_n, -1, 1, 10 + t);
        fill_uniform(w, w_n, -0.5f, 0.5f, 20 + t);
        fill_uniform(gamma, s.k, 0.5f, 1.5f, 30 + t);
        fill_uniform(beta, s.k, -0.5f, 0.5f, 40 + t);
        fill_uniform(mean, s.k, -0.3f, 0.3f, 50 + t);
        fill_uniform(var, s.k, 0.5f, 2, 60 + t);
        for (int k = 0; k < s.k; k++) {
            scale[k] = gamma[k] / sqrtf(var[k] + 1e-3f);
            shift[k] = beta[k] - mean[k] * scale[k];
        }
        nn_conv2d_forward(ref, in, w, &s, scratch);
        nn_batchnorm_forward_infer(ref, ref, gamma, beta, mean, var, M, s.k, 1e-3f, true);
        for (size_t i = 0; i < (size_t)M * ldo; i++) wide[i] = -5.0f;
        struct nn_gemm_epilogue ep = {scale, shift, true};
        nn_conv2d_forward_fused(wide + off, ldo, in, w, &s, scratch, &ep);
        for (long m = 0; m < M; m++) {
            for (int c = 0; c < ldo; c++) {
                float v = wide[m * ldo + c];
                if (c < off || c >= off + s.k) ck_assert_float_eq(v, -5.0f);
                else ck_assert_msg(fabsf(v - ref[m * s.k + c - off]) <= 1e-4f, "shape %zu row %ld ch %d", t, m, c);
            }
        }
        nn_free(in);
        nn_free(w);
        nn_free(ref);
        nn_free(wide);
        nn_free(scratch);
    }
}
END_TEST

START_TEST(batchnorm_backward_set_overwrites)
{
    /* M = 2 (the ill-conditioned aux-head case) and a larger M */
    const long Ms[] = {2, 300};
    for (int t = 0; t < 2; t++) {
        long M = Ms[t];
        int C = 19;
        size_t n = (size_t)M * C;
        float *x = malloc(n * 4), *y = malloc(n * 4), *dy = malloc(n * 4), *acc = calloc(n, 4), *set = malloc(n * 4);
        float g[19], b[19], mean[19], inv[19], var[19], dg1[19] = {0}, db1[19] = {0}, dg2[19] = {0}, db2[19] = {0};
        fill_uniform(x, n, -2, 3, 70 + t);
        fill_uniform(dy, n, -1, 1, 80 + t);
        fill_uniform(g, C, 0.5f, 1.5f, 90 + t);
        fill_uniform(b, C, -0.3f, 0.3f, 91 + t);
        fill_uniform(var, C, 0.5f, 2, 92 + t);
        nn_batchnorm_forward_train(y, mean, inv, x, g, b, NULL, NULL, M, C, 1e-3f, 0.9f, true);
        for (size_t i = 0; i < n; i++) set[i] = NAN; /* must not be read */
        nn_batchnorm_backward(acc, dg1, db1, dy, x, y, mean, inv, g, M, C, 1e-3f, true);
        nn_batchnorm_backward_set(set, dg2, db2, dy, x, y, mean, inv, g, M, C, 1e-3f, true);
        /* equal values (0 + -0 is +0, so bits may differ in the sign of zero) */
        for (size_t i = 0; i < n; i++) ck_assert_msg(acc[i] == set[i], "dx[%zu]: %g vs %g", i, acc[i], set[i]);
        ck_assert(memcmp(dg1, dg2, sizeof dg1) == 0 && memcmp(db1, db2, sizeof db1) == 0);
        memset(acc, 0, n * 4);
        for (size_t i = 0; i < n; i++) set[i] = NAN;
        nn_batchnorm_backward_infer(acc, NULL, NULL, dy, x, y, g, mean, var, M, C, 1e-3f, true);
        nn_batchnorm_backward_infer_set(set, NULL, NULL, dy, x, y, g, mean, var, M, C, 1e-3f, true);
        for (size_t i = 0; i < n; i++) ck_assert_msg(acc[i] == set[i], "infer dx[%zu]", i);
        free(x);
        free(y);
        free(dy);
        free(acc);
        free(set);
    }
}
END_TEST

START_TEST(deep_products_split_along_k)
{
    /* small outputs over a very deep K take the K-split path: check values
     * and that 1 and 2 threads give identical bits */
    const int M = 37, N = 70, K = 40000;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c1 = malloc(sizeof(float) * M * N), *c2 = malloc(sizeof(float) * M * N), *c0 = malloc(sizeof(float) * M * N);
    fill_uniform(a, (size_t)M * K, -1, 1, 101);
    fill_uniform(b, (size_t)K * N, -1, 1, 102);
    fill_uniform(c0, (size_t)M * N, -1, 1, 103);
    for (int ta = 0; ta < 2; ta++) {
        const float beta = ta ? 0.5f : 0.0f;
        nn_threads_set(1);
        memcpy(c1, c0, sizeof(float) * M * N);
        /* A is [K, M] when transposed (a weight gradient), [M, K] otherwise */
        nn_gemm(ta, false, M, N, K, 1.0f, a, ta ? M : K, b, N, beta, c1, N);
        nn_threads_set(2);
        memcpy(c2, c0, sizeof(float) * M * N);
        nn_gemm(ta, false, M, N, K, 1.0f, a, ta ? M : K, b, N, beta, c2, N);
        ck_assert(memcmp(c1, c2, sizeof(float) * M * N) == 0);
        for (int i = 0; i < M; i += 7)
            for (int j = 0; j < N; j += 5) {
                double ref = beta * c0[i * N + j], mag = 0;
                for (int k = 0; k < K; k++) {
                    double av = ta ? a[(size_t)k * M + i] : a[(size_t)i * K + k];
                    ref += av * b[(size_t)k * N + j];
                    mag += fabs(av * b[(size_t)k * N + j]);
                }
                ck_assert_msg(fabs(c1[i * N + j] - ref) <= 1e-5 * mag, "(%d,%d): %g vs %g", i, j, c1[i * N + j], ref);
            }
    }
    nn_threads_set(0);
    free(a);
    free(b);
    free(c0);
    free(c1);
    free(c2);
}
END_TEST

Suite *suite_fused(void)
{
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("fused");
    tcase_add_test(tc, gemm_epilogue_matches_separate_pass);
    tcase_add_test(tc, fused_conv_writes_its_slice);
    tcase_add_test(tc, batchnorm_backward_set_overwrites);
    tcase_add_test(tc, deep_products_split_along_k);
    suite_add_tcase(s, tc);
    return s;
}
