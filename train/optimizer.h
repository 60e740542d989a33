/* Optimisers over the parameter table: plain SGD, momentum, RMSProp and
 * Adam, with TensorFlow's update rules (TF-slim's train_image_classifier
 * builds these), and L2 weight decay added to the gradient.
 *
 * Only trainable parameters have state ("slots"), and all slots live in one
 * allocation: slot s of parameter i is state + s * slot_floats +
 * slot_off[i]. A head-only run therefore carries a few MB of state, a full
 * run twice the model for RMSProp. Untrainable parameters are never
 * touched, not even by weight decay. */
#ifndef NN_TRAIN_OPTIMIZER_H
#define NN_TRAIN_OPTIMIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "nn/params.h"

enum nn_optimizer_kind {
    NN_OPT_SGD,         /* w -= lr * g */
    NN_OPT_MOMENTUM,    /* a = momentum * a + g;  w -= lr * a */
    NN_OPT_RMSPROP,     /* ms = decay * ms + (1 - decay) * g^2  (ms starts at 1, as in TF)
                         * mom = momentum * mom + lr * g / sqrt(ms + epsilon);  w -= mom */
    NN_OPT_ADAM         /* m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
                         * w -= lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + epsilon) */
};

/* "sgd", "momentum", "rmsprop", "adam". */
const char *nn_optimizer_name(enum nn_optimizer_kind kind);
enum nn_status nn_optimizer_parse(const char *name, enum nn_optimizer_kind *out);

struct nn_optimizer_options {
    enum nn_optimizer_kind kind;
    float momentum;         /* momentum and rmsprop (0.9) */
    float rms_decay;        /* rmsprop (0.9) */
    float epsilon;          /* rmsprop and adam: TF-slim's opt_epsilon (1.0) */
    float beta1, beta2;     /* adam (0.9, 0.999) */
    float weight_decay;     /* L2 on conv and fc weights: g += weight_decay * w (4e-5) */
};

/* TF-slim's defaults: rmsprop, decay 0.9, momentum 0.9, epsilon 1.0, weight decay 4e-5. */
void nn_optimizer_options_default(struct nn_optimizer_options *o);

#define NN_OPTIMIZER_MAX_SLOTS 2

struct nn_optimizer {
    struct nn_optimizer_options opt;
    int count;              /* parameters in the table */
    bool *trainable;        /* [count]: learned and chosen */
    size_t *slot_off;       /* [count]: offset of the parameter in each slot (trainable ones only) */
    size_t slot_floats;     /* floats per slot: the sum of the trainable parameters' sizes */
    int nslots;             /* 0 (sgd), 1 (momentum), 2 (rmsprop, adam) */
    float *state;           /* nslots * slot_floats, 64-byte aligned */
    int64_t updates;        /* steps applied so far (Adam's t) */
};

/* Sets up state for the parameters with trainable[i] (NULL: all) that are
 * learned (nn_param_learned): RMSProp's mean square starts at 1, everything
 * else at 0. */
enum nn_status nn_optimizer_init(struct nn_optimizer *o, const struct nn_optimizer_options *opt,
                                 const struct nn_params *params, const bool *trainable);
void nn_optimizer_free(struct nn_optimizer *o);

/* One update of every trainable parameter from grads (the table's layout,
 * params->total floats) with learning rate lr. */
void nn_optimizer_step(struct nn_optimizer *o, struct nn_params *params, const float *grads, float lr);

/* Slot names ("momentum", "rms", "m", "v"), for checkpoints. */
const char *nn_optimizer_slot_name(const struct nn_optimizer *o, int slot);
/* Slot `slot` of parameter i, or NULL if i is not trainable. */
float *nn_optimizer_slot(const struct nn_optimizer *o, int slot, int i);

/* The L2 term the decay stands for: weight_decay / 2 * sum w^2 over the
 * trainable conv and fc weights (TF-slim's regularisation loss). */
double nn_optimizer_decay_loss(const struct nn_optimizer *o, const struct nn_params *params);

#endif
