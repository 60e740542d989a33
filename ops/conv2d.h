/* 2-D convolution without bias (batch norm follows every conv in Inception).
 *
 * Layouts: input NHWC [N, H, W, C], weights HWIO [KH, KW, C, K], output NHWC
 * [N, OH, OW, K]. With these a convolution is im2col (one row of KH*KW*C
 * values per output pixel) followed by one GEMM against the weights seen as a
 * [KH*KW*C, K] matrix, and a 1x1 stride-1 conv needs no im2col at all: the
 * input already is the [N*H*W, C] matrix.
 *
 * Padding follows TensorFlow: VALID gives OH = ceil((H - KH + 1) / S); SAME
 * gives OH = ceil(H / S) with total padding max((OH-1)*S + KH - H, 0), of which
 * the smaller half goes on top (left) and the rest at the bottom (right). */
#ifndef NN_OPS_CONV2D_H
#define NN_OPS_CONV2D_H

#include <stddef.h>

#include "base/status.h"

enum nn_padding { NN_PAD_VALID, NN_PAD_SAME };

struct nn_conv_shape {
    int n, h, w, c;     /* input */
    int k, kh, kw;      /* output channels, kernel size */
    int stride;         /* same in both directions */
    int pad_top, pad_left;
    int oh, ow;         /* output size */
};

/* Output size and leading padding of one axis of a window op (conv or pool)
 * with the rules above. Fails (NN_ERR_ARG / NN_ERR_SHAPE) on sizes <= 0 or a
 * VALID window larger than the input. */
enum nn_status nn_window_geometry(int in, int kernel, int stride, enum nn_padding pad, int *out, int *pad_before);

/* Fills `s` and checks the sizes (all > 0, output not empty, products that
 * GEMM sees fit in an int). Records a message and returns an error otherwise. */
enum nn_status nn_conv_shape_init(struct nn_conv_shape *s, int n, int h, int w, int c, int k, int kh, int kw,
                                  int stride, enum nn_padding pad);

/* Floats of scratch the forward and backward need, bounded independently of
 * the batch size; 0 for 1x1 stride-1 convs (they are plain GEMMs on the
 * tensors). Other convs work on chunks of nn_conv2d_chunk_pixels() output
 * pixels, and the scratch is one [chunk, KH*KW*C] matrix: the forward builds
 * the im2col rows there; the backward builds them there for dw, then
 * overwrites them with the column gradient dOut * W^T for din. 3x3 stride-1
 * convs where Winograd pays (ops/winograd.h) take its path instead in the
 * forward and for din, and the scratch is then at least large enough for
 * its transformed weights and tiles. */
size_t nn_conv2d_scratch_floats(const struct nn_conv_shape *s);

/* Output pixels per im2col chunk: about 4 MB of im2col rows, never more
 * pixels than the output has. */
long nn_conv2d_chunk_pixels(const struct nn_conv_shape *s);

/* out = conv(in, w). `scratch` holds nn_conv2d_scratch_floats(s) floats. */
void nn_conv2d_forward(float *out, const float *in, const float *w, const struct nn_conv_shape *s, float *scratch);

/* Inference forward with the epilogue fused into the GEMM (batch norm
 * reduced to a per-channel scale and shift, ReLU; ops/gemm.h), writing
 * output rows with stride ldo >= K, so that a conv can write straight into
 * its channel slice of a concatenation. */
struct nn_gemm_epilogue;
void nn_conv2d_forward_fused(float *out, int ldo, const float *in, const float *w, const struct nn_conv_shape *s,
                             float *scratch, const struct nn_gemm_epilogue *ep);

/* The same with the conv in low precision (ops/gemm_lowp.h): weights
 * packed as a [KH*KW*C, K] matrix, inputs converted as the GEMM packs them
 * (a_inv_scale: int8's input quantisation). Always im2col + GEMM: Winograd's
 * transformed inputs do not keep int8's range, and bf16 Winograd is not
 * written yet. int8 convs other than 1x1 stride 1 quantise each chunk's
 * input rows once into the scratch and build their im2col rows from the
 * bytes (nn_gemm_lowp_u8); the result is the same, bit for bit. */
struct nn_lowp_weights;
void nn_conv2d_forward_lowp(float *out, int ldo, const float *in, const struct nn_lowp_weights *w, float a_inv_scale,
                            const struct nn_conv_shape *s, float *scratch, const struct nn_gemm_epilogue *ep);

/* Accumulates gradients: dw += dL/dw (if dw != NULL), din += dL/din (if din != NULL). */
void nn_conv2d_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                        const struct nn_conv_shape *s, float *scratch);

/* The same, always through im2col + GEMM, with an explicit chunk of `chunk`
 * (>= 1) output pixels, so tests can put chunk boundaries anywhere and
 * tuning can try sizes; `scratch` then holds chunk * KH*KW*C floats (none
 * for 1x1 stride-1 convs). */
void nn_conv2d_forward_chunked(float *out, const float *in, const float *w, const struct nn_conv_shape *s,
                               float *scratch, long chunk);
void nn_conv2d_backward_chunked(float *din, float *dw, const float *dout, const float *in, const float *w,
                                const struct nn_conv_shape *s, float *scratch, long chunk);

#endif
