#include "ops/conv2d.h"

#include <limits.h>
#include <stdio.h>

#include "ops/gemm.h"
#include "ops/im2col.h"
#include "ops/winograd.h"

/* im2col rows per chunk: about 4 MB, so a chunk stays in the last-level cache
 * between im2col writing it and the GEMM reading it, with enough rows for
 * GEMM to run at full speed. */
#define CHUNK_FLOATS (1L << 20)
#define CHUNK_MIN_PIXELS 32L
#define CHUNK_MAX_PIXELS 4096L

enum nn_status nn_window_geometry(int in, int kernel, int stride, enum nn_padding pad, int *out, int *pad_before)
{
    if (in <= 0 || kernel <= 0 || stride <= 0)
        return nn_fail(NN_ERR_ARG, "window: size %d, kernel %d and stride %d must be positive", in, kernel, stride);
    if (pad == NN_PAD_VALID) {
        if (kernel > in) return nn_fail(NN_ERR_SHAPE, "window: VALID kernel %d is larger than the input %d", kernel, in);
        *out = (in - kernel) / stride + 1; /* = ceil((in - kernel + 1) / stride) */
        *pad_before = 0;
    } else if (pad == NN_PAD_SAME) {
        *out = (in - 1) / stride + 1; /* = ceil(in / stride) */
        long total = (long)(*out - 1) * stride + kernel - in;
        if (total < 0) total = 0;
        *pad_before = (int)(total / 2);
    } else {
        return nn_fail(NN_ERR_ARG, "window: unknown padding mode %d", (int)pad);
    }
    return NN_OK;
}

enum nn_status nn_conv_shape_init(struct nn_conv_shape *s, int n, int h, int w, int c, int k, int kh, int kw,
                                  int stride, enum nn_padding pad)
{
    if (!s) return nn_fail(NN_ERR_ARG, "conv2d: NULL shape");
    if (n <= 0 || c <= 0 || k <= 0)
        return nn_fail(NN_ERR_ARG, "conv2d: batch %d, channels %d and filters %d must be positive", n, c, k);
    enum nn_status st = nn_window_geometry(h, kh, stride, pad, &s->oh, &s->pad_top);
    if (st == NN_OK) st = nn_window_geometry(w, kw, stride, pad, &s->ow, &s->pad_left);
    if (st != NN_OK) {
        char why[256]; /* nn_fail must not read the buffer it writes */
        snprintf(why, sizeof why, "%s", nn_last_error());
        return nn_fail(st, "conv2d: input %dx%d, kernel %dx%d, stride %d: %s", h, w, kh, kw, stride, why);
    }
    /* GEMM takes int sizes: pixel counts and the im2col row length must fit. */
    if ((long)n * h * w > INT_MAX || (long)n * s->oh * s->ow > INT_MAX || (long)kh * kw * c > INT_MAX / 2)
        return nn_fail(NN_ERR_UNSUPPORTED, "conv2d: %dx%dx%dx%d with a %dx%d kernel is too large", n, h, w, c, kh, kw);
    s->n = n;
    s->h = h;
    s->w = w;
    s->c = c;
    s->k = k;
    s->kh = kh;
    s->kw = kw;
    s->stride = stride;
    return NN_OK;
}

static int pointwise(const struct nn_conv_shape *s) { return s->kh == 1 && s->kw == 1 && s->stride == 1; }

static long row_len(const struct nn_conv_shape *s) { return (long)s->kh * s->kw * s->c; }

long nn_conv2d_chunk_pixels(const struct nn_conv_shape *s)
{
    long chunk = CHUNK_FLOATS / row_len(s);
    if (chunk < CHUNK_MIN_PIXELS) chunk = CHUNK_MIN_PIXELS;
    if (chunk > CHUNK_MAX_PIXELS) chunk = CHUNK_MAX_PIXELS;
    long pixels = (long)s->n * s->oh * s->ow;
    return chunk < pixels ? chunk : pixels;
}

