/* nn_gemm: a Goto/BLIS-style blocked SGEMM over the per-level kernels of
 * ops/gemm_internal.h, split across the engine's thread pool.
 *
 * Two loop orders over one thread's rectangle of C (rows m0..m1, columns
 * n0..n1), both over the same depth blocks pc (<= kc deep):
 * - rows_outer, for M > 64 (convolutions):
 *     for each column block jc (<= nc)  B block kc x nc packed once
 *       for each depth block pc
 *         for each row panel ir (mr)    A panel mr x kc packed, stays in L1
 *           for each column panel jr    kernel: C tile (+)= A panel * B panel
 * - cols_outer, for M <= 64 (fully connected layers, 8x8 maps at batch 1):
 *     for each depth block pc           all of A's rows packed (a few panels)
 *       for each column panel jr        B panel read in place (or packed alone)
 *         for each row panel ir         kernel
 * Every C element is computed by one thread, in one order that depends only
 * on K, so results do not depend on the thread count or on the split.
 *
 * Threads split C by row panels, or by column panels when M is small or that
 * balances clearly better; never along K. */
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
#include "ops/gemm_lowp_internal.h"

/* A round trip through the pool costs about 9 us here, the time of ~450K
 * multiply-adds on one core; splitting pays clearly (>= 25%) above ~1.5M. */
#define PARALLEL_MIN_MADDS (1L << 21)
/* Up to this many rows, cols_outer: B is read once, mostly in place. */
#define SMALL_M_ROWS 64

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
    if (atomic_load(&forced_level) >= 0) return false; /* the tests' hook asks for nn's kernels */
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
    float *a, *b;
    size_t a_cap, b_cap; /* floats */
    void *lowp;          /* nn_gemm_lowp's converted A blocks (nn_gemm_thread_lowp_buffer) */
    size_t lowp_cap;     /* bytes */
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
    nn_free(s->lowp);
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

void *nn_gemm_thread_lowp_buffer(size_t bytes)
{
    struct scratch *s = scratch_get();
    if (!s) return NULL;
    if (s->lowp_cap < bytes) {
        nn_free(s->lowp);
        s->lowp = nn_alloc(bytes);
        s->lowp_cap = s->lowp ? bytes : 0;
    }
    return s->lowp;
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
    int nc;         /* largest column block */
    float alpha, beta;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    const struct nn_gemm_epilogue *ep; /* applied to each tile after its last depth block */
    bool small_m;   /* few rows: loop over B panels outside (cols_outer) */
    bool split_n;   /* parallel tasks are column panels, not row panels */
};

static int imin(int a, int b) { return a < b ? a : b; }

/* Floats of one packed A panel, with the slack the SIMD packers need. */
static ptrdiff_t a_panel_floats(const struct gemm_job *j) { return (ptrdiff_t)j->kern->mr * j->kc + 16; }

/* Equal column blocks of at most nc, rounded up to whole panels. */
static int column_block(const struct gemm_job *j, int cols)
{
    const int nr = j->kern->nr, nblocks = (cols + j->nc - 1) / j->nc;
    return ((cols + nblocks - 1) / nblocks + nr - 1) / nr * nr;
}

/* The epilogue on rows [0, m) and columns [j0, j0 + n) of C (c points at
 * column j0 of the first row). */
static void epilogue(const struct nn_gemm_epilogue *ep, float *c, ptrdiff_t ldc, int m, int n, int j0)
{
    const float *scale = ep->scale ? ep->scale + j0 : NULL, *shift = ep->shift ? ep->shift + j0 : NULL;
    for (int i = 0; i < m; i++, c += ldc) {
        if (scale)
            for (int j = 0; j < n; j++) c[j] *= scale[j];
        if (shift)
            for (int j = 0; j < n; j++) c[j] += shift[j];
        if (ep->relu)
            for (int j = 0; j < n; j++) c[j] = c[j] > 0.0f ? c[j] : 0.0f;
    }
}

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
    if (j->ep) epilogue(j->ep, j->C + (ptrdiff_t)m0 * j->ldc + n0, j->ldc, m1 - m0, n1 - n0, n0);
}

/* Large M. For each column block and depth block, B is packed once (the
 * block is re-read from L2/L3 for every row panel); each A panel is packed
 * and multiplied by every B panel of the block while it stays in L1. */
