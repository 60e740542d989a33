/* Concatenation along channels of NHWC tensors: the inputs are [M, c_i] with
 * M = N*H*W, the output is [M, sum c_i]. */
#ifndef NN_OPS_CONCAT_H
#define NN_OPS_CONCAT_H

/* An input given as NULL is skipped: its slice was written in place by its producer. */
void nn_concat_forward(float *out, const float *const *in, const int *channels, int count, long M);
/* din[i] += the matching channel slice of dout (din[i] may be NULL to skip). */
void nn_concat_backward(float *const *din, const float *dout, const int *channels, int count, long M);

#endif
