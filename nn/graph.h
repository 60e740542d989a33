/* Inception-v3 as a fixed list of nodes in execution order, each naming its
 * input and output tensors by index. The graph is built for one batch size
 * (shapes are static), then planned: every tensor gets an offset in one
 * activation arena. There is no general autodiff: each node kind has a
 * hand-written backward (net.c). */
#ifndef NN_GRAPH_H
#define NN_GRAPH_H

#include <stdbool.h>
#include <stddef.h>

#include "nn/nn.h"
#include "nn/params.h"
#include "ops/conv2d.h"
#include "ops/pool.h"

enum nn_node_kind {
    NN_NODE_CONV,       /* conv (no bias) -> batch norm -> ReLU: TF-slim's conv2d with batch norm */
    NN_NODE_MAXPOOL,
    NN_NODE_AVGPOOL,
    NN_NODE_CONCAT,     /* channel concatenation of several inputs */
    NN_NODE_GAP,        /* global average pool to [N, 1, 1, C] */
    NN_NODE_DROPOUT,
    NN_NODE_FC          /* affine classifier with bias */
};

#define NN_MAX_INPUTS 6

struct nn_node {
    enum nn_node_kind kind;
    char name[NN_PARAM_NAME_MAX];   /* layer name, e.g. "Mixed_5b.branch5x5_2" */
    int inputs[NN_MAX_INPUTS];
    int ninputs;
    int output;
    struct nn_conv_shape conv;      /* NN_NODE_CONV */
    struct nn_pool_shape pool;      /* pools */
    /* parameter indices (-1 if unused) */
    int w, gamma, beta, mean, var, bias;
    int wscale, ascale;             /* int8 models: weight and input scales */
    /* per-node training buffers, in floats into the arena (see plan.c) */
    size_t z_off;                   /* conv output before batch norm */
    size_t stats_off;               /* batch mean[C] then invstd[C] */
};

struct nn_tensor {
    int n, h, w, c;
    size_t count;       /* n*h*w*c */
    int producer;       /* node index, -1 for the input image */
    size_t off;         /* activation offset in floats */
    size_t grad_off;    /* gradient offset in floats (training only) */
};

struct nn_graph {
    struct nn_node *nodes;
    int nnodes, cap_nodes;
    struct nn_tensor *tensors;
    int ntensors, cap_tensors;
    int input;          /* tensor index of the image batch */
    int logits;         /* [N, 1, 1, num_classes] */
    int aux_logits;     /* -1 without the aux head */
    int pre_logits;     /* pooled 2048-d features (before dropout) */
    int aux_input;      /* Mixed_6e output (the aux head's input), -1 without aux */
    int batch;
};

/* Builds Inception-v3 for `batch` images. If params->count == 0 the
 * parameters are declared into `params`; otherwise each is looked up and its
 * shape checked, so a model's table and its graphs always agree. */
enum nn_status nn_graph_build(struct nn_graph *g, const struct nn_config *cfg, int batch, struct nn_params *params);
void nn_graph_free(struct nn_graph *g);

/* Multiply-adds of one forward pass per image (convs and fc). */
double nn_graph_macs_per_image(const struct nn_graph *g);

#endif
