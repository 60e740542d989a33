/* nn_gemm_lowp: a blocked, threaded driver over the per-level kernels of
 * ops/gemm_lowp_internal.h. B is packed once, at load time
 * (nn_lowp_pack_*), and read in place; A is converted while it is packed.
 *
 * Loops over one thread's rectangle of C (rows m0..m1, columns n0..n1):
 *   for each depth block pc (kc deep; int8: all of K)
 *     for each row block ic (mc rows)     A block converted and packed once (L2)
 *       for each column panel jr (32)     B panel kc x 32 read in place (L1/L2)
 *         for each row panel ir (mr)      kernel: C tile (+)= A panel x B panel,
 *                                         with the epilogue in the last block
 * kc and mc depend only on K and on the kernel set, never on the thread
 * count. Every element of C is summed by one thread, over k in the
 * definition's order (bf16 carries its float accumulator through C between
 * depth blocks, which loses nothing; int8 sums are exact), so results do not
 * depend on the thread count or the split, and equal nn_gemm_lowp_ref.
 *
 * Threads split C by row panels, or by column panels when M is small (batch
 * 1 on an 8 x 8 map: M = 64), so each thread reads only its part of B. */
#include "ops/gemm_lowp.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp_internal.h"

/* Splitting pays above ~1.5M multiply-adds (ops/gemm.c's measurement for
 * float32; low precision is faster per multiply-add, so this is generous). */
#define PARALLEL_MIN_MADDS (1L << 21)
#define SMALL_M_ROWS 64
/* bf16 depth block. Each block beyond the first re-reads and re-writes all
 * of C, which costs more than B panels falling out of L1 (the kernel needs
 * only 9 bytes of B per cycle, which L2 delivers): measured on Zen 5 (CPU
 * time, 1 thread, 2048^3), kc = 384 gave 231-259 GFLOP/s, 1024 290-308,
 * 2048 310-330, 4096 313-336. 2048 keeps Inception's 1x1 convs (K <= 2048)
 * in one block. */
#define KC_BF16 2048
/* A block: about this many bytes (half of Zen 5's 1 MB L2); 256 KB to 1 MB
 * measured within noise of each other. */
#define A_BLOCK_BYTES (512 * 1024)

/* ---- which kernels ---- */

bool nn_lowp_kernels_usable(const struct nn_lowp_kernels *k, enum nn_lowp type)
{
    if (k == &nn_lowp_kernels_scalar) return true;
    if (k == &nn_lowp_kernels_avx2) return nn_simd_level() >= NN_SIMD_AVX2;
    if (k == &nn_lowp_kernels_avx2_vnni)
        return nn_simd_level() >= NN_SIMD_AVX2 && (type == NN_LOWP_BF16 || nn_cpu_has_avx_vnni());
    if (k == &nn_lowp_kernels_avx512)
        return nn_simd_level() >= NN_SIMD_AVX512 &&
               (type == NN_LOWP_BF16 ? nn_cpu_has_avx512_bf16() : nn_cpu_has_avx512_vnni());
    return false;
}

const struct nn_lowp_kernels *nn_lowp_kernels_select(enum nn_lowp type)
{
    static const struct nn_lowp_kernels *const best_first[] = {
        &nn_lowp_kernels_avx512, &nn_lowp_kernels_avx2_vnni, &nn_lowp_kernels_avx2, &nn_lowp_kernels_scalar};
    for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++)
        if (nn_lowp_kernels_usable(best_first[i], type)) return best_first[i];
    return &nn_lowp_kernels_scalar;
}

const char *nn_gemm_lowp_kernel(enum nn_lowp type)
{
    const struct nn_lowp_kernels *k = nn_lowp_kernels_select(type);
    return type == NN_LOWP_BF16 ? k->bf16_name : k->int8_name;
}

/* ---- the blocked product ---- */

struct lowp_job {
    const struct nn_lowp_kernels *k;
    const struct nn_lowp_weights *B;
    int M, N, K;
    const float *A;
    const uint8_t *A8;  /* nn_gemm_lowp_u8's A (A is then NULL) */
    int lda, ldc;
    float a_inv_scale;
    float *C;
    const struct nn_gemm_epilogue *ep;
    int mr, kc, mc;     /* row panel, depth block, row block (a multiple of mr) */
    size_t a_panel;     /* bytes of one packed A panel of kc depths */
    bool split_n;
};

static int imin(int a, int b) { return a < b ? a : b; }

