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

/* Fills `s` and checks the sizes (all > 0, output not empty). */
enum nn_status nn_conv_shape_init(struct nn_conv_shape *s, int n, int h, int w, int c, int k, int kh, int kw,
                                  int stride, enum nn_padding pad);

/* Floats of scratch the forward and backward need (im2col rows), bounded
 * independently of the batch size; 0 for 1x1 stride-1 convs. */
size_t nn_conv2d_scratch_floats(const struct nn_conv_shape *s);

/* out = conv(in, w). `scratch` holds nn_conv2d_scratch_floats(s) floats. */
void nn_conv2d_forward(float *out, const float *in, const float *w, const struct nn_conv_shape *s, float *scratch);

/* Accumulates gradients: dw += dL/dw (if dw != NULL), din += dL/din (if din != NULL). */
void nn_conv2d_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                        const struct nn_conv_shape *s, float *scratch);

#endif
