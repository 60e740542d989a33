/* Executing an Inception-v3 graph: forward in inference or training mode,
 * the loss, and backward. This is the engine the inference context and the
 * trainer share; it is internal (the public API is nn/nn.h).
 *
 * A net is built for a batch size and a purpose. An inference net keeps only
 * what is alive at each step (activations share memory by lifetime). A
 * training net also keeps what backward needs and gradient buffers; which
 * parameters are trainable decides both what backward computes and, through
 * the plan, what forward must keep: frozen layers keep nothing for backward
 * and their batch norm runs on the moving statistics, as TF-slim's
 * trainable_scopes recipe does. */
#ifndef NN_NET_H
#define NN_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "base/rng.h"
#include "nn/graph.h"
#include "nn/nn.h"
#include "nn/params.h"

struct nn_net {
    struct nn_graph g;
    struct nn_config cfg;
    struct nn_params *params;   /* not owned; training updates params->data */
    bool training;
    bool *trainable;            /* per parameter */
    bool *bn_batch_stats;       /* per node: batch norm normalises with batch statistics when training */
    bool *needs_grad;           /* per tensor: some trainable parameter lies upstream */
    float *grads;               /* per parameter gradient, same layout as params->data (training) */
    char *arena;                /* every planned buffer */
    size_t arena_bytes;
    size_t *act;                /* per tensor: byte offset of the activation */
    size_t *grad;               /* per tensor: byte offset of its gradient (if needs_grad) */
    size_t *z, *stats;          /* per node: pre-batch-norm output, batch mean+invstd */
    size_t dz, mask, probs, aux_probs;
    int *ld;                    /* per tensor: floats between rows (c, or the concat's c when aliased) */
    bool *in_place;             /* per tensor: an inference conv output written straight into its
                                   channel slice of the concatenation that consumes it */
    float *bn_affine;           /* inference: per conv node, batch norm as scale[k] then shift[k] */
    size_t *affine_off;         /* per node: offset into bn_affine */
    bool *grad_ready;           /* per tensor: its gradient buffer was zeroed in this backward */
    float *scratch;             /* conv im2col scratch */
    int n;                      /* images in the last forward (<= g.batch) */
    bool train_mode;            /* last forward ran in training mode */
    bool dropout_on;            /* ... with dropout */
    struct nn_rng dropout_rng;
    double *prof_fwd, *prof_bwd; /* per node: seconds accumulated (profiling only) */
    const struct nn_conv_lowp *lowp; /* bf16/int8 models: the model's packed convs, per parameter */
    /* Calibration: called with each conv's input before the conv runs. */
    void (*observe)(void *user, int node, const float *x, size_t count);
    void *observe_user;
};

/* Builds a net for up to `batch` images over the model's parameters.
 * trainable == NULL: an inference net. Otherwise a training net in which
 * parameter i receives gradients iff trainable[i]. */
enum nn_status nn_net_init(struct nn_net *net, const struct nn_config *cfg, struct nn_params *params, int batch,
                           const bool *trainable);
void nn_net_free(struct nn_net *net);

/* An inference net over a bf16 or int8 model runs its convs on the model's
 * packed weights (struct nn_model's lowp), which must outlive the net;
 * a forward without them fails. */
struct nn_conv_lowp;
void nn_net_use_lowp(struct nn_net *net, const struct nn_conv_lowp *lowp);

/* Runs the network on n images (NHWC). train_mode (training nets only):
 * batch statistics in trainable layers, updated running statistics, dropout
 * (unless dropout is false). */
enum nn_status nn_net_forward(struct nn_net *net, const float *images, int n, bool train_mode, bool dropout);

/* Views of results after a forward; [n, num_classes] and [n, 2048]. */
const float *nn_net_logits(const struct nn_net *net);
const float *nn_net_aux_logits(const struct nn_net *net);   /* NULL without aux head */
const float *nn_net_pre_logits(const struct nn_net *net);
const float *nn_net_aux_input(const struct nn_net *net);    /* Mixed_6e output, NHWC */
float *nn_net_tensor(const struct nn_net *net, int tensor);

/* Mean cross-entropy of the main logits plus aux_weight times that of the
 * aux logits, and the backward pass from it: parameter gradients are
 * accumulated into net->grads (call nn_net_zero_grads first). */
enum nn_status nn_net_backward(struct nn_net *net, const int32_t *labels, float label_smoothing, float aux_weight,
                               double *loss);
void nn_net_zero_grads(struct nn_net *net);

/* Starts accumulating per-node forward and backward time in prof_fwd/prof_bwd. */
enum nn_status nn_net_enable_profile(struct nn_net *net);

/* Bytes of the planned buffers (activations, gradients, scratch). */
size_t nn_net_memory(const struct nn_net *net);

#endif
