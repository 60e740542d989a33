#include "ops/im2col.h"

#include <string.h>

#include "base/threads.h"

/* Enough work per thread-pool task to pay for the hand-off. */
#define GRAIN_FLOATS 16384L

static long grain_for(long floats_per_item)
{
    long g = GRAIN_FLOATS / (floats_per_item > 0 ? floats_per_item : 1);
    return g > 0 ? g : 1;
}

/* One body for both element types: rows are moved as bytes (memcpy and
 * memset of runs of C elements), and zero bytes are both float 0 and the
 * quantised 0. */
struct im2col_job {
    unsigned char *col;
    const unsigned char *in; /* flat input row `row0` (row = W*C elements) */
    long row0;
    size_t elem;             /* bytes per element */
    const struct nn_conv_shape *s;
    long p0;
};

static void im2col_range(void *ctx, long begin, long end)
{
    const struct im2col_job *j = ctx;
    const struct nn_conv_shape *s = j->s;
    const int C = s->c, KH = s->kh, KW = s->kw, H = s->h, W = s->w;
    const size_t run = (size_t)C * j->elem, row_bytes = (size_t)KH * KW * run;
    for (long i = begin; i < end; i++) {
        long p = j->p0 + i;
        int ow = (int)(p % s->ow);
        long t = p / s->ow;
        int oh = (int)(t % s->oh);
        long n = t / s->oh;
        unsigned char *row = j->col + (size_t)i * row_bytes;
        int ih0 = oh * s->stride - s->pad_top, iw0 = ow * s->stride - s->pad_left;
        /* The taps kw in [lo, hi) land inside the row; for one kernel row they
         * are consecutive input pixels, so one memcpy moves them all. */
        int lo = iw0 < 0 ? -iw0 : 0;
        int hi = W - iw0 < KW ? W - iw0 : KW;
        if (hi < lo) hi = lo;
        for (int ki = 0; ki < KH; ki++) {
            unsigned char *dst = row + (size_t)ki * KW * run;
            int ih = ih0 + ki;
            if (ih < 0 || ih >= H || hi == lo) {
                memset(dst, 0, (size_t)KW * run);
                continue;
            }
            const long r = n * H + ih - j->row0; /* >= 0 for the rows the caller provides */
            if (lo > 0) memset(dst, 0, (size_t)lo * run);
            memcpy(dst + (size_t)lo * run, j->in + ((size_t)r * W + (size_t)(iw0 + lo)) * run, (size_t)(hi - lo) * run);
            if (hi < KW) memset(dst + (size_t)hi * run, 0, (size_t)(KW - hi) * run);
        }
    }
}

void nn_im2col(float *col, const float *in, const struct nn_conv_shape *s, long p0, long p1)
{
    struct im2col_job j = {(unsigned char *)col, (const unsigned char *)in, 0, sizeof(float), s, p0};
    nn_parallel_for(p1 - p0, grain_for((long)s->kh * s->kw * s->c), im2col_range, &j);
}

void nn_im2col_u8(uint8_t *col, const uint8_t *in, long row0, const struct nn_conv_shape *s, long p0, long p1)
{
    struct im2col_job j = {col, in, row0, 1, s, p0};
    /* Bytes: four times the elements of a float task for the same traffic. */
    nn_parallel_for(p1 - p0, grain_for((long)s->kh * s->kw * s->c / 4), im2col_range, &j);
}

struct col2im_job {
    float *din;
    const float *col;
    const struct nn_conv_shape *s;
    long p0, p1; /* output pixels held in col */
    long q0;     /* first input pixel of the range being gathered */
};

static void col2im_range(void *ctx, long begin, long end)
{
    const struct col2im_job *j = ctx;
    const struct nn_conv_shape *s = j->s;
    const int C = s->c, KW = s->kw, H = s->h, W = s->w, S = s->stride;
    const long kc = (long)s->kh * KW * C;
    for (long i = begin; i < end; i++) {
        long q = j->q0 + i;
        int iw = (int)(q % W);
        long t = q / W;
        int ih = (int)(t % H);
        long n = t / H;
        float *dst = j->din + q * C;
        /* Tap (ki, kj) of output pixel (oh, ow) reads this pixel when
         * oh*S - pad_top + ki == ih and ow*S - pad_left + kj == iw. */
        for (int ki = 0; ki < s->kh; ki++) {
            int th = ih + s->pad_top - ki;
            if (th < 0) break;
            if (th % S) continue;
            int oh = th / S;
            if (oh >= s->oh) continue;
            for (int kj = 0; kj < KW; kj++) {
                int tw = iw + s->pad_left - kj;
                if (tw < 0) break;
                if (tw % S) continue;
                int ow = tw / S;
                if (ow >= s->ow) continue;
                long p = (n * s->oh + oh) * s->ow + ow;
                if (p < j->p0 || p >= j->p1) continue;
                const float *src = j->col + (p - j->p0) * kc + ((long)ki * KW + kj) * C;
                for (int c = 0; c < C; c++) dst[c] += src[c];
            }
        }
    }
}

void nn_col2im_add(float *din, const float *col, const struct nn_conv_shape *s, long p0, long p1)
{
    if (p1 <= p0) return;
    /* The input pixels that output pixels [p0, p1) can touch: from the first
     * input row under the first output row to the last under the last. */
    long t0 = p0 / s->ow, t1 = (p1 - 1) / s->ow;
    long n0 = t0 / s->oh, n1 = t1 / s->oh;
    long r0 = (t0 % s->oh) * s->stride - s->pad_top;
    long r1 = (t1 % s->oh) * s->stride - s->pad_top + s->kh - 1;
    if (r0 < 0) r0 = 0;
    if (r1 > s->h - 1) r1 = s->h - 1;
    long q0 = (n0 * s->h + r0) * s->w;
    long q1 = (n1 * s->h + r1 + 1) * s->w;
    struct col2im_job j = {din, col, s, p0, p1, q0};
    nn_parallel_for(q1 - q0, grain_for((long)s->kh * s->kw * s->c), col2im_range, &j);
}
