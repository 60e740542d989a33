/* nn_gemm against a double-precision triple loop, at every SIMD level this
 * CPU has (each test is a loop test over the level: scalar, avx2, avx512).
 *
 * Operands live in buffers wider than the matrices (lda/ldb/ldc above the
 * minimum) whose slack holds NaN: a kernel that reads past a row pollutes
 * the result, one that writes past a row of C changes the slack. beta == 0
 * starts from a C full of NaN, which must not leak into the result.
 * Tolerance: 1e-5 * sqrt(K) relative to alpha * sum |a||b| + |beta * c|. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_internal.h"
#include "tests/testutil.h"

struct mat {
    float *p;
    int rows, cols, ld;
};

/* rows x cols with leading dimension cols + pad; the slack is NaN. */
static struct mat mat_new(int rows, int cols, int pad, unsigned seed)
{
    struct mat m = {NULL, rows, cols, cols + pad};
    size_t n = (size_t)(rows > 0 ? rows : 1) * (size_t)m.ld;
    m.p = nn_alloc(n * sizeof(float));
    ck_assert_ptr_nonnull(m.p);
    for (size_t i = 0; i < n; i++) m.p[i] = NAN;
    float *row = malloc((size_t)(cols > 0 ? cols : 1) * sizeof(float));
    ck_assert_ptr_nonnull(row);
    for (int r = 0; r < rows; r++) {
        fill_uniform(row, (size_t)cols, -1.0f, 1.0f, seed * 7919u + (unsigned)r);
        memcpy(m.p + (size_t)r * m.ld, row, (size_t)cols * sizeof(float));
    }
    free(row);
    return m;
}

static void mat_free(struct mat *m)
{
    nn_free(m->p);
    m->p = NULL;
}

struct problem {
    int ta, tb, M, N, K;
    float alpha, beta;
    int pad_a, pad_b, pad_c;
    unsigned seed;
};

static const char *const level_names[] = {"scalar", "avx2", "avx512"};

/* Runs one product through nn_gemm and checks every element of C, and that
 * the slack of C is untouched. Returns the number of wrong elements. */
