/* Per-channel bias followed by ReLU, in place on [M, C]: the tail of a conv
 * whose batch norm was folded into its weights (frozen inference models). */
#ifndef NN_OPS_BIAS_H
#define NN_OPS_BIAS_H

void nn_bias_relu_forward(float *y, const float *bias, long M, int C);

#endif
