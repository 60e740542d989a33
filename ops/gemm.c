/* nn_gemm: a Goto/BLIS-style blocked SGEMM over the per-level kernels of
 * ops/gemm_internal.h, split across the engine's thread pool.
 *
 * Loop nest of one thread's rectangle of C (rows m0..m1, columns n0..n1):
 *   for each column block jc (<= nc columns)
 *     for each depth block pc (<= kc)            B block kc x nc packed, L2-resident
 *       for each row panel ir (mr rows)          A panel mr x kc packed, L1-resident
 *         for each column panel jr (nr columns)  kernel: C tile += A panel * B panel
 * The depth blocks are the same for every thread and every C element is
 * computed by one thread in one order, so results do not depend on the
 * thread count. */
#include "ops/gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/threads.h"
#include "ops/gemm_internal.h"

/* Below this many multiply-adds waking the pool costs more than it saves. */
#define PARALLEL_MIN_MADDS (1L << 18)
/* With at most this many row panels of A, full-width panels of an
 * untransposed B are read in place instead of packed: each B element is used
 * so few times that copying it would cost more than it saves. */
#define INPLACE_B_MAX_PANELS 2

/* ---- which implementation ---- */

static _Atomic int forced_level = -1;
static _Atomic int openblas_mode = -1; /* -1: NN_GEMM not read yet */

void nn_gemm_set_level(int level) { atomic_store(&forced_level, level); }

enum nn_simd nn_gemm_level(void)
{
    enum nn_simd cap = nn_simd_level();
    int forced = atomic_load(&forced_level);
    if (forced >= 0 && forced < (int)cap) return (enum nn_simd)forced;
    return cap;
}

static bool use_openblas(void)
{
    int mode = atomic_load(&openblas_mode);
    if (mode < 0) {
        const char *env = getenv("NN_GEMM");
        mode = env && !strcmp(env, "openblas");
        if (env && !mode && strcmp(env, "nn") != 0) nn_warn("NN_GEMM=%s: expected nn or openblas; using nn", env);
        atomic_store(&openblas_mode, mode);
    }
    return mode == 1;
}

static const struct nn_gemm_kernels *kernels_for(enum nn_simd level)
{
    switch (level) {
    case NN_SIMD_AVX512: return &nn_gemm_kernels_avx512;
    case NN_SIMD_AVX2: return &nn_gemm_kernels_avx2;
    case NN_SIMD_SCALAR: break;
    }
    return &nn_gemm_kernels_scalar;
}

/* ---- per-thread packing buffers ----
 * Each thread that runs GEMM work (pool workers, and any caller thread, which
 * runs the work itself when the pool is busy) owns its buffers, so
 * concurrent nn_gemm calls never share one. They grow to the largest block
 * seen and are kept: a pool worker's are freed when the worker exits (the
 * pthread key's destructor); a caller thread frees its own with
 * nn_gemm_release_scratch(). */

struct scratch {
    float *a, *b, *edge;
    size_t a_cap, b_cap, edge_cap; /* floats */
};

static _Thread_local struct scratch *tls_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_destroy(void *p)
{
    struct scratch *s = p;
    if (!s) return;
    nn_free(s->a);
    nn_free(s->b);
    nn_free(s->edge);
    free(s);
}

static void scratch_make_key(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0; }

static struct scratch *scratch_get(void)
{
    if (tls_scratch) return tls_scratch;
    pthread_once(&scratch_once, scratch_make_key);
    struct scratch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (scratch_key_ok) pthread_setspecific(scratch_key, s);
    tls_scratch = s;
    return s;
}

void nn_gemm_release_scratch(void)
{
    struct scratch *s = tls_scratch;
    if (!s) return;
    tls_scratch = NULL;
    if (scratch_key_ok) pthread_setspecific(scratch_key, NULL);
    scratch_destroy(s);
}

static bool grow(float **buf, size_t *cap, size_t floats)
{
    if (*cap >= floats) return true;
    nn_free(*buf);
    *buf = nn_alloc(floats * sizeof(float));
    *cap = *buf ? floats : 0;
    return *buf != NULL;
}

/* ---- the blocked product ---- */

struct gemm_job {
    const struct nn_gemm_kernels *kern;
    bool trans_a, trans_b;
    int M, N, K;
    int kc;         /* depth block, the same for all threads */
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    bool pack_b;    /* false: read full-width panels of an untransposed B in place */
    bool split_n;   /* parallel tasks are column panels, not row panels */
};

static int imin(int a, int b) { return a < b ? a : b; }

/* When the packing buffers cannot be had, this rectangle goes to OpenBLAS. */
static void block_fallback(const struct gemm_job *j, int m0, int m1, int n0, int n1)
{
    static atomic_flag warned = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&warned)) nn_warn("nn_gemm: no memory for packing buffers; using OpenBLAS");
    const float *a = j->A + (j->trans_a ? (ptrdiff_t)m0 : (ptrdiff_t)m0 * j->lda);
    const float *b = j->B + (j->trans_b ? (ptrdiff_t)n0 * j->ldb : (ptrdiff_t)n0);
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans, j->trans_b ? CblasTrans : CblasNoTrans,
                m1 - m0, n1 - n0, j->K, j->alpha, a, j->lda, b, j->ldb, j->beta, j->C + (ptrdiff_t)m0 * j->ldc + n0,
                j->ldc);
}

