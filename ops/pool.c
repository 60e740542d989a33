#include "ops/pool.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/threads.h"

#define GRAIN_FLOATS 32768L
/* Channels handled at once by the max-pool backward (its stack arrays). */
#define CSUB 256

enum nn_status nn_pool_shape_init(struct nn_pool_shape *s, int n, int h, int w, int c, int kh, int kw, int stride,
                                  enum nn_padding pad)
{
    if (!s) return nn_fail(NN_ERR_ARG, "pool: NULL shape");
    if (n <= 0 || c <= 0) return nn_fail(NN_ERR_ARG, "pool: batch %d and channels %d must be positive", n, c);
    enum nn_status st = nn_window_geometry(h, kh, stride, pad, &s->oh, &s->pad_top);
    if (st == NN_OK) st = nn_window_geometry(w, kw, stride, pad, &s->ow, &s->pad_left);
    if (st != NN_OK) {
        char why[256]; /* nn_fail must not read the buffer it writes */
        snprintf(why, sizeof why, "%s", nn_last_error());
        return nn_fail(st, "pool: input %dx%d, window %dx%d, stride %d: %s", h, w, kh, kw, stride, why);
    }
    if ((long)kh * kw > INT_MAX / 2) return nn_fail(NN_ERR_UNSUPPORTED, "pool: window %dx%d is too large", kh, kw);
    s->n = n;
    s->h = h;
    s->w = w;
    s->c = c;
    s->kh = kh;
    s->kw = kw;
    s->stride = stride;
    return NN_OK;
}

/* The part of an output pixel's window that lies inside the input. With TF
 * padding every window holds at least one real input. */
struct window {
    int h0, h1, w0, w1;
};

static struct window window_at(const struct nn_pool_shape *s, int oh, int ow)
{
    struct window win;
    win.h0 = oh * s->stride - s->pad_top;
    win.w0 = ow * s->stride - s->pad_left;
    win.h1 = win.h0 + s->kh < s->h ? win.h0 + s->kh : s->h;
    win.w1 = win.w0 + s->kw < s->w ? win.w0 + s->kw : s->w;
    if (win.h0 < 0) win.h0 = 0;
    if (win.w0 < 0) win.w0 = 0;
    return win;
}

struct pool_job {
    float *dst;
    const float *a, *b, *c; /* per op: inputs */
    const struct nn_pool_shape *s;
};

static long row_grain(const struct nn_pool_shape *s)
{
    long per_row = (long)s->ow * s->kh * s->kw * s->c;
    return per_row >= GRAIN_FLOATS ? 1 : GRAIN_FLOATS / (per_row > 0 ? per_row : 1);
}

static long image_grain(const struct nn_pool_shape *s)
{
    long per_image = (long)s->oh * s->ow * s->kh * s->kw * s->c;
    return per_image >= GRAIN_FLOATS ? 1 : GRAIN_FLOATS / (per_image > 0 ? per_image : 1);
}

/* Forwards run over output rows (index n*OH + oh): they write disjoint outputs. */
static void maxpool_fwd_rows(void *ctx, long r0, long r1)
{
    const struct pool_job *j = ctx;
    const struct nn_pool_shape *s = j->s;
    const int C = s->c;
    for (long r = r0; r < r1; r++) {
        long n = r / s->oh;
        int oh = (int)(r % s->oh);
        const float *img = j->a + n * s->h * s->w * C;
        for (int ow = 0; ow < s->ow; ow++) {
            float *o = j->dst + (r * s->ow + ow) * C;
            struct window win = window_at(s, oh, ow);
            memcpy(o, img + ((long)win.h0 * s->w + win.w0) * C, (size_t)C * sizeof(float));
            for (int ih = win.h0; ih < win.h1; ih++)
                for (int iw = win.w0; iw < win.w1; iw++) {
                    const float *x = img + ((long)ih * s->w + iw) * C;
                    for (int c = 0; c < C; c++) o[c] = x[c] > o[c] ? x[c] : o[c];
                }
        }
    }
}

void nn_maxpool_forward(float *out, const float *in, const struct nn_pool_shape *s)
{
    struct pool_job j = {.dst = out, .a = in, .s = s};
    nn_parallel_for((long)s->n * s->oh, row_grain(s), maxpool_fwd_rows, &j);
}

/* Backwards run over images: overlapping windows add into the same inputs,
 * and no window crosses an image. */
static void maxpool_bwd_images(void *ctx, long n0, long n1)
{
    const struct pool_job *j = ctx;
    const struct nn_pool_shape *s = j->s;
    const int C = s->c;
    const long img_size = (long)s->h * s->w * C;
    float pending[CSUB];
    for (long n = n0; n < n1; n++) {
        const float *img = j->b + n * img_size;
        float *dimg = j->dst + n * img_size;
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                long o = ((n * s->oh + oh) * s->ow + ow) * C;
                struct window win = window_at(s, oh, ow);
                for (int c0 = 0; c0 < C; c0 += CSUB) {
                    int cn = C - c0 < CSUB ? C - c0 : CSUB;
                    const float *out = j->c + o + c0;
                    /* Each channel's gradient waits in `pending` until the
                     * first tap (row-major) equal to the max takes it all. */
                    memcpy(pending, j->a + o + c0, (size_t)cn * sizeof(float));
                    for (int ih = win.h0; ih < win.h1; ih++)
                        for (int iw = win.w0; iw < win.w1; iw++) {
                            long i = ((long)ih * s->w + iw) * C + c0;
                            const float *x = img + i;
                            float *dx = dimg + i;
                            for (int c = 0; c < cn; c++) { /* written so GCC vectorises it */
                                float p = pending[c];
                                dx[c] += x[c] == out[c] ? p : 0.0f;
                                pending[c] = x[c] == out[c] ? 0.0f : p;
                            }
                        }
                }
            }
    }
}

