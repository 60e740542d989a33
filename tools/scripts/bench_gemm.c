/* bench_gemm: GFLOP/s of nn_gemm against OpenBLAS's cblas_sgemm on the
 * shapes Inception-v3 produces (forward, and the transposed products of
 * backward) and a large square. Built and run by `make bench-gemm`, which
 * runs it with OPENBLAS_CORETYPE=Haswell and without (OpenBLAS reads the
 * variable when it loads, so one process sees one setting).
 *
 * The machine is shared: each shape is timed in interleaved rounds (nn, then
 * OpenBLAS) and the medians are reported, with their ratio.
 *
 * --cputime measures CPU seconds of the process divided by the thread count
 * instead of wall-clock seconds: time slices taken by other programs then do
 * not count, which makes tuning possible on a busy machine, but waiting for
 * the slowest thread (load imbalance) is not seen. Report wall-clock numbers.
 *
 * usage: bench_gemm [--threads T] [--rounds R] [--cputime] [--shape M,N,K,TA,TB]... */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_internal.h"

struct shape {
    int M, N, K, ta, tb;
    const char *what;
};

static const struct shape default_shapes[] = {
    {1225, 64, 288, 0, 0, "fwd 35x35 3x3 32->64, batch 1"},
    {289, 192, 1344, 0, 0, "fwd 17x17, batch 1"},
    {64, 384, 1152, 0, 0, "fwd 8x8 3x3, batch 1"},
    {22201, 64, 288, 0, 0, "fwd 147x147 3x3 32->64"},
    {39200, 192, 1728, 0, 0, "fwd 35x35 3x3 192, batch 32"},
    {9248, 192, 768, 0, 0, "fwd 17x17 1x1 768->192, batch 32"},
    {1, 1000, 2048, 0, 0, "fc, batch 1"},
    {32, 1000, 2048, 0, 0, "fc, batch 32"},
    {288, 64, 22201, 1, 0, "dW 3x3 32->64 (A^T)"},
    {1728, 192, 39200, 1, 0, "dW 3x3 192, batch 32 (A^T)"},
    {22201, 288, 64, 0, 1, "dX 3x3 32->64 (B^T)"},
    {39200, 1728, 192, 0, 1, "dX 3x3 192, batch 32 (B^T)"},
    {32, 2048, 1000, 0, 1, "fc dX, batch 32 (B^T)"},
    {2048, 1000, 32, 1, 0, "fc dW, batch 32 (A^T)"},
    {2048, 2048, 2048, 0, 0, "square"},
};

static clockid_t bench_clock = CLOCK_MONOTONIC;
static double time_scale = 1.0; /* 1 / threads with --cputime */

static double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return ((double)t.tv_sec + 1e-9 * (double)t.tv_nsec) * time_scale;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct operands {
    const struct shape *s;
    float *A, *B, *C;
    int lda, ldb, ldc;
};

static void run_once(const struct operands *o, int blas)
{
    const struct shape *s = o->s;
    if (blas)
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->M, s->N,
                    s->K, 1.0f, o->A, o->lda, o->B, o->ldb, 0.0f, o->C, o->ldc);
    else
        nn_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, o->A, o->lda, o->B, o->ldb, 0.0f, o->C, o->ldc);
}

/* Seconds per call, from enough calls to fill about 50 ms. */
static double time_calls(const struct operands *o, int blas)
{
    int calls = 0;
    double t0 = now(), t;
    do {
        run_once(o, blas);
        calls++;
        t = now() - t0;
    } while (t < 0.05);
    return t / calls;
}