static long check_problem(const struct problem *pr)
{
    const int M = pr->M, N = pr->N, K = pr->K;
    struct mat A = pr->ta ? mat_new(K, M, pr->pad_a, pr->seed) : mat_new(M, K, pr->pad_a, pr->seed);
    struct mat B = pr->tb ? mat_new(N, K, pr->pad_b, pr->seed + 1) : mat_new(K, N, pr->pad_b, pr->seed + 1);
    struct mat C = mat_new(M, N, pr->pad_c, pr->seed + 2);
    struct mat C0 = mat_new(M, N, pr->pad_c, pr->seed + 2);
    if (pr->beta == 0.0f) /* beta == 0 must not read C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C.p[(size_t)i * C.ld + j] = NAN;

    nn_gemm(pr->ta, pr->tb, M, N, K, pr->alpha, A.p, A.ld, B.p, B.ld, pr->beta, C.p, C.ld);

    long wrong = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double sum = 0, mag = 0;
            for (int p = 0; p < K; p++) {
                double a = pr->ta ? A.p[(size_t)p * A.ld + i] : A.p[(size_t)i * A.ld + p];
                double b = pr->tb ? B.p[(size_t)j * B.ld + p] : B.p[(size_t)p * B.ld + j];
                sum += a * b;
                mag += fabs(a * b);
            }
            double c0 = C0.p[(size_t)i * C0.ld + j];
            double want = pr->alpha * sum + (pr->beta != 0.0f ? pr->beta * c0 : 0.0);
            double tol = 1e-5 * sqrt((double)(K > 1 ? K : 1)) * (fabs(pr->alpha) * mag + fabs(pr->beta * c0)) + 1e-30;
            double got = C.p[(size_t)i * C.ld + j];
            if (!(fabs(got - want) <= tol)) {
                if (wrong < 3)
                    fprintf(stderr,
                            "gemm %s %c%c M=%d N=%d K=%d alpha=%g beta=%g ld=%d,%d,%d: C[%d][%d] = %.9g, want %.9g\n",
                            level_names[nn_gemm_level()], pr->ta ? 'T' : 'N', pr->tb ? 'T' : 'N', M, N, K,
                            (double)pr->alpha, (double)pr->beta, A.ld, B.ld, C.ld, i, j, got, want);
                wrong++;
            }
        }
        for (int j = N; j < C.ld; j++) {
            if (!isnan(C.p[(size_t)i * C.ld + j])) {
                if (wrong < 3) fprintf(stderr, "gemm: wrote C[%d][%d] past N=%d\n", i, j, N);
                wrong++;
            }
        }
    }
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
    mat_free(&C0);
    return wrong;
}

/* Each test is a loop test over the SIMD level; levels the CPU lacks skip. */
static bool use_level(int level)
{
    if (level > (int)nn_simd_level()) {
        fprintf(stderr, "SKIP gemm at %s: not available on this CPU (or NN_SIMD)\n", level_names[level]);
        return false;
    }
    nn_gemm_set_level(level);
    ck_assert_int_eq(nn_gemm_level(), level);
    return true;
}

static const float alphas[] = {1.0f, -0.7f, 2.0f};
static const float betas[] = {0.0f, 1.0f, 0.3f, -1.0f};

/* Odd, prime and register-tile-boundary sizes (MR = 6, 14; NR = 8, 16, 32),
 * every transpose combination, alpha and beta cycled, padded operands on
 * alternate problems. M up to 64 takes the small-M loop order (B read in
 * place), above it the large-M one. */
START_TEST(small_sizes_all_transposes)
{
    if (!use_level(_i)) return;
    static const int sizes[] = {1, 2, 3, 5, 6, 7, 8, 13, 14, 15, 16, 17, 29, 32, 33, 47, 64, 65, 71};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    long wrong = 0;
    int count = 0;
    for (int im = 0; im < ns; im++) {
        for (int in = 0; in < ns; in++) {
            for (int t = 0; t < 4; t++, count++) {
                struct problem pr = {
                    .ta = t & 1, .tb = t >> 1, .M = sizes[im], .N = sizes[in],
                    .K = sizes[(im * 5 + in * 3 + t) % ns],
                    .alpha = alphas[count % 3], .beta = betas[(count / 3) % 4],
                    .pad_a = count % 2 ? 3 : 0, .pad_b = count % 4 >= 2 ? 5 : 0, .pad_c = count % 3 ? 2 : 0,
                    .seed = (unsigned)count,
                };
                wrong += check_problem(&pr);
            }
        }
    }
    ck_assert_msg(wrong == 0, "%ld wrong elements at %s", wrong, level_names[_i]);
    nn_gemm_set_level(-1);
}
END_TEST

/* Depths around the depth block (kc = 512 at every level; K is cut into
 * equal blocks), where a product is accumulated over several blocks with
 * beta applied only to the first; both loop orders (M = 23 and 97). */
START_TEST(depth_block_boundaries)
{
    if (!use_level(_i)) return;
    static const int depths[] = {255, 511, 512, 513, 769, 1024, 1025, 1537};
    long wrong = 0;
    for (int d = 0; d < 8; d++) {
        for (int t = 0; t < 4; t++) {
            struct problem pr = {
                .ta = t & 1, .tb = t >> 1, .M = (d + t) % 2 ? 23 : 97, .N = 37 + 2 * t, .K = depths[d],
                .alpha = alphas[(d + t) % 3], .beta = betas[(d + t) % 4], .pad_a = 1, .pad_b = 2, .pad_c = 3,
                .seed = 100u + (unsigned)(d * 4 + t),
            };
            wrong += check_problem(&pr);
        }
    }
    ck_assert_msg(wrong == 0, "%ld wrong elements at %s", wrong, level_names[_i]);
    nn_gemm_set_level(-1);
}
END_TEST

/* Shapes of convolution backward: a huge inner dimension with A transposed
 * (weight gradients) and B transposed (input gradients), accumulating. */
START_TEST(large_k_and_backward_shapes)
{
    if (!use_level(_i)) return;
    const struct problem list[] = {
        {1, 0, 27, 32, 6007, 1.0f, 1.0f, 0, 0, 0, 201},  /* dW of a 3x3x3 -> 32 conv */
        {1, 0, 45, 17, 3001, 0.5f, 0.0f, 4, 1, 2, 202},
        {0, 1, 301, 45, 33, 1.0f, 1.0f, 0, 3, 0, 203},   /* dX */
        {0, 0, 2, 1000, 300, 1.0f, 0.0f, 0, 0, 0, 204},  /* fc at batch 2: B read in place */
        {0, 1, 3, 130, 2049, 1.0f, 1.0f, 1, 1, 1, 205},  /* fc dX */
        {1, 1, 31, 29, 1500, -1.0f, 0.3f, 2, 2, 2, 206},
    };
    long wrong = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) wrong += check_problem(&list[i]);
    ck_assert_msg(wrong == 0, "%ld wrong elements at %s", wrong, level_names[_i]);
    nn_gemm_set_level(-1);
}
END_TEST

/* Big enough to be split across threads (by rows, and by columns when M is
 * small) and to need several column blocks (N > nc = 512). The result must
 * not depend on the thread count: 1 and 2 threads give the same bits. */
