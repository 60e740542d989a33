/* Winograd F(2x2, 3x3): blocks of tiles, 16 GEMMs per block, and the
 * choice of where it beats im2col + GEMM. */
#include "ops/winograd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/log.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp.h"
#include "ops/winograd_internal.h"

/* A block's transformed inputs and products (16 * tiles * (C + K) floats)
 * stay within about a third of the 1 MB L2 of the cores nn runs on, so the
 * GEMMs read them, and the inverse transform reads the products, from L2. */
#define BLOCK_FLOATS (96L * 1024)
#define BLOCK_MIN_TILES 16L
#define BLOCK_MAX_TILES 128L
/* A chunk is several blocks, one pool round trip for all of them: about
 * 4 MB, like conv2d's im2col chunk. */
#define CHUNK_FLOATS (1L << 20)
/* Below this many tiles per thread a block's GEMMs get too few rows to run
 * well; the chunk then goes in three phases instead (all transforms, the 16
 * GEMMs spread over the threads, all inverse transforms). */
#define PHASE_MAX_TILES_PER_THREAD 32L
/* The zero row (padding taps) at the start of the scratch, rounded up to a
 * cache line so the blocks after it stay 64-byte aligned. */
#define ZERO_ROUND 16L

/* ---- on or off ---- */

static _Atomic int forced = -1; /* the test hook */
static _Atomic int env_mode = -1; /* -1: NN_WINOGRAD not read yet */

void nn_winograd_set_enabled(int on) { atomic_store(&forced, on < 0 ? -1 : on != 0); }

static bool enabled(void)
{
    int f = atomic_load(&forced);
    if (f >= 0) return f == 1;
    int mode = atomic_load(&env_mode);
    if (mode < 0) {
        const char *env = getenv("NN_WINOGRAD");
        mode = !(env && !strcmp(env, "0"));
        if (env && strcmp(env, "0") != 0 && strcmp(env, "1") != 0)
            nn_warn("NN_WINOGRAD=%s: expected 0 or 1; using Winograd", env);
        atomic_store(&env_mode, mode);
    }
    return mode == 1;
}

static _Atomic int forced_level = -1;

void nn_winograd_set_level(int level) { atomic_store(&forced_level, level); }

static const struct nn_winograd_kernels *kernels(void)
{
    enum nn_simd level = nn_simd_level();
    int f = atomic_load(&forced_level);
    if (f >= 0 && f < (int)level) level = (enum nn_simd)f;
    switch (level) {
    case NN_SIMD_AVX512: return &nn_winograd_kernels_avx512;
    case NN_SIMD_AVX2: return &nn_winograd_kernels_avx2;
    case NN_SIMD_SCALAR: break;
    }
    return &nn_winograd_kernels_generic;
}

/* ---- where it applies ---- */

bool nn_winograd_supports(const struct nn_conv_shape *s)
{
    return s->kh == 3 && s->kw == 3 && s->stride == 1;
}

static long tiles_of(const struct nn_conv_shape *s)
{
    return (long)s->n * ((s->oh + 1) / 2) * ((s->ow + 1) / 2);
}

/* Measured on Zen 4, one thread, CPU time (tools/scripts/bench_winograd.c):
 * with 16 or more input and output channels Winograd wins 1.4x to 2x; with
 * 8 it loses (0.4x to 0.7x: the transforms cost as much as the few
 * products). Every call transforms the weights, which a conv of fewer than
 * ~16 tiles does not win back (a 4x4 map at batch 1: 0.7x). */
#define MIN_CHANNELS 16
#define MIN_TILES 16L

bool nn_winograd_pays(const struct nn_conv_shape *s)
{
    return nn_winograd_supports(s) && s->c >= MIN_CHANNELS && s->k >= MIN_CHANNELS && tiles_of(s) >= MIN_TILES;
}

bool nn_winograd_applies(const struct nn_conv_shape *s) { return enabled() && nn_winograd_pays(s); }

/* ---- sizes ---- */

size_t nn_winograd_weight_floats(int c, int k) { return 16 * (size_t)c * (size_t)k; }

static long block_tiles(const struct nn_conv_shape *s)
{
    long b = BLOCK_FLOATS / (16L * (s->c + s->k));
    if (b < BLOCK_MIN_TILES) b = BLOCK_MIN_TILES;
    if (b > BLOCK_MAX_TILES) b = BLOCK_MAX_TILES;
    return b;
}

static size_t zero_floats(const struct nn_conv_shape *s)
{
    return (size_t)((s->c + ZERO_ROUND - 1) / ZERO_ROUND * ZERO_ROUND);
}

long nn_winograd_chunk_tiles(const struct nn_conv_shape *s)
{
    long chunk = CHUNK_FLOATS / (16L * (s->c + s->k)), tiles = tiles_of(s);
    if (chunk < BLOCK_MIN_TILES) chunk = BLOCK_MIN_TILES;
    return chunk < tiles ? chunk : tiles;
}

size_t nn_winograd_scratch_floats_chunked(const struct nn_conv_shape *s, long chunk_tiles)
{
    if (chunk_tiles < 1) chunk_tiles = 1;
    return zero_floats(s) + 16 * (size_t)chunk_tiles * (size_t)(s->c + s->k);
}