static int bench_shape(const struct shape *s, int rounds)
{
    struct operands o = {.s = s};
    size_t a_rows = s->ta ? (size_t)s->K : (size_t)s->M, a_cols = s->ta ? (size_t)s->M : (size_t)s->K;
    size_t b_rows = s->tb ? (size_t)s->N : (size_t)s->K, b_cols = s->tb ? (size_t)s->K : (size_t)s->N;
    o.lda = (int)a_cols;
    o.ldb = (int)b_cols;
    o.ldc = s->N;
    o.A = nn_alloc(a_rows * a_cols * sizeof(float));
    o.B = nn_alloc(b_rows * b_cols * sizeof(float));
    o.C = nn_alloc((size_t)s->M * s->N * sizeof(float));
    if (!o.A || !o.B || !o.C) {
        fprintf(stderr, "bench_gemm: out of memory for %dx%dx%d\n", s->M, s->N, s->K);
        nn_free(o.A);
        nn_free(o.B);
        nn_free(o.C);
        return 1;
    }
    for (size_t i = 0; i < a_rows * a_cols; i++) o.A[i] = (float)((i * 7 + 3) % 13) / 13.0f - 0.5f;
    for (size_t i = 0; i < b_rows * b_cols; i++) o.B[i] = (float)((i * 5 + 1) % 11) / 11.0f - 0.5f;
    /* One untimed round: the first shape of a run otherwise pays for page
     * faults, thread start-up and clock ramp-up. */
    time_calls(&o, 0);
    time_calls(&o, 1);
    double t_nn[64], t_blas[64];
    for (int r = 0; r < rounds; r++) {
        t_nn[r] = time_calls(&o, 0);
        t_blas[r] = time_calls(&o, 1);
    }
    double flops = 2.0 * s->M * (double)s->N * s->K;
    double g_nn = flops / median(t_nn, rounds) * 1e-9, g_blas = flops / median(t_blas, rounds) * 1e-9;
    printf("%6d %5d %6d  %c%c  %8.1f %8.1f  %5.2f   %s\n", s->M, s->N, s->K, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N',
           g_nn, g_blas, g_nn / g_blas, s->what);
    fflush(stdout);
    nn_free(o.A);
    nn_free(o.B);
    nn_free(o.C);
    return 0;
}

int main(int argc, char **argv)
{
    int threads = 0, rounds = 5, nshapes = 0;
    struct shape custom[32];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--cputime")) {
            bench_clock = CLOCK_PROCESS_CPUTIME_ID;
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && nshapes < 32) {
            struct shape *s = &custom[nshapes];
            s->ta = s->tb = 0;
            s->what = "";
            if (sscanf(argv[++i], "%d,%d,%d,%d,%d", &s->M, &s->N, &s->K, &s->ta, &s->tb) < 3 || s->M < 1 ||
                s->N < 1 || s->K < 1) {
                fprintf(stderr, "bench_gemm: --shape wants M,N,K[,TA,TB], got %s\n", argv[i]);
                return 2;
            }
            nshapes++;
        } else {
            fprintf(stderr, "usage: bench_gemm [--threads T] [--rounds R] [--cputime] [--shape M,N,K,TA,TB]...\n");
            return 2;
        }
    }
    if (rounds < 1) rounds = 1;
    if (rounds > 64) rounds = 64;
    if (nn_threads_set(threads) != NN_OK) return 1;
    /* The library leaves OpenBLAS's thread count alone; a fair comparison
     * gives both sides the same number. */
    openblas_set_num_threads(nn_threads_get());
    if (bench_clock != CLOCK_MONOTONIC) time_scale = 1.0 / nn_threads_get();
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    printf("nn_gemm %s vs OpenBLAS %s (OPENBLAS_CORETYPE=%s), %d threads, median of %d rounds%s\n",
           nn_simd_name(nn_gemm_level()), openblas_get_corename(), coretype ? coretype : "(unset)",
           nn_threads_get(), rounds, bench_clock == CLOCK_MONOTONIC ? "" : ", per CPU-second");
    printf("%6s %5s %6s  %2s  %8s %8s  %5s\n", "M", "N", "K", "op", "nn GF/s", "BLAS", "ratio");
    const struct shape *list = nshapes ? custom : default_shapes;
    int n = nshapes ? nshapes : (int)(sizeof default_shapes / sizeof default_shapes[0]);
    int failed = 0;
    for (int i = 0; i < n; i++) failed |= bench_shape(&list[i], rounds);
    nn_gemm_release_scratch();
    nn_threads_shutdown();
    return failed;
}
