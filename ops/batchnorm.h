/* Batch normalisation over the channel axis of an NHWC tensor seen as
 * [M, C] with M = N*H*W. Training mode normalises with the batch mean and the
 * biased batch variance and updates the running statistics:
 *   running = decay * running + (1 - decay) * batch
 * (the running variance takes the unbiased batch variance, M/(M-1) times the
 * biased one, as TensorFlow's fused batch norm and PyTorch do).
 * Inference mode uses the running statistics. y = gamma * xhat + beta. */
#ifndef NN_OPS_BATCHNORM_H
#define NN_OPS_BATCHNORM_H

#include <stdbool.h>

/* Training forward. Writes y, and per channel mean[C] and invstd[C] =
 * 1/sqrt(var + eps) for the backward. Updates running_mean/var unless they
 * are NULL. If relu is true, y = max(0, bn(x)) (the fused Inception block). */
void nn_batchnorm_forward_train(float *y, float *mean, float *invstd, const float *x, const float *gamma,
                                const float *beta, float *running_mean, float *running_var, long M, int C,
                                float eps, float decay, bool relu);

/* Inference forward with running statistics; optional fused ReLU. y may equal x. */
void nn_batchnorm_forward_infer(float *y, const float *x, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, long M, int C, float eps,
                                bool relu);

/* Training backward. If relu is true, `y` is the forward output and dy is
 * first masked by y > 0. Accumulates dx (if not NULL), dgamma, dbeta.
 * The batch statistics are recomputed from x in double precision (`mean`
 * only shifts the sums; `invstd` is not read): see batchnorm.c for why. */
void nn_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *y,
                           const float *mean, const float *invstd, const float *gamma, long M, int C, float eps,
                           bool relu);

/* Backward of the inference-mode op (frozen batch norm: statistics are
 * constants). Accumulates dx; dgamma and dbeta when not NULL. */
void nn_batchnorm_backward_infer(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                 const float *y, const float *gamma, const float *running_mean,
                                 const float *running_var, long M, int C, float eps, bool relu);

/* As nn_batchnorm_backward and nn_batchnorm_backward_infer, but dx is
 * written, not accumulated: a conv's pre-batch-norm gradient is a fresh
 * buffer, and this saves zeroing it and reading it back. */
void nn_batchnorm_backward_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                               const float *y, const float *mean, const float *invstd, const float *gamma, long M,
                               int C, float eps, bool relu);
void nn_batchnorm_backward_infer_set(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                                     const float *y, const float *gamma, const float *running_mean,
                                     const float *running_var, long M, int C, float eps, bool relu);

#endif