size_t nn_winograd_scratch_floats(const struct nn_conv_shape *s)
{
    return nn_winograd_scratch_floats_chunked(s, nn_winograd_chunk_tiles(s));
}

/* ---- weights ---- */

struct weight_job {
    const struct nn_winograd_kernels *kern;
    float *u;
    const float *w;
    int c, k;
};

static void weight_task(void *ctx, long begin, long end)
{
    const struct weight_job *j = ctx;
    j->kern->weights(j->u, j->w, j->c, j->k, (int)begin, (int)end);
}

void nn_winograd_transform_weights(float *u, const float *w, int c, int k)
{
    struct weight_job j = {kernels(), u, w, c, k};
    long grain = 65536L / (25L * k) + 1; /* reads 9 K-rows and writes 16 per channel */
    nn_parallel_for(c, grain, weight_task, &j);
}

/* ---- the convolution ----
 * A chunk's transformed inputs are 16 matrices [chunk, C] (matrix xi at
 * xi * chunk * C), its products 16 matrices [chunk, K] after them; a block
 * is a range of rows of all 32. */

struct conv_job {
    const struct nn_winograd_kernels *kern;
    struct nn_wino_geom geom;
    float *out;
    int ldo;
    bool accumulate;
    const float *in, *u, *zeros;
    const struct nn_lowp_weights *const *u_lowp; /* bf16: the 16 transformed matrices packed (u unused) */
    float *v, *m;             /* the chunk's transformed inputs and products */
    ptrdiff_t v_stride, m_stride;
    long t0, t1;              /* the chunk's tiles */
    long b;                   /* tiles per block (or per transform task) */
    const float *scale, *shift;
    bool relu;
    bool flip;                /* u is the forward conv's: use its rotation (dL/din) */
};

static void input_rows(const struct conv_job *j, long r0, long r1)
{
    j->kern->input(j->v + r0 * j->geom.s->c, j->v_stride, j->in, &j->geom, j->zeros, j->t0 + r0, (int)(r1 - r0));
}

/* Rotating a 3x3 filter by 180 degrees reverses the columns of G, which is
 * G with its first and last rows swapped: the transform of the rotated
 * filter is the transform of the filter with tile rows and columns 0 and 3
 * swapped. */
static int rotated(int xi)
{
    static const int p[4] = {3, 1, 2, 0};
    return 4 * p[xi / 4] + p[xi % 4];
}

static void gemm_rows(const struct conv_job *j, int xi, long r0, long r1)
{
    const int C = j->geom.s->c, K = j->geom.s->k;
    const float *a = j->v + xi * j->v_stride + r0 * C;
    float *m = j->m + xi * j->m_stride + r0 * K;
    if (j->u_lowp)
        nn_gemm_lowp((int)(r1 - r0), a, C, 0.0f, j->u_lowp[xi], m, K, NULL);
    else if (j->flip) /* u holds [K, C] matrices (the forward's [C', K']): use them transposed */
        nn_gemm(false, true, (int)(r1 - r0), K, C, 1.0f, a, C, j->u + (ptrdiff_t)rotated(xi) * C * K, C, 0.0f, m, K);
    else
        nn_gemm(false, false, (int)(r1 - r0), K, C, 1.0f, a, C, j->u + (ptrdiff_t)xi * C * K, K, 0.0f, m, K);
}

static void output_rows(const struct conv_job *j, long r0, long r1)
{
    j->kern->output(j->out, j->ldo, j->accumulate, j->m + r0 * j->geom.s->k, j->m_stride, &j->geom, j->t0 + r0,
                    (int)(r1 - r0), j->scale, j->shift, j->relu);
}

/* Blocks [begin, end) of the chunk, each from input to output. Inside a
 * pool task each GEMM runs on this thread alone. */
static void block_task(void *ctx, long begin, long end)
{
    const struct conv_job *j = ctx;
    const long rows = j->t1 - j->t0;
    for (long i = begin; i < end; i++) {
        long r0 = i * j->b, r1 = r0 + j->b < rows ? r0 + j->b : rows;
        if (r0 >= r1) break;
        input_rows(j, r0, r1);
        for (int xi = 0; xi < 16; xi++) gemm_rows(j, xi, r0, r1);
        output_rows(j, r0, r1);
    }
}

static void input_task(void *ctx, long begin, long end) { input_rows(ctx, begin, end); }
static void output_task(void *ctx, long begin, long end) { output_rows(ctx, begin, end); }

static void gemm_task(void *ctx, long begin, long end)
{
    const struct conv_job *j = ctx;
    for (long xi = begin; xi < end; xi++) gemm_rows(j, (int)xi, 0, j->t1 - j->t0);
}