void nn_maxpool_backward(float *din, const float *dout, const float *in, const float *out,
                         const struct nn_pool_shape *s)
{
    struct pool_job j = {.dst = din, .a = dout, .b = in, .c = out, .s = s};
    nn_parallel_for(s->n, image_grain(s), maxpool_bwd_images, &j);
}

static void avgpool_fwd_rows(void *ctx, long r0, long r1)
{
    const struct pool_job *j = ctx;
    const struct nn_pool_shape *s = j->s;
    const int C = s->c;
    for (long r = r0; r < r1; r++) {
        long n = r / s->oh;
        int oh = (int)(r % s->oh);
        const float *img = j->a + n * s->h * s->w * C;
        for (int ow = 0; ow < s->ow; ow++) {
            float *o = j->dst + (r * s->ow + ow) * C;
            struct window win = window_at(s, oh, ow);
            memset(o, 0, (size_t)C * sizeof(float));
            for (int ih = win.h0; ih < win.h1; ih++)
                for (int iw = win.w0; iw < win.w1; iw++) {
                    const float *x = img + ((long)ih * s->w + iw) * C;
                    for (int c = 0; c < C; c++) o[c] += x[c];
                }
            float inv = 1.0f / (float)((win.h1 - win.h0) * (win.w1 - win.w0));
            for (int c = 0; c < C; c++) o[c] *= inv;
        }
    }
}

void nn_avgpool_forward(float *out, const float *in, const struct nn_pool_shape *s)
{
    struct pool_job j = {.dst = out, .a = in, .s = s};
    nn_parallel_for((long)s->n * s->oh, row_grain(s), avgpool_fwd_rows, &j);
}

static void avgpool_bwd_images(void *ctx, long n0, long n1)
{
    const struct pool_job *j = ctx;
    const struct nn_pool_shape *s = j->s;
    const int C = s->c;
    const long img_size = (long)s->h * s->w * C;
    for (long n = n0; n < n1; n++) {
        float *dimg = j->dst + n * img_size;
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                const float *g = j->a + ((n * s->oh + oh) * s->ow + ow) * C;
                struct window win = window_at(s, oh, ow);
                float inv = 1.0f / (float)((win.h1 - win.h0) * (win.w1 - win.w0));
                for (int ih = win.h0; ih < win.h1; ih++)
                    for (int iw = win.w0; iw < win.w1; iw++) {
                        float *dx = dimg + ((long)ih * s->w + iw) * C;
                        for (int c = 0; c < C; c++) dx[c] += g[c] * inv;
                    }
            }
    }
}

void nn_avgpool_backward(float *din, const float *dout, const struct nn_pool_shape *s)
{
    struct pool_job j = {.dst = din, .a = dout, .s = s};
    nn_parallel_for(s->n, image_grain(s), avgpool_bwd_images, &j);
}

/* Global average pooling: N*C outputs, small next to the HW*C inputs; one
 * image per task. */
struct gap_job {
    float *dst;
    const float *src;
    int HW, C;
};

static void gap_fwd_images(void *ctx, long n0, long n1)
{
    const struct gap_job *j = ctx;
    const int C = j->C;
    for (long n = n0; n < n1; n++) {
        float *o = j->dst + n * C;
        const float *x = j->src + n * j->HW * C;
        memset(o, 0, (size_t)C * sizeof(float));
        for (int p = 0; p < j->HW; p++)
            for (int c = 0; c < C; c++) o[c] += x[(long)p * C + c];
        float inv = 1.0f / (float)j->HW;
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void nn_global_avgpool_forward(float *out, const float *in, int N, int HW, int C)
{
    struct gap_job j = {out, in, HW, C};
    long per = (long)HW * C;
    nn_parallel_for(N, per >= GRAIN_FLOATS ? 1 : GRAIN_FLOATS / (per > 0 ? per : 1), gap_fwd_images, &j);
}

static void gap_bwd_images(void *ctx, long n0, long n1)
{
    const struct gap_job *j = ctx;
    const int C = j->C;
    const float inv = 1.0f / (float)j->HW;
    for (long n = n0; n < n1; n++) {
        const float *g = j->src + n * C;
        float *dx = j->dst + n * j->HW * C;
        for (int p = 0; p < j->HW; p++)
            for (int c = 0; c < C; c++) dx[(long)p * C + c] += g[c] * inv;
    }
}

void nn_global_avgpool_backward(float *din, const float *dout, int N, int HW, int C)
{
    struct gap_job j = {din, dout, HW, C};
    long per = (long)HW * C;
    nn_parallel_for(N, per >= GRAIN_FLOATS ? 1 : GRAIN_FLOATS / (per > 0 ? per : 1), gap_bwd_images, &j);
}
