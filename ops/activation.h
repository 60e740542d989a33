/* ReLU on flat float arrays. */
#ifndef NN_OPS_ACTIVATION_H
#define NN_OPS_ACTIVATION_H

/* y = max(x, 0); y may equal x. */
void nn_relu_forward(float *y, const float *x, long n);
/* dx += dy where y > 0 (y is the forward output). */
void nn_relu_backward(float *dx, const float *dy, const float *y, long n);

#endif