static void run_block(const struct gemm_job *j, int m0, int m1, int n0, int n1)
{
    const struct nn_gemm_kernels *kn = j->kern;
    const int mr = kn->mr, nr = kn->nr;
    /* op(A)[i][p] = A[i * a_rs + p * a_cs], op(B)[p][n] = B[p * b_rs + n * b_cs] */
    const ptrdiff_t a_rs = j->trans_a ? 1 : j->lda, a_cs = j->trans_a ? j->lda : 1;
    const ptrdiff_t b_rs = j->trans_b ? 1 : j->ldb, b_cs = j->trans_b ? j->ldb : 1;

    /* Equal column blocks of at most nc, rounded up to whole panels. */
    int cols = n1 - n0, nblocks = (cols + kn->nc - 1) / kn->nc;
    int ncb = ((cols + nblocks - 1) / nblocks + nr - 1) / nr * nr;

    struct scratch *s = scratch_get();
    if (!s || !grow(&s->a, &s->a_cap, (size_t)mr * j->kc + 16) ||
        !grow(&s->b, &s->b_cap, j->pack_b ? (size_t)j->kc * ncb : 1) ||
        !grow(&s->edge, &s->edge_cap, (size_t)j->kc * nr)) {
        block_fallback(j, m0, m1, n0, n1);
        return;
    }

    for (int jc = n0; jc < n1; jc += ncb) {
        const int nc = imin(ncb, n1 - jc);
        const int full = nc / nr * nr; /* columns in whole panels */
        for (int pc = 0; pc < j->K; pc += j->kc) {
            const int kc = imin(j->kc, j->K - pc);
            const float beta = pc == 0 ? j->beta : 1.0f;
            const float *bsrc = j->B + pc * b_rs + jc * b_cs;
            if (j->pack_b) kn->pack_b(kc, nc, bsrc, b_rs, b_cs, s->b);
            else if (full < nc) kn->pack_b(kc, nc - full, bsrc + full, b_rs, b_cs, s->edge);
            for (int ir = m0; ir < m1; ir += mr) {
                const int m = imin(mr, m1 - ir);
                kn->pack_a(m, kc, j->A + ir * a_rs + pc * a_cs, a_rs, a_cs, s->a);
                float *c = j->C + (ptrdiff_t)ir * j->ldc + jc;
                for (int jr = 0; jr < nc; jr += nr) {
                    const float *bp = s->edge;
                    ptrdiff_t step = nr;
                    if (j->pack_b) {
                        bp = s->b + (ptrdiff_t)(jr / nr) * kc * nr;
                    } else if (jr < full) {
                        bp = bsrc + jr;
                        step = b_rs;
                    }
                    kn->kernel(m, imin(nr, nc - jr), kc, s->a, bp, step, c + jr, j->ldc, j->alpha, beta);
                }
            }
        }
    }
}

static void gemm_task(void *ctx, long begin, long end)
{
    const struct gemm_job *j = ctx;
    if (j->split_n) {
        const int nr = j->kern->nr;
        run_block(j, 0, j->M, (int)begin * nr, imin((int)end * nr, j->N));
    } else {
        const int mr = j->kern->mr;
        run_block(j, (int)begin * mr, imin((int)end * mr, j->M), 0, j->N);
    }
}

/* Fraction of the threads' time spent working when `tasks` equal tasks are
 * split the way nn_parallel_for does (contiguous chunks of ceil(tasks / t)). */
static double balance(long tasks, int threads)
{
    long chunks = tasks < threads ? tasks : threads;
    long chunk = (tasks + chunks - 1) / chunks;
    return (double)tasks / ((double)threads * (double)chunk);
}

/* C = beta * C, for K == 0 or alpha == 0; beta == 0 does not read C. */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
    if (beta == 1.0f) return;
    for (int i = 0; i < M; i++) {
        float *c = C + (ptrdiff_t)i * ldc;
        if (beta == 0.0f) {
            for (int n = 0; n < N; n++) c[n] = 0.0f;
        } else {
            for (int n = 0; n < N; n++) c[n] *= beta;
        }
    }
}

void nn_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (use_openblas()) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N,
                    K > 0 ? K : 0, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    const struct nn_gemm_kernels *kn = kernels_for(nn_gemm_level());
    struct gemm_job job = {
        .kern = kn, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .alpha = alpha, .beta = beta, .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .C = C,
    };
    /* Equal depth blocks of at most kc: a short last block would pay the
     * C tile's load and store for little work. */
    int kblocks = (K + kn->kc - 1) / kn->kc;
    job.kc = (K + kblocks - 1) / kblocks;
    long row_panels = (M + kn->mr - 1) / kn->mr, col_panels = (N + kn->nr - 1) / kn->nr;
    job.pack_b = trans_b || row_panels > INPLACE_B_MAX_PANELS;

    int threads = nn_threads_get();
    if (threads < 2 || (double)M * N * K < (double)PARALLEL_MIN_MADDS || row_panels * col_panels < 2) {
        run_block(&job, 0, M, 0, N);
        return;
    }
    /* Split rows (each thread packs all of B once, amortised over its rows)
     * unless splitting columns balances clearly better, as for small M. */
    job.split_n = balance(col_panels, threads) > balance(row_panels, threads) + 0.05;
    nn_parallel_for(job.split_n ? col_panels : row_panels, 1, gemm_task, &job);
}