static void rows_outer(const struct gemm_job *j, struct scratch *s, int m0, int m1, int n0, int n1)
{
    const struct nn_gemm_kernels *kn = j->kern;
    const int mr = kn->mr, nr = kn->nr;
    const ptrdiff_t a_rs = j->trans_a ? 1 : j->lda, a_cs = j->trans_a ? j->lda : 1;
    const ptrdiff_t b_rs = j->trans_b ? 1 : j->ldb, b_cs = j->trans_b ? j->ldb : 1;
    const int ncb = column_block(j, n1 - n0);
    for (int jc = n0; jc < n1; jc += ncb) {
        const int nc = imin(ncb, n1 - jc);
        for (int pc = 0; pc < j->K; pc += j->kc) {
            const int kc = imin(j->kc, j->K - pc);
            const float beta = pc == 0 ? j->beta : 1.0f;
            kn->pack_b(kc, nc, j->B + pc * b_rs + jc * b_cs, b_rs, b_cs, s->b);
            for (int ir = m0; ir < m1; ir += mr) {
                const int m = imin(mr, m1 - ir);
                kn->pack_a(m, kc, j->A + ir * a_rs + pc * a_cs, a_rs, a_cs, s->a);
                float *c = j->C + (ptrdiff_t)ir * j->ldc + jc;
                for (int jr = 0; jr < nc; jr += nr) {
                    kn->kernel(m, imin(nr, nc - jr), kc, s->a, s->b + (ptrdiff_t)(jr / nr) * kc * nr, nr, c + jr,
                               j->ldc, j->alpha, beta);
                    if (j->ep && pc + kc == j->K) epilogue(j->ep, c + jr, j->ldc, m, imin(nr, nc - jr), jc + jr);
                }
            }
        }
    }
}

/* Small M. All rows of A for a depth block are packed once (a few panels,
 * L2-resident); then each B panel is fetched once, read in place when B is
 * untransposed and the panel full-width, else packed alone, and multiplied
 * by every row panel while it stays in cache. B, the big operand here, is
 * read from memory once and never copied whole. */
static void cols_outer(const struct gemm_job *j, struct scratch *s, int m0, int m1, int n0, int n1)
{
    const struct nn_gemm_kernels *kn = j->kern;
    const int mr = kn->mr, nr = kn->nr;
    const ptrdiff_t a_rs = j->trans_a ? 1 : j->lda, a_cs = j->trans_a ? j->lda : 1;
    const ptrdiff_t b_rs = j->trans_b ? 1 : j->ldb, b_cs = j->trans_b ? j->ldb : 1;
    const ptrdiff_t a_panel = a_panel_floats(j);
    for (int pc = 0; pc < j->K; pc += j->kc) {
        const int kc = imin(j->kc, j->K - pc);
        const float beta = pc == 0 ? j->beta : 1.0f;
        for (int ir = m0; ir < m1; ir += mr)
            kn->pack_a(imin(mr, m1 - ir), kc, j->A + ir * a_rs + pc * a_cs, a_rs, a_cs,
                       s->a + (ir - m0) / mr * a_panel);
        for (int jr = n0; jr < n1; jr += nr) {
            const int n = imin(nr, n1 - jr);
            const float *bp = j->B + pc * b_rs + jr * b_cs;
            ptrdiff_t step = b_rs;
            if (j->trans_b || n < nr) {
                kn->pack_b(kc, n, bp, b_rs, b_cs, s->b);
                bp = s->b;
                step = nr;
            }
            /* With several row panels the kernels spend long enough on this
             * B panel to hide fetching the next; the hardware prefetcher
             * does not follow rows that far apart in time. */
            if (!j->trans_b && m1 - m0 > mr && jr + nr < n1) {
                const float *next = j->B + pc * b_rs + jr + nr;
                const int last = imin(nr, n1 - jr - nr) - 1;
                for (int p = 0; p < kc; p++) {
                    __builtin_prefetch(next + p * b_rs);
                    __builtin_prefetch(next + p * b_rs + last);
                }
            }
            for (int ir = m0; ir < m1; ir += mr) {
                float *c = j->C + (ptrdiff_t)ir * j->ldc + jr;
                kn->kernel(imin(mr, m1 - ir), n, kc, s->a + (ir - m0) / mr * a_panel, bp, step, c, j->ldc, j->alpha,
                           beta);
                if (j->ep && pc + kc == j->K) epilogue(j->ep, c, j->ldc, imin(mr, m1 - ir), n, jr);
            }
        }
    }
}

static void run_block(const struct gemm_job *j, int m0, int m1, int n0, int n1)
{
    const struct nn_gemm_kernels *kn = j->kern;
    const size_t row_panels = (size_t)(m1 - m0 + kn->mr - 1) / kn->mr;
    const size_t a_floats = (j->small_m ? row_panels : 1) * (size_t)a_panel_floats(j);
    const size_t b_floats = (size_t)j->kc * (j->small_m ? kn->nr : column_block(j, n1 - n0));
    struct scratch *s = scratch_get();
    if (!s || !grow(&s->a, &s->a_cap, a_floats) || !grow(&s->b, &s->b_cap, b_floats)) {
        block_fallback(j, m0, m1, n0, n1);
        return;
    }
    if (j->small_m) cols_outer(j, s, m0, m1, n0, n1);
    else rows_outer(j, s, m0, m1, n0, n1);
}