void nn_lowp_tile_epilogue(const struct nn_gemm_epilogue *ep, float *c, ptrdiff_t ldc, int m, int n)
{
    for (int i = 0; i < m; i++, c += ldc) {
        if (ep->scale)
            for (int j = 0; j < n; j++) c[j] *= ep->scale[j];
        if (ep->shift)
            for (int j = 0; j < n; j++) c[j] += ep->shift[j];
        if (ep->relu)
            for (int j = 0; j < n; j++) c[j] = c[j] > 0.0f ? c[j] : 0.0f;
    }
}

/* Rows m0..m1 and columns n0..n1 of C, on the calling thread. */
static void run_block(const struct lowp_job *j, int m0, int m1, int n0, int n1)
{
    const struct nn_lowp_kernels *k = j->k;
    const bool bf16 = j->B->type == NN_LOWP_BF16;
    const int mr = j->mr, NR = NN_LOWP_NR, kpad = j->B->kpad;
    const int rows = imin(j->mc, m1 - m0);
    const size_t panels = (size_t)(rows + mr - 1) / mr;
    unsigned char *a = nn_gemm_thread_lowp_buffer(panels * j->a_panel);
    if (!a) {
        /* No memory for the packing buffer: the definition still works. */
        if (j->A8) {
            nn_gemm_lowp_ref_cols_u8(m1 - m0, j->A8 + (ptrdiff_t)m0 * j->lda, j->lda, j->B,
                                     j->C + (ptrdiff_t)m0 * j->ldc, j->ldc, j->ep, n0, n1);
            return;
        }
        nn_gemm_lowp_ref_cols(m1 - m0, j->A + (ptrdiff_t)m0 * j->lda, j->lda, j->a_inv_scale, j->B,
                              j->C + (ptrdiff_t)m0 * j->ldc, j->ldc, j->ep, n0, n1);
        return;
    }
    struct nn_gemm_epilogue tile_ep = {NULL, NULL, j->ep && j->ep->relu};
    for (int pc = 0; pc < kpad; pc += j->kc) {
        const int kc = imin(j->kc, kpad - pc);
        const bool last = pc + kc == kpad;
        for (int ic = m0; ic < m1; ic += j->mc) {
            const int mb = imin(j->mc, m1 - ic);
            for (int ir = 0; ir < mb; ir += mr) {
                const ptrdiff_t src = (ptrdiff_t)(ic + ir) * j->lda + pc;
                void *dst = a + (size_t)(ir / mr) * j->a_panel;
                if (j->A8) k->pack_u8(imin(mr, mb - ir), kc, j->K - pc, j->A8 + src, j->lda, dst);
                else if (bf16) k->pack_bf16(imin(mr, mb - ir), kc, j->K - pc, j->A + src, j->lda, dst);
                else k->pack_int8(imin(mr, mb - ir), kc, j->K - pc, j->A + src, j->lda, j->a_inv_scale, dst);
            }
            for (int jr = n0; jr < n1; jr += NR) {
                const int n = imin(NR, n1 - jr);
                const size_t b_off = (size_t)(jr / NR) * kpad * NR + (size_t)pc * NR;
                for (int ir = 0; ir < mb; ir += mr) {
                    const int m = imin(mr, mb - ir);
                    float *c = j->C + (ptrdiff_t)(ic + ir) * j->ldc + jr;
                    const void *ap = a + (size_t)(ir / mr) * j->a_panel;
                    const struct nn_gemm_epilogue *ep = last && j->ep ? &tile_ep : NULL;
                    if (ep) {
                        tile_ep.scale = j->ep->scale ? j->ep->scale + jr : NULL;
                        tile_ep.shift = j->ep->shift ? j->ep->shift + jr : NULL;
                    }
                    if (bf16)
                        k->bf16(m, n, kc, ap, (const uint16_t *)j->B->data + b_off, c, j->ldc, pc > 0, ep);
                    else k->int8(m, n, kc, ap, (const int8_t *)j->B->data + b_off, c, j->ldc, ep);
                }
            }
        }
    }
}

static void lowp_task(void *ctx, long begin, long end)
{
    const struct lowp_job *j = ctx;
    if (j->split_n) run_block(j, 0, j->M, (int)begin * NN_LOWP_NR, imin((int)end * NN_LOWP_NR, j->N));
    else run_block(j, (int)begin * j->mr, imin((int)end * j->mr, j->M), 0, j->N);
}