static void run(float *out, int ldo, bool accumulate, const float *in, const float *u,
                const struct nn_lowp_weights *const *u_lowp, bool flip, const struct nn_conv_shape *s, float *scratch,
                long chunk_tiles, const struct nn_gemm_epilogue *ep)
{
    if (chunk_tiles < 1) chunk_tiles = 1;
    const size_t nz = zero_floats(s);
    memset(scratch, 0, nz * sizeof(float));
    struct conv_job j = {
        .kern = kernels(),
        .geom = {s, (s->oh + 1) / 2, (s->ow + 1) / 2},
        .out = out, .ldo = ldo, .accumulate = accumulate,
        .in = in, .u = u, .u_lowp = u_lowp, .zeros = scratch,
        .v = scratch + nz, .m = scratch + nz + 16 * chunk_tiles * s->c,
        .v_stride = (ptrdiff_t)chunk_tiles * s->c, .m_stride = (ptrdiff_t)chunk_tiles * s->k,
        .scale = ep ? ep->scale : NULL, .shift = ep ? ep->shift : NULL, .relu = ep && ep->relu, .flip = flip,
    };
    const long tiles = tiles_of(s), threads = nn_threads_get();
    const long per_block = block_tiles(s);
    for (long t0 = 0; t0 < tiles; t0 += chunk_tiles) {
        j.t0 = t0;
        j.t1 = t0 + chunk_tiles < tiles ? t0 + chunk_tiles : tiles;
        const long rows = j.t1 - t0;
        if (threads > 1 && rows < PHASE_MAX_TILES_PER_THREAD * threads) {
            j.b = (rows + threads - 1) / threads;
            nn_parallel_for(rows, j.b, input_task, &j);
            nn_parallel_for(16, 1, gemm_task, &j);
            nn_parallel_for(rows, j.b, output_task, &j);
            continue;
        }
        /* Blocks of about per_block tiles, as many for every thread. */
        long blocks = (rows + per_block - 1) / per_block;
        blocks = (blocks + threads - 1) / threads * threads;
        j.b = (rows + blocks - 1) / blocks;
        nn_parallel_for((rows + j.b - 1) / j.b, 1, block_task, &j);
    }
}

void nn_conv2d_winograd_forward_ex(float *out, int ldo, bool accumulate, const float *in, const float *u,
                                   const struct nn_conv_shape *s, float *scratch, long chunk_tiles,
                                   const struct nn_gemm_epilogue *ep)
{
    run(out, ldo, accumulate, in, u, NULL, false, s, scratch, chunk_tiles, ep);
}

void nn_conv2d_winograd_forward_lowp(float *out, int ldo, const float *in, const struct nn_lowp_weights *const u[16],
                                     const struct nn_conv_shape *s, float *scratch, const struct nn_gemm_epilogue *ep)
{
    run(out, ldo, false, in, NULL, u, false, s, scratch, nn_winograd_chunk_tiles(s), ep);
}

void nn_conv2d_winograd_forward(float *out, const float *in, const float *u, const struct nn_conv_shape *s,
                                float *scratch)
{
    run(out, s->k, false, in, u, NULL, false, s, scratch, nn_winograd_chunk_tiles(s), NULL);
}

/* ---- dL/din ---- */

void nn_winograd_backward_shape(struct nn_conv_shape *bs, const struct nn_conv_shape *s)
{
    *bs = *s;
    bs->h = s->oh;
    bs->w = s->ow;
    bs->c = s->k;
    bs->k = s->c;
    bs->oh = s->h;
    bs->ow = s->w;
    bs->pad_top = 2 - s->pad_top;
    bs->pad_left = 2 - s->pad_left;
}

bool nn_winograd_backward_pays(const struct nn_conv_shape *s)
{
    struct nn_conv_shape bs;
    if (!nn_winograd_supports(s)) return false;
    nn_winograd_backward_shape(&bs, s);
    return nn_winograd_pays(&bs);
}

bool nn_winograd_backward_applies(const struct nn_conv_shape *s) { return enabled() && nn_winograd_backward_pays(s); }

long nn_winograd_backward_chunk_tiles(const struct nn_conv_shape *s)
{
    struct nn_conv_shape bs;
    nn_winograd_backward_shape(&bs, s);
    return nn_winograd_chunk_tiles(&bs);
}

size_t nn_winograd_backward_scratch_floats_chunked(const struct nn_conv_shape *s, long chunk_tiles)
{
    struct nn_conv_shape bs;
    nn_winograd_backward_shape(&bs, s);
    return nn_winograd_scratch_floats_chunked(&bs, chunk_tiles);
}

size_t nn_winograd_backward_scratch_floats(const struct nn_conv_shape *s)
{
    return nn_winograd_backward_scratch_floats_chunked(s, nn_winograd_backward_chunk_tiles(s));
}

void nn_conv2d_winograd_backward_input_chunked(float *din, const float *dout, const float *u,
                                               const struct nn_conv_shape *s, float *scratch, long chunk_tiles)
{
    struct nn_conv_shape bs;
    nn_winograd_backward_shape(&bs, s);
    run(din, bs.k, true, dout, u, NULL, true, &bs, scratch, chunk_tiles, NULL);
}

void nn_conv2d_winograd_backward_input(float *din, const float *dout, const float *u, const struct nn_conv_shape *s,
                                       float *scratch)
{
    nn_conv2d_winograd_backward_input_chunked(din, dout, u, s, scratch, nn_winograd_backward_chunk_tiles(s));
}
