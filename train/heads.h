/* The two classifier heads of Inception-v3 run on their own, on trunk
 * outputs computed earlier: the bottleneck cache of head-only training.
 *
 * When only parameters of `fc` and `AuxLogits` are trainable and the
 * training images are not augmented, the trunk (everything up to Mixed_7c
 * and Mixed_6e) gives the same output for an image at every epoch, so it is
 * computed once per image and only the heads run per step:
 *
 *   main: pre_logits [n, 2048] -> dropout -> fc
 *   aux:  Mixed_6e -> avg pool -> conv0 (1x1) -> conv1 -> [global pool] -> fc
 *
 * The aux input is cached after its average pool ([n, 5, 5, 768] at 299
 * instead of Mixed_6e's [n, 17, 17, 768]): the pool has no parameters, so
 * this is the same computation with a cache eleven times smaller.
 *
 * Every node runs exactly the ops, shapes and rules of nn_net (nn/net.c):
 * batch statistics only in layers whose batch norm is trainable, dropout
 * drawn from the same kind of generator, gradients accumulated into a table
 * laid out as the parameters. Given the same inputs and generator state,
 * a step here equals a step of the whole network. */
#ifndef NN_TRAIN_HEADS_H
#define NN_TRAIN_HEADS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/rng.h"
#include "nn/graph.h"
#include "nn/nn.h"
#include "nn/params.h"

struct nn_heads_node {
    int node;           /* index into g.nodes, -1 if absent */
    float *y;           /* output [batch, ...] */
    float *dy;          /* its gradient (when needed) */
    float *z, *stats;   /* conv: output before batch norm, batch mean + invstd */
    bool batch_stats;   /* conv: trainable batch norm */
    bool needs_grad;    /* some trainable parameter lies at or upstream of it */
    bool grad_ready;
    size_t count;       /* floats of y per image */
};

enum { NN_HEADS_AUX_POOL, NN_HEADS_AUX_CONV0, NN_HEADS_AUX_CONV1, NN_HEADS_AUX_GAP, NN_HEADS_AUX_FC,
       NN_HEADS_DROPOUT, NN_HEADS_FC, NN_HEADS_NODES };

struct nn_heads {
    struct nn_graph g;          /* the whole graph, for shapes and parameter indices */
    struct nn_config cfg;
    struct nn_params *params;   /* not owned; training updates params->data */
    bool *trainable;            /* per parameter */
    struct nn_heads_node nd[NN_HEADS_NODES];
    int batch, n;
    int features;               /* pre_logits floats per image (2048) */
    size_t aux_floats;          /* cached aux input floats per image (0 without the aux head) */
    const float *pre;           /* inputs of the last forward (caller's memory) */
    const float *aux_in;
    float *mask, *probs, *aux_probs, *dz, *scratch;
    float *grads;               /* params->total floats */
    bool train_mode, dropout_on;
    struct nn_rng dropout_rng;
};

/* Fails (NN_ERR_ARG) when a trainable parameter lies outside the heads:
 * then the trunk changes and cannot be cached. */
enum nn_status nn_heads_init(struct nn_heads *h, const struct nn_config *cfg, struct nn_params *params, int batch,
                             const bool *trainable);
void nn_heads_free(struct nn_heads *h);

/* True when every trainable parameter belongs to a head (fc, AuxLogits). */
bool nn_heads_cover(const struct nn_params *params, const bool *trainable);

/* The cached aux input of n images from the trunk's Mixed_6e output
 * (nn_net_aux_input): the aux head's average pool. out: [n, aux_floats]. */
void nn_heads_pool_aux(const struct nn_heads *h, const float *mixed_6e, int n, float *out);

/* Runs both heads on n images: pre_logits [n, features] and aux
 * [n, aux_floats] (NULL without the aux head). The inputs must stay valid
 * until the backward. */
enum nn_status nn_heads_forward(struct nn_heads *h, const float *pre_logits, const float *aux, int n, bool train_mode,
                                bool dropout);
/* As nn_net_backward: loss = xent(main) + aux_weight * xent(aux); gradients
 * accumulate into h->grads (zero them with nn_heads_zero_grads). */
enum nn_status nn_heads_backward(struct nn_heads *h, const int32_t *labels, float label_smoothing, float aux_weight,
                                 double *loss);
void nn_heads_zero_grads(struct nn_heads *h);

const float *nn_heads_logits(const struct nn_heads *h);      /* [n, num_classes] */
const float *nn_heads_aux_logits(const struct nn_heads *h);  /* NULL without the aux head */

#endif