/* One contiguous run of panels per thread (nn_parallel_for's split). A
 * dynamic schedule (several tasks per thread taken from a counter) measured
 * no better here, even with a busy loop pinned to one core: the OS shares
 * the cores fairly among all runnable threads, so the halves stay balanced;
 * and every task would re-pack its own copy of the other operand. */
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
    nn_gemm_ex(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

/* A small C over a very deep product (the weight gradient of a 1x1 conv:
 * [C_in x C_out] summed over every pixel of the batch) has too few panels
 * to keep two threads busy. Such products are cut along K into pieces whose
 * number depends on K alone, computed in parallel into private partial
 * results and summed in a fixed order: the result is the same for any thread
 * count. */
#define DEEP_MAX_OUTPUT (160 * 160)
#define DEEP_MIN_K 16384
#define DEEP_PIECE_K 8192
#define DEEP_MAX_PIECES 16

struct deep_job {
    const struct gemm_job *base;
    int pieces;
    float *partial; /* pieces * M * N */
};

static void deep_task(void *ctx, long begin, long end)
{
    const struct deep_job *d = ctx;
    const struct gemm_job *b = d->base;
    for (long p = begin; p < end; p++) {
        int k0 = (int)((long)b->K * p / d->pieces), k1 = (int)((long)b->K * (p + 1) / d->pieces);
        struct gemm_job j = *b;
        j.K = k1 - k0;
        j.A = b->A + (b->trans_a ? (ptrdiff_t)k0 * b->lda : k0);
        j.B = b->B + (b->trans_b ? k0 : (ptrdiff_t)k0 * b->ldb);
        j.C = d->partial + (size_t)p * b->M * b->N;
        j.ldc = b->N;
        j.beta = 0.0f;
        j.ep = NULL;
        run_block(&j, 0, j.M, 0, j.N);
    }
}

/* Returns false (nothing done) when the partial results cannot be allocated. */
static bool deep_product(const struct gemm_job *job)
{
    int pieces = job->K / DEEP_PIECE_K;
    if (pieces > DEEP_MAX_PIECES) pieces = DEEP_MAX_PIECES;
    size_t mn = (size_t)job->M * job->N;
    struct deep_job d = {job, pieces, nn_alloc((size_t)pieces * mn * sizeof(float))};
    if (!d.partial) return false;
    nn_parallel_for(pieces, 1, deep_task, &d);
    for (int i = 0; i < job->M; i++) {
        float *c = job->C + (ptrdiff_t)i * job->ldc;
        for (int jj = 0; jj < job->N; jj++) {
            float sum = 0.0f;
            for (int p = 0; p < pieces; p++) sum += d.partial[(size_t)p * mn + (size_t)i * job->N + jj];
            c[jj] = job->beta == 0.0f ? sum : job->beta * c[jj] + sum;
        }
    }
    if (job->ep) epilogue(job->ep, job->C, job->ldc, job->M, job->N, 0);
    nn_free(d.partial);
    return true;
}

void nn_gemm_ex(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc, const struct nn_gemm_epilogue *ep)
{
    if (M <= 0 || N <= 0) return;
    if (use_openblas() || K <= 0 || alpha == 0.0f) {
        if (use_openblas())
            cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M,
                        N, K > 0 ? K : 0, alpha, A, lda, B, ldb, beta, C, ldc);
        else scale_c(M, N, beta, C, ldc);
        if (ep) epilogue(ep, C, ldc, M, N, 0);
        return;
    }
    const struct nn_gemm_kernels *kn = kernels_for(nn_gemm_level());
    struct gemm_job job = {
        .kern = kn, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .alpha = alpha, .beta = beta, .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .C = C, .ep = ep,
    };
    /* Equal depth blocks of at most kc: a short last block would pay the
     * C tile's load and store for little work. */
    int kblocks = (K + kn->kc - 1) / kn->kc;
    job.kc = (K + kblocks - 1) / kblocks;
    job.nc = kn->nc;
    long row_panels = (M + kn->mr - 1) / kn->mr, col_panels = (N + kn->nr - 1) / kn->nr;
    job.small_m = M <= SMALL_M_ROWS;

    int threads = nn_threads_get();
    if ((long)M * N <= DEEP_MAX_OUTPUT && K >= DEEP_MIN_K && deep_product(&job)) return;
    if (threads < 2 || (double)M * N * K < (double)PARALLEL_MIN_MADDS || row_panels * col_panels < 2) {
        run_block(&job, 0, M, 0, N);
        return;
    }
    /* Split rows (each thread packs all of B once, amortised over its rows)
     * unless splitting columns balances clearly better; for small M split
     * columns, so that each thread reads only its part of the big B. */
    if (job.small_m) job.split_n = col_panels > 1;
    else job.split_n = balance(col_panels, threads) > balance(row_panels, threads) + 0.05;
    nn_parallel_for(job.split_n ? col_panels : row_panels, 1, gemm_task, &job);
}