START_TEST(threads_and_blocks_deterministic)
{
    if (!use_level(_i)) return;
    const struct problem list[] = {
        {0, 0, 157, 600, 300, 1.0f, 0.0f, 0, 0, 0, 301}, /* rows split, two column blocks */
        {0, 0, 20, 700, 150, 1.0f, 1.0f, 0, 0, 0, 302},  /* columns split, B in place */
        {1, 1, 45, 333, 200, 0.7f, 0.0f, 3, 1, 2, 303},  /* columns split, both transposed */
        {1, 0, 250, 70, 500, 1.0f, 1.0f, 0, 0, 0, 304},
    };
    long wrong = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        const struct problem *pr = &list[i];
        wrong += check_problem(pr);
        struct mat A = pr->ta ? mat_new(pr->K, pr->M, 0, 9) : mat_new(pr->M, pr->K, 0, 9);
        struct mat B = pr->tb ? mat_new(pr->N, pr->K, 0, 10) : mat_new(pr->K, pr->N, 0, 10);
        struct mat C1 = mat_new(pr->M, pr->N, 0, 11), C2 = mat_new(pr->M, pr->N, 0, 11);
        ck_assert_int_eq(nn_threads_set(1), NN_OK);
        nn_gemm(pr->ta, pr->tb, pr->M, pr->N, pr->K, pr->alpha, A.p, A.ld, B.p, B.ld, pr->beta, C1.p, C1.ld);
        ck_assert_int_eq(nn_threads_set(2), NN_OK);
        nn_gemm(pr->ta, pr->tb, pr->M, pr->N, pr->K, pr->alpha, A.p, A.ld, B.p, B.ld, pr->beta, C2.p, C2.ld);
        ck_assert_msg(!memcmp(C1.p, C2.p, (size_t)pr->M * pr->N * sizeof(float)),
                      "1 and 2 threads differ for M=%d N=%d K=%d at %s", pr->M, pr->N, pr->K, level_names[_i]);
        mat_free(&A);
        mat_free(&B);
        mat_free(&C1);
        mat_free(&C2);
    }
    ck_assert_int_eq(nn_threads_set(0), NN_OK);
    ck_assert_msg(wrong == 0, "%ld wrong elements at %s", wrong, level_names[_i]);
    nn_gemm_set_level(-1);
}
END_TEST

/* K == 0 and alpha == 0 only scale C by beta (beta == 0 clears NaN);
 * M == 0 or N == 0 touch nothing. */
START_TEST(degenerate_shapes)
{
    if (!use_level(_i)) return;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4};
    float c[4] = {NAN, NAN, NAN, NAN};
    nn_gemm(false, false, 2, 2, 0, 1.0f, a, 1, b, 2, 0.0f, c, 2);
    for (int i = 0; i < 4; i++) ck_assert(c[i] == 0.0f);
    float d[4] = {1, 2, 3, 4};
    nn_gemm(false, false, 2, 2, 2, 0.0f, a, 2, b, 2, 2.0f, d, 2);
    for (int i = 0; i < 4; i++) ck_assert(d[i] == 2.0f * (float)(i + 1));
    float e[4] = {NAN, NAN, NAN, NAN};
    nn_gemm(false, false, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, e, 2);
    nn_gemm(false, false, 2, 0, 2, 1.0f, a, 2, b, 2, 0.0f, e, 2);
    for (int i = 0; i < 4; i++) ck_assert(isnan(e[i]));
    nn_gemm_set_level(-1);
}
END_TEST

/* Two user threads call nn_gemm at once: one gets the pool, the other runs
 * inline; each must use its own packing buffers. */
struct concurrent {
    struct problem pr;
    long wrong;
};

static void *concurrent_main(void *arg)
{
    struct concurrent *c = arg;
    for (int r = 0; r < 3; r++) c->wrong += check_problem(&c->pr);
    nn_gemm_release_scratch();
    return NULL;
}

START_TEST(concurrent_callers)
{
    if (!use_level(_i)) return;
    struct concurrent work[2] = {
        {{0, 0, 180, 150, 260, 1.0f, 0.0f, 1, 0, 2, 401}, 0},
        {{1, 1, 150, 170, 300, -0.5f, 1.0f, 0, 2, 0, 402}, 0},
    };
    pthread_t tid[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&tid[i], NULL, concurrent_main, &work[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(tid[i], NULL);
    ck_assert_msg(work[0].wrong == 0 && work[1].wrong == 0, "%ld + %ld wrong elements at %s", work[0].wrong,
                  work[1].wrong, level_names[_i]);
    nn_gemm_set_level(-1);
}
END_TEST

Suite *suite_gemm(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, small_sizes_all_transposes, 0, 3);
    tcase_add_loop_test(tc, depth_block_boundaries, 0, 3);
    tcase_add_loop_test(tc, large_k_and_backward_shapes, 0, 3);
    tcase_add_loop_test(tc, threads_and_blocks_deterministic, 0, 3);
    tcase_add_loop_test(tc, degenerate_shapes, 0, 3);
    suite_add_tcase(s, tc);
    /* The concurrency tests, also run under ThreadSanitizer (CK_RUN_CASE=concurrency). */
    TCase *conc = tcase_create("concurrency");
    tcase_set_timeout(conc, 120);
    tcase_add_loop_test(conc, concurrent_callers, 0, 3);
    suite_add_tcase(s, conc);
    return s;
}