/* Blocks, splits and runs a job whose operands are filled in. */
static void run_job(struct lowp_job job)
{
    const struct nn_lowp_kernels *k = job.k;
    const struct nn_lowp_weights *B = job.B;
    const int M = job.M;
    const bool bf16 = B->type == NN_LOWP_BF16;
    job.N = B->n;
    job.K = B->k;
    job.mr = bf16 ? k->mr_bf16 : k->mr_int8;
    /* Depth blocks: equal, multiples of 4, from K alone. int8 takes all of K
     * in one block: its int32 sums cannot pass through C. */
    const int kpad = B->kpad;
    if (bf16) {
        int blocks = (kpad + KC_BF16 - 1) / KC_BF16;
        job.kc = ((kpad + blocks - 1) / blocks + NN_LOWP_KGROUP - 1) / NN_LOWP_KGROUP * NN_LOWP_KGROUP;
    } else {
        job.kc = kpad;
    }
    const size_t elem = bf16 ? k->a_bytes_bf16 : k->a_bytes_int8;
    /* + 64: the SIMD packers' last store may run past the panel. */
    job.a_panel = ((size_t)job.mr * job.kc * elem + 63) / 64 * 64 + 64;
    int panels = (int)(A_BLOCK_BYTES / job.a_panel);
    panels = panels < 1 ? 1 : panels;
    job.mc = panels * job.mr;

    const long row_panels = (M + job.mr - 1) / job.mr, col_panels = (B->n + NN_LOWP_NR - 1) / NN_LOWP_NR;
    const int threads = nn_threads_get();
    if (threads < 2 || (double)M * B->n * B->k < (double)PARALLEL_MIN_MADDS || row_panels * col_panels < 2) {
        run_block(&job, 0, M, 0, B->n);
        return;
    }
    job.split_n = M <= SMALL_M_ROWS ? col_panels > 1 : row_panels < 2 * threads && col_panels >= 2 * threads;
    nn_parallel_for(job.split_n ? col_panels : row_panels, 1, lowp_task, &job);
}

void nn_gemm_lowp_with(const struct nn_lowp_kernels *k, int M, const float *A, int lda, float a_inv_scale,
                       const struct nn_lowp_weights *B, float *C, int ldc, const struct nn_gemm_epilogue *ep)
{
    if (M <= 0 || !B) return;
    run_job((struct lowp_job){.k = k, .B = B, .M = M, .A = A, .lda = lda, .ldc = ldc, .a_inv_scale = a_inv_scale,
                              .C = C, .ep = ep});
}

void nn_gemm_lowp_u8_with(const struct nn_lowp_kernels *k, int M, const uint8_t *A, int lda,
                          const struct nn_lowp_weights *B, float *C, int ldc, const struct nn_gemm_epilogue *ep)
{
    if (M <= 0 || !B || B->type != NN_LOWP_INT8) return;
    run_job((struct lowp_job){.k = k, .B = B, .M = M, .A8 = A, .lda = lda, .ldc = ldc, .C = C, .ep = ep});
}

void nn_gemm_lowp(int M, const float *A, int lda, float a_inv_scale, const struct nn_lowp_weights *B, float *C,
                  int ldc, const struct nn_gemm_epilogue *ep)
{
    if (!B || M <= 0) return;
    nn_gemm_lowp_with(nn_lowp_kernels_select(B->type), M, A, lda, a_inv_scale, B, C, ldc, ep);
}

void nn_gemm_lowp_u8(int M, const uint8_t *A, int lda, const struct nn_lowp_weights *B, float *C, int ldc,
                     const struct nn_gemm_epilogue *ep)
{
    if (!B || M <= 0 || B->type != NN_LOWP_INT8) return;
    nn_gemm_lowp_u8_with(nn_lowp_kernels_select(NN_LOWP_INT8), M, A, lda, B, C, ldc, ep);
}

/* ---- the activation quantiser ---- */

/* Values per pool task: ~128 KB of floats, enough to pay for the hand-off;
 * a multiple of 64 so every task but the last runs whole vectors. */
#define QUANTIZE_GRAIN 32768L

struct quantize_job {
    const struct nn_lowp_kernels *k;
    const float *a;
    float inv;
    uint8_t *q;
};

static void quantize_task(void *ctx, long begin, long end)
{
    const struct quantize_job *j = ctx;
    j->k->quantize((size_t)(end - begin), j->a + begin, j->inv, j->q + begin);
}

void nn_lowp_quantize_with(const struct nn_lowp_kernels *k, size_t n, const float *a, float a_inv_scale, uint8_t *q)
{
    if (n == 0) return;
    struct quantize_job j = {k, a, a_inv_scale, q};
    if (n <= (size_t)QUANTIZE_GRAIN || nn_threads_get() < 2) {
        quantize_task(&j, 0, (long)n);
        return;
    }
    nn_parallel_for((long)n, QUANTIZE_GRAIN, quantize_task, &j);
}

void nn_lowp_quantize(size_t n, const float *a, float a_inv_scale, uint8_t *q)
{
    /* Any set quantises the same; the int8 one is the widest usable here. */
    nn_lowp_quantize_with(nn_lowp_kernels_select(NN_LOWP_INT8), n, a, a_inv_scale, q);
}
