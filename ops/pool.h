/* Max and average pooling over NHWC tensors, and global average pooling.
 * Window geometry (output size, padding) follows the same TensorFlow rules as
 * conv2d (see conv2d.h). Average pooling divides by the number of real,
 * unpadded inputs under the window, as TensorFlow does for SAME windows. */
#ifndef NN_OPS_POOL_H
#define NN_OPS_POOL_H

#include "base/status.h"
#include "ops/conv2d.h"

struct nn_pool_shape {
    int n, h, w, c;
    int kh, kw, stride;
    int pad_top, pad_left;
    int oh, ow;
};

enum nn_status nn_pool_shape_init(struct nn_pool_shape *s, int n, int h, int w, int c, int kh, int kw, int stride,
                                  enum nn_padding pad);

void nn_maxpool_forward(float *out, const float *in, const struct nn_pool_shape *s);
/* din += gradient; the max of each window is found again from in/out (the
 * first position holding the maximum wins, as in the forward). */
void nn_maxpool_backward(float *din, const float *dout, const float *in, const float *out,
                         const struct nn_pool_shape *s);

void nn_avgpool_forward(float *out, const float *in, const struct nn_pool_shape *s);
void nn_avgpool_backward(float *din, const float *dout, const struct nn_pool_shape *s);

/* out[N, C] = mean over H*W of in[N, H, W, C]. */
void nn_global_avgpool_forward(float *out, const float *in, int N, int HW, int C);
void nn_global_avgpool_backward(float *din, const float *dout, int N, int HW, int C);

#endif
