/* The inference convolution: im2col + GEMM with batch norm and ReLU applied
 * to each output tile while it is in cache, written at any row stride. */
#include "ops/conv2d.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp.h"
#include "ops/im2col.h"
#include "ops/winograd.h"

void nn_conv2d_forward_fused(float *out, int ldo, const float *in, const float *w, const struct nn_conv_shape *s,
                             float *scratch, const struct nn_gemm_epilogue *ep)
{
    const long pixels = (long)s->n * s->oh * s->ow;
    const int kc = s->kh * s->kw * s->c;
    if (s->kh == 1 && s->kw == 1 && s->stride == 1) {
        nn_gemm_ex(false, false, (int)pixels, s->k, s->c, 1.0f, in, s->c, w, s->k, 0.0f, out, ldo, ep);
        return;
    }
    if (nn_winograd_applies(s)) {
        /* nn_conv2d_scratch_floats has room for the transformed weights. */
        nn_winograd_transform_weights(scratch, w, s->c, s->k);
        nn_conv2d_winograd_forward_ex(out, ldo, false, in, scratch, s, scratch + nn_winograd_weight_floats(s->c, s->k),
                                      nn_winograd_chunk_tiles(s), ep);
        return;
    }
    const long chunk = nn_conv2d_chunk_pixels(s);
    for (long p0 = 0; p0 < pixels; p0 += chunk) {
        long p1 = p0 + chunk < pixels ? p0 + chunk : pixels;
        nn_im2col(scratch, in, s, p0, p1);
        nn_gemm_ex(false, false, (int)(p1 - p0), s->k, kc, 1.0f, scratch, kc, w, s->k, 0.0f, out + p0 * ldo, ldo, ep);
    }
}

/* ---- int8: quantise once, im2col on bytes ----
 * Through float im2col, nn_gemm_lowp would quantise each input value once
 * per tap that reads it (9 times for a 3x3 conv) and move four bytes per
 * value. Instead each chunk of output pixels quantises the input rows its
 * patches read (nn_lowp_quantize), builds its im2col rows from those bytes
 * and hands them to nn_gemm_lowp_u8: the same quantised values, the same
 * exact sums, the same epilogue, so the same bits. Only the few rows that
 * neighbouring chunks share are quantised twice.
 * Both buffers live in the conv's planned scratch (nn_conv2d_scratch_floats
 * floats): the im2col bytes of one chunk first, then its input rows. */

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

/* The flat input rows (n * H + h, W*C values each) that the patches of
 * output pixels [p0, p1) read: [*r0, *r0 + the count returned). Pixels in
 * between lie between the first and the last in (n, oh) order, so their
 * rows do too. */
static long input_rows(const struct nn_conv_shape *s, long p0, long p1, long *r0)
{
    const long t0 = p0 / s->ow, t1 = (p1 - 1) / s->ow;
    long a = (t0 % s->oh) * s->stride - s->pad_top, b = (t1 % s->oh) * s->stride - s->pad_top + s->kh - 1;
    if (a < 0) a = 0;
    if (b > s->h - 1) b = s->h - 1;
    *r0 = t0 / s->oh * s->h + a;
    const long r1 = t1 / s->oh * s->h + b;
    return r1 >= *r0 ? r1 - *r0 + 1 : 0;
}

/* The largest chunk, starting from the float path's pixel count, whose
 * im2col bytes and input rows fit in `bytes`; 0 when none does (then the
 * float path runs). The check walks the chunks: a few hundred at most. */
static long u8_chunk(const struct nn_conv_shape *s, size_t bytes)
{
    const long pixels = (long)s->n * s->oh * s->ow;
    const size_t kc = (size_t)s->kh * s->kw * s->c, row = (size_t)s->w * s->c;
    for (long chunk = nn_conv2d_chunk_pixels(s); chunk >= 1; chunk /= 2) {
        const size_t col = round64((size_t)chunk * kc);
        if (col > bytes) continue;
        long most = 0;
        for (long p0 = 0; p0 < pixels; p0 += chunk) {
            long r0, rows = input_rows(s, p0, p0 + chunk < pixels ? p0 + chunk : pixels, &r0);
            most = rows > most ? rows : most;
        }
        if ((size_t)most <= (bytes - col) / row) return chunk;
    }
    return 0;
}

void nn_conv2d_forward_lowp(float *out, int ldo, const float *in, const struct nn_lowp_weights *w, float a_inv_scale,
                            const struct nn_conv_shape *s, float *scratch, const struct nn_gemm_epilogue *ep)
{
    const long pixels = (long)s->n * s->oh * s->ow;
    const int kc = s->kh * s->kw * s->c;
    if (s->kh == 1 && s->kw == 1 && s->stride == 1) {
        /* The input is A itself and each value is quantised once as the
         * GEMM packs it (a separate pass would only add traffic); there is
         * no scratch for these convs either. */
        nn_gemm_lowp((int)pixels, in, s->c, a_inv_scale, w, out, ldo, ep);
        return;
    }
    const long u8 = w->type == NN_LOWP_INT8 ? u8_chunk(s, nn_conv2d_scratch_floats(s) * sizeof(float)) : 0;
    if (u8 > 0) {
        uint8_t *col = (uint8_t *)scratch, *q = col + round64((size_t)u8 * kc);
        const size_t row = (size_t)s->w * s->c;
        for (long p0 = 0; p0 < pixels; p0 += u8) {
            long p1 = p0 + u8 < pixels ? p0 + u8 : pixels, r0;
            const long rows = input_rows(s, p0, p1, &r0);
            nn_lowp_quantize((size_t)rows * row, in + (size_t)r0 * row, a_inv_scale, q);
            nn_im2col_u8(col, q, r0, s, p0, p1);
            nn_gemm_lowp_u8((int)(p1 - p0), col, kc, w, out + p0 * ldo, ldo, ep);
        }
        return;
    }
    const long chunk = nn_conv2d_chunk_pixels(s);
    for (long p0 = 0; p0 < pixels; p0 += chunk) {
        long p1 = p0 + chunk < pixels ? p0 + chunk : pixels;
        nn_im2col(scratch, in, s, p0, p1);
        nn_gemm_lowp((int)(p1 - p0), scratch, kc, a_inv_scale, w, out + p0 * ldo, ldo, ep);
    }
}
