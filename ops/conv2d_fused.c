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

void nn_conv2d_forward_lowp(float *out, int ldo, const float *in, const struct nn_lowp_weights *w, float a_inv_scale,
                            const struct nn_conv_shape *s, float *scratch, const struct nn_gemm_epilogue *ep)
{
    const long pixels = (long)s->n * s->oh * s->ow;
    const int kc = s->kh * s->kw * s->c;
    if (s->kh == 1 && s->kw == 1 && s->stride == 1) {
        nn_gemm_lowp((int)pixels, in, s->c, a_inv_scale, w, out, ldo, ep);
        return;
    }
    const long chunk = nn_conv2d_chunk_pixels(s);
    for (long p0 = 0; p0 < pixels; p0 += chunk) {
        long p1 = p0 + chunk < pixels ? p0 + chunk : pixels;
        nn_im2col(scratch, in, s, p0, p1);
        nn_gemm_lowp((int)(p1 - p0), scratch, kc, a_inv_scale, w, out + p0 * ldo, ldo, ep);
    }
}