size_t nn_conv2d_scratch_floats(const struct nn_conv_shape *s)
{
    if (pointwise(s)) return 0;
    size_t floats = (size_t)nn_conv2d_chunk_pixels(s) * (size_t)row_len(s);
    /* Winograd's part: the transformed weights, then its blocks. Counted
     * even when NN_WINOGRAD=0, so the switch can never make a conv overrun
     * a scratch planned before it was read. */
    const size_t u = nn_winograd_weight_floats(s->c, s->k);
    if (nn_winograd_pays(s) && u + nn_winograd_scratch_floats(s) > floats) floats = u + nn_winograd_scratch_floats(s);
    if (nn_winograd_backward_pays(s) && u + nn_winograd_backward_scratch_floats(s) > floats)
        floats = u + nn_winograd_backward_scratch_floats(s);
    return floats;
}

void nn_conv2d_forward_chunked(float *out, const float *in, const float *w, const struct nn_conv_shape *s,
                               float *scratch, long chunk)
{
    const long pixels = (long)s->n * s->oh * s->ow;
    const int kc = (int)row_len(s);
    if (pointwise(s)) {
        /* NHWC input already is the [pixels, C] im2col matrix. */
        nn_gemm(false, false, (int)pixels, s->k, s->c, 1.0f, in, s->c, w, s->k, 0.0f, out, s->k);
        return;
    }
    if (chunk < 1) chunk = 1;
    for (long p0 = 0; p0 < pixels; p0 += chunk) {
        long p1 = p0 + chunk < pixels ? p0 + chunk : pixels;
        nn_im2col(scratch, in, s, p0, p1);
        nn_gemm(false, false, (int)(p1 - p0), s->k, kc, 1.0f, scratch, kc, w, s->k, 0.0f, out + p0 * s->k, s->k);
    }
}

void nn_conv2d_backward_chunked(float *din, float *dw, const float *dout, const float *in, const float *w,
                                const struct nn_conv_shape *s, float *scratch, long chunk)
{
    const long pixels = (long)s->n * s->oh * s->ow;
    const int kc = (int)row_len(s);
    if (pointwise(s)) {
        if (dw) nn_gemm(true, false, s->c, s->k, (int)pixels, 1.0f, in, s->c, dout, s->k, 1.0f, dw, s->k);
        if (din) nn_gemm(false, true, (int)pixels, s->c, s->k, 1.0f, dout, s->k, w, s->k, 1.0f, din, s->c);
        return;
    }
    if (chunk < 1) chunk = 1;
    for (long p0 = 0; p0 < pixels; p0 += chunk) {
        long p1 = p0 + chunk < pixels ? p0 + chunk : pixels;
        int rows = (int)(p1 - p0);
        const float *dout_chunk = dout + p0 * s->k;
        if (dw) {
            nn_im2col(scratch, in, s, p0, p1);
            nn_gemm(true, false, kc, s->k, rows, 1.0f, scratch, kc, dout_chunk, s->k, 1.0f, dw, s->k);
        }
        if (din) {
            /* The im2col rows are no longer needed: reuse them for dCol. */
            nn_gemm(false, true, rows, kc, s->k, 1.0f, dout_chunk, s->k, w, s->k, 0.0f, scratch, kc);
            nn_col2im_add(din, scratch, s, p0, p1);
        }
    }
}

void nn_conv2d_forward(float *out, const float *in, const float *w, const struct nn_conv_shape *s, float *scratch)
{
    if (nn_winograd_applies(s)) {
        /* No place to keep transformed weights between calls: redo them
         * (16 C K floats, little next to the conv). */
        nn_winograd_transform_weights(scratch, w, s->c, s->k);
        nn_conv2d_winograd_forward(out, in, scratch, s, scratch + nn_winograd_weight_floats(s->c, s->k));
        return;
    }
    nn_conv2d_forward_chunked(out, in, w, s, scratch, nn_conv2d_chunk_pixels(s));
}

void nn_conv2d_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                        const struct nn_conv_shape *s, float *scratch)
{
    if (din && nn_winograd_backward_applies(s)) {
        /* dW first, while the scratch is free for its im2col rows; then din
         * as the rotated conv, with the weights transformed (they change
         * every step) at the start of the scratch. */
        if (dw) nn_conv2d_backward_chunked(NULL, dw, dout, in, w, s, scratch, nn_conv2d_chunk_pixels(s));
        nn_winograd_transform_weights(scratch, w, s->c, s->k);
        nn_conv2d_winograd_backward_input(din, dout, scratch, s, scratch + nn_winograd_weight_floats(s->c, s->k));
        return;
    }
    nn_conv2d_backward_chunked(din, dw, dout, in, w, s, scratch, nn_conv2d_chunk_pixels(s));
}
