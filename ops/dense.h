/* Fully connected layer with bias, dropout, and softmax cross-entropy: the
 * classifier head. Weights are [IN, OUT] (row-major, "IO", the conv
 * weights' HWIO with H = W = 1), so out = in * w + b is one GEMM. */
#ifndef NN_OPS_DENSE_H
#define NN_OPS_DENSE_H

#include <stdint.h>

#include "base/rng.h"

/* out[N, OUT] = in[N, IN] * w[IN, OUT] + b[OUT]. */
void nn_fc_forward(float *out, const float *in, const float *w, const float *b, int N, int IN, int OUT);
/* Accumulates din (if not NULL), dw and db (if not NULL). b may be NULL in
 * the forward (no bias). */
void nn_fc_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int N,
                    int IN, int OUT);

/* Inverted dropout: mask[i] = (u < keep) / keep, out = in * mask. keep in (0, 1].
 * Draws n numbers from rng; keep == 1 copies, sets the mask to 1 and draws
 * none. out may equal in. */
void nn_dropout_forward(float *out, float *mask, const float *in, long n, float keep, struct nn_rng *rng);
/* din += dout * mask. */
void nn_dropout_backward(float *din, const float *dout, const float *mask, long n);

/* Mean over the batch of the softmax cross-entropy of logits[N, K] against
 * integer labels in [0, K), with label smoothing s (target = (1-s) one-hot +
 * s/K). Writes probs[N, K] (softmax) for the backward; returns the loss, NaN
 * if a label is out of range. */
double nn_softmax_xent_forward(float *probs, const float *logits, const int32_t *labels, int N, int K,
                               float smoothing);
/* dlogits += scale * (probs - target) / N. */
void nn_softmax_xent_backward(float *dlogits, const float *probs, const int32_t *labels, int N, int K,
                              float smoothing, float scale);

#endif
