/* The Winograd F(2x2, 3x3) transforms, written once over a vector of WV
 * floats (GCC vector extensions) and compiled per instruction set: the
 * including file defines WV (4, 8 or 16) and WINO_KERNELS (the name of the
 * struct nn_winograd_kernels it provides). Every transform works on one
 * channel vector at a time, the same arithmetic in every lane, so the
 * channels (contiguous in NHWC and in the transformed layouts) are the
 * vector lanes and the result does not depend on WV.
 *
 *   B^T = | 1  0 -1  0 |    G = | 1    0    0   |    A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
 *         | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |        | 0    0    1   | */
#include <string.h>

#include "ops/winograd_internal.h"

#if !defined(WV) || !defined(WINO_KERNELS)
#error "define WV and WINO_KERNELS before including ops/winograd_body.h"
#endif

typedef float vec __attribute__((vector_size(WV * sizeof(float))));
typedef int ivec __attribute__((vector_size(WV * sizeof(int))));

#define INLINE static inline __attribute__((always_inline))

INLINE vec load(const float *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE void store(float *p, vec v) { memcpy(p, &v, sizeof v); }

/* The last, partial vector of a row: lanes n.. are zero. */
INLINE vec load_part(const float *p, int n)
{
    vec v = {0};
    memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}

INLINE void store_part(float *p, vec v, int n) { memcpy(p, &v, (size_t)n * sizeof(float)); }

/* Loads the first n <= WV floats (n == WV: one whole vector; inlined with
 * a constant n, the test disappears). */
INLINE vec load_n(const float *p, int n) { return n == WV ? load(p) : load_part(p, n); }

INLINE void store_n(float *p, vec v, int n)
{
    if (n == WV) store(p, v);
    else store_part(p, v, n);
}

/* One channel vector of one tile: src[4i + j] is input tap (i, j), and
 * dst + q * xi_stride receives (B^T d B)[q]. Loaded by columns so that at most
 * 16 vectors are live. */
INLINE void input_tile(float *dst, ptrdiff_t xi_stride, const float *const src[16], int c, int n)
{
    vec t[16];
    for (int j = 0; j < 4; j++) {
        vec d0 = load_n(src[j] + c, n), d1 = load_n(src[4 + j] + c, n);
        vec d2 = load_n(src[8 + j] + c, n), d3 = load_n(src[12 + j] + c, n);
        t[0 + j] = d0 - d2;
        t[4 + j] = d1 + d2;
        t[8 + j] = d2 - d1;
        t[12 + j] = d1 - d3;
    }
    for (int i = 0; i < 16; i += 4) {
        store_n(dst + (i + 0) * xi_stride + c, t[i + 0] - t[i + 2], n);
        store_n(dst + (i + 1) * xi_stride + c, t[i + 1] + t[i + 2], n);
        store_n(dst + (i + 2) * xi_stride + c, t[i + 2] - t[i + 1], n);
        store_n(dst + (i + 3) * xi_stride + c, t[i + 1] - t[i + 3], n);
    }
}

/* One channel vector of one tile's products -> y = A^T m A, y[2a + b] =
 * output (a, b). */
INLINE void output_tile(vec y[4], const float *src, ptrdiff_t xi_stride, int c, int n)
{
    vec t[8];
    for (int j = 0; j < 4; j++) {
        vec m0 = load_n(src + (0 + j) * xi_stride + c, n), m1 = load_n(src + (4 + j) * xi_stride + c, n);
        vec m2 = load_n(src + (8 + j) * xi_stride + c, n), m3 = load_n(src + (12 + j) * xi_stride + c, n);
        t[0 + j] = m0 + m1 + m2;
        t[4 + j] = m1 - m2 - m3;
    }
    for (int a = 0; a < 2; a++) {
        y[2 * a + 0] = t[4 * a + 0] + t[4 * a + 1] + t[4 * a + 2];
        y[2 * a + 1] = t[4 * a + 1] - t[4 * a + 2] - t[4 * a + 3];
    }
}

/* g[3i + j] (one 3x3 filter) -> u = G g G^T. The halvings are exact. */
INLINE void weight_transform(vec u[16], const vec g[9])
{
    vec t[12];
    for (int j = 0; j < 3; j++) {
        t[0 + j] = g[0 + j];
        t[3 + j] = 0.5f * (g[0 + j] + g[3 + j] + g[6 + j]);
        t[6 + j] = 0.5f * (g[0 + j] - g[3 + j] + g[6 + j]);
        t[9 + j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = t[3 * i + 0];
        u[4 * i + 1] = 0.5f * (t[3 * i + 0] + t[3 * i + 1] + t[3 * i + 2]);
        u[4 * i + 2] = 0.5f * (t[3 * i + 0] - t[3 * i + 1] + t[3 * i + 2]);
        u[4 * i + 3] = t[3 * i + 2];
    }
}

/* Walks tiles in order: image n, tile row ty, tile column tx. */
struct tile_pos {
    long n;
    int ty, tx;
};

static struct tile_pos tile_at(const struct nn_wino_geom *g, long tile)
{
    struct tile_pos p;
    p.tx = (int)(tile % g->tiles_w);
    long r = tile / g->tiles_w;
    p.ty = (int)(r % g->tiles_h);
    p.n = r / g->tiles_h;
    return p;
}

INLINE void tile_next(const struct nn_wino_geom *g, struct tile_pos *p)
{
    if (++p->tx < g->tiles_w) return;
    p->tx = 0;
    if (++p->ty < g->tiles_h) return;
    p->ty = 0;
    p->n++;
}

static void input_tiles(float *v, ptrdiff_t xi_stride, const float *in, const struct nn_wino_geom *g,
                        const float *zeros, long t0, int nt)
{
    const struct nn_conv_shape *s = g->s;
    const int C = s->c, H = s->h, W = s->w;
    struct tile_pos p = tile_at(g, t0);
    for (int t = 0; t < nt; t++, tile_next(g, &p)) {
        const float *img = in + p.n * H * W * C;
        const int ih0 = 2 * p.ty - s->pad_top, iw0 = 2 * p.tx - s->pad_left;
        /* Taps outside the image read the zero row: no branches below. */
        const float *src[16];
        for (int i = 0; i < 4; i++) {
            const int ih = ih0 + i;
            const bool row_in = ih >= 0 && ih < H;
            for (int j = 0; j < 4; j++) {
                const int iw = iw0 + j;
                src[4 * i + j] = row_in && iw >= 0 && iw < W ? img + ((ptrdiff_t)ih * W + iw) * C : zeros;
            }
        }
        float *dst = v + (ptrdiff_t)t * C;
        int c = 0;
        for (; c + WV <= C; c += WV) input_tile(dst, xi_stride, src, c, WV);
        if (c < C) input_tile(dst, xi_stride, src, c, C - c);
    }
}

/* One vector of outputs: accumulate, affine, ReLU, store the valid ones. */
INLINE void finish(float *const dst[4], vec y[4], int c, int n, bool accumulate, const float *scale,
                   const float *shift, bool relu)
{
    vec sc = {0}, sh = {0};
    if (scale) sc = load_n(scale + c, n);
    if (shift) sh = load_n(shift + c, n);
    const vec zero = {0};
    for (int q = 0; q < 4; q++) {
        if (!dst[q]) continue;
        vec o = y[q];
        if (accumulate) o += load_n(dst[q] + c, n);
        if (scale) o *= sc;
        if (shift) o += sh;
        if (relu) o = (vec)((ivec)o & (o > zero));
        store_n(dst[q] + c, o, n);
    }
}

static void output_tiles(float *out, int ldo, bool accumulate, const float *m, ptrdiff_t xi_stride,
                         const struct nn_wino_geom *g, long t0, int nt, const float *scale, const float *shift,
                         bool relu)
{
    const struct nn_conv_shape *s = g->s;
    const int K = s->k, OH = s->oh, OW = s->ow;
    struct tile_pos p = tile_at(g, t0);
    for (int t = 0; t < nt; t++, tile_next(g, &p)) {
        const int oh0 = 2 * p.ty, ow0 = 2 * p.tx;
        float *dst[4];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                bool inside = oh0 + a < OH && ow0 + b < OW;
                dst[2 * a + b] = inside ? out + ((p.n * OH + oh0 + a) * OW + ow0 + b) * (ptrdiff_t)ldo : NULL;
            }
        const float *src = m + (ptrdiff_t)t * K;
        vec y[4];
        int k = 0;
        for (; k + WV <= K; k += WV) {
            output_tile(y, src, xi_stride, k, WV);
            finish(dst, y, k, WV, accumulate, scale, shift, relu);
        }
        if (k < K) {
            output_tile(y, src, xi_stride, k, K - k);
            finish(dst, y, k, K - k, accumulate, scale, shift, relu);
        }
    }
}

/* One channel vector of one filter: g + q * tap is tap q (row q / 3, column
 * q % 3), dst + q * plane receives (G g G^T)[q]. */
INLINE void weight_vec(float *dst, ptrdiff_t plane, const float *g, ptrdiff_t tap, int k, int n)
{
    vec x[9], r[16];
    for (int q = 0; q < 9; q++) x[q] = load_n(g + q * tap + k, n);
    weight_transform(r, x);
    for (int q = 0; q < 16; q++) store_n(dst + q * plane + k, r[q], n);
}

static void weight_rows(float *u, const float *w, int C, int K, int c0, int c1)
{
    const ptrdiff_t tap = (ptrdiff_t)C * K, plane = (ptrdiff_t)C * K;
    for (int c = c0; c < c1; c++) {
        const float *g = w + (ptrdiff_t)c * K;
        float *dst = u + (ptrdiff_t)c * K;
        int k = 0;
        for (; k + WV <= K; k += WV) weight_vec(dst, plane, g, tap, k, WV);
        if (k < K) weight_vec(dst, plane, g, tap, k, K - k);
    }
}

const struct nn_winograd_kernels WINO_KERNELS = {input_tiles, output_tiles, weight_rows};
