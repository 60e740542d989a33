#include "train/heads.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "ops/batchnorm.h"
#include "ops/conv2d.h"
#include "ops/dense.h"
#include "ops/pool.h"

static const char *const node_names[NN_HEADS_NODES] = {
    "AuxLogits.avg_pool", "AuxLogits.conv0", "AuxLogits.conv1", "AuxLogits.global_pool",
    "AuxLogits.fc",       "dropout",         "fc",
};

static bool in_heads(const char *name) { return !strncmp(name, "fc.", 3) || !strncmp(name, "AuxLogits.", 10); }

bool nn_heads_cover(const struct nn_params *params, const bool *trainable)
{
    for (int i = 0; i < params->count; i++)
        if ((!trainable || trainable[i]) && nn_param_learned(&params->items[i]) && !in_heads(params->items[i].name))
            return false;
    return true;
}

static int find_node(const struct nn_graph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i].name, name)) return i;
    return -1;
}

static const struct nn_node *node_of(const struct nn_heads *h, int k)
{
    return h->nd[k].node >= 0 ? &h->g.nodes[h->nd[k].node] : NULL;
}

static bool param_trainable(const struct nn_heads *h, int p) { return p >= 0 && h->trainable[p]; }

static float *param_grad(const struct nn_heads *h, int p)
{
    return param_trainable(h, p) ? h->grads + h->params->items[p].offset : NULL;
}

void nn_heads_free(struct nn_heads *h)
{
    nn_graph_free(&h->g);
    free(h->trainable);
    for (int k = 0; k < NN_HEADS_NODES; k++) {
        nn_free(h->nd[k].y);
        nn_free(h->nd[k].dy);
        nn_free(h->nd[k].z);
        nn_free(h->nd[k].stats);
    }
    nn_free(h->mask);
    nn_free(h->probs);
    nn_free(h->aux_probs);
    nn_free(h->dz);
    nn_free(h->scratch);
    nn_free(h->grads);
    memset(h, 0, sizeof *h);
}

enum nn_status nn_heads_init(struct nn_heads *h, const struct nn_config *cfg, struct nn_params *params, int batch,
                             const bool *trainable)
{
    memset(h, 0, sizeof *h);
    for (int k = 0; k < NN_HEADS_NODES; k++) h->nd[k].node = -1;
    if (!cfg || !params || !trainable) return nn_fail(NN_ERR_ARG, "nn_heads_init: NULL argument");
    if (!nn_heads_cover(params, trainable))
        return nn_fail(NN_ERR_ARG, "the trunk has trainable parameters: its outputs cannot be cached");
    h->cfg = *cfg;
    h->params = params;
    h->batch = batch;
    NN_TRY(nn_graph_build(&h->g, cfg, batch, params));
    enum nn_status st = NN_OK;
    h->trainable = calloc((size_t)params->count, sizeof(bool));
    if (!h->trainable) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    for (int i = 0; st == NN_OK && i < params->count; i++)
        h->trainable[i] = trainable[i] && nn_param_learned(&params->items[i]);
    for (int k = 0; st == NN_OK && k < NN_HEADS_NODES; k++) {
        h->nd[k].node = find_node(&h->g, node_names[k]);
        bool optional = k == NN_HEADS_AUX_GAP || (!cfg->aux_logits && k <= NN_HEADS_AUX_FC);
        if (h->nd[k].node < 0 && !optional)
            st = nn_fail(NN_ERR_INTERNAL, "the graph has no node %s", node_names[k]);
    }
    if (st != NN_OK) {
        nn_heads_free(h);
        return st;
    }
    const struct nn_graph *g = &h->g;
    h->features = (int)(g->tensors[g->pre_logits].count / (size_t)batch);
    const struct nn_node *pool = node_of(h, NN_HEADS_AUX_POOL);
    h->aux_floats = pool ? g->tensors[pool->output].count / (size_t)batch : 0;

    /* Which outputs need gradients, in graph order (the cached inputs need none). */
    bool upstream = false;
    size_t max_scratch = 16, max_z = 1;
    for (int k = NN_HEADS_AUX_CONV0; k <= NN_HEADS_AUX_FC; k++) {
        const struct nn_node *n = node_of(h, k);
        if (!n) continue;
        bool mine = param_trainable(h, n->w) || param_trainable(h, n->gamma) || param_trainable(h, n->beta) ||
                    param_trainable(h, n->bias);
        upstream = upstream || mine;
        h->nd[k].needs_grad = upstream;
        if (n->kind == NN_NODE_CONV) {
            h->nd[k].batch_stats = param_trainable(h, n->gamma) || param_trainable(h, n->beta);
            size_t sc = nn_conv2d_scratch_floats(&n->conv);
            if (sc > max_scratch) max_scratch = sc;
            if (g->tensors[n->output].count > max_z) max_z = g->tensors[n->output].count;
        }
    }
    const struct nn_node *fc = node_of(h, NN_HEADS_FC);
    h->nd[NN_HEADS_FC].needs_grad = param_trainable(h, fc->w) || param_trainable(h, fc->bias);

    for (int k = 0; k < NN_HEADS_NODES && st == NN_OK; k++) {
        const struct nn_node *n = node_of(h, k);
        if (!n || k == NN_HEADS_AUX_POOL) continue;
        size_t count = g->tensors[n->output].count;
        h->nd[k].count = count / (size_t)batch;
        h->nd[k].y = nn_alloc(count * sizeof(float));
        if (h->nd[k].needs_grad) h->nd[k].dy = nn_alloc(count * sizeof(float));
        if (h->nd[k].batch_stats) {
            h->nd[k].z = nn_alloc(count * sizeof(float));
            h->nd[k].stats = nn_alloc(2 * (size_t)n->conv.k * sizeof(float));
        }
        if (!h->nd[k].y || (h->nd[k].needs_grad && !h->nd[k].dy) ||
            (h->nd[k].batch_stats && (!h->nd[k].z || !h->nd[k].stats)))
            st = nn_fail(NN_ERR_NOMEM, "out of memory for the heads");
    }
    size_t K = (size_t)cfg->num_classes;
    h->mask = nn_alloc((size_t)batch * h->features * sizeof(float));
    h->probs = nn_alloc((size_t)batch * K * sizeof(float));
    h->aux_probs = nn_alloc((size_t)batch * K * sizeof(float));
    h->dz = nn_alloc(max_z * sizeof(float));
    h->scratch = nn_alloc(max_scratch * sizeof(float));
    h->grads = nn_calloc(params->total * sizeof(float));
    if (st == NN_OK && (!h->mask || !h->probs || !h->aux_probs || !h->dz || !h->scratch || !h->grads))
        st = nn_fail(NN_ERR_NOMEM, "out of memory for the heads");
    if (st != NN_OK) {
        nn_heads_free(h);
        return st;
    }
    nn_rng_seed(&h->dropout_rng, 0x5eed, 11);
    return NN_OK;
}

void nn_heads_pool_aux(const struct nn_heads *h, const float *mixed_6e, int n, float *out)
{
    const struct nn_node *pool = node_of(h, NN_HEADS_AUX_POOL);
    if (!pool) return;
    struct nn_pool_shape s = pool->pool;
    s.n = n;
    nn_avgpool_forward(out, mixed_6e, &s);
}

static void conv_forward(struct nn_heads *h, int k, const float *x, bool train_mode)
{
    const struct nn_node *n = node_of(h, k);
    const struct nn_params *p = h->params;
    struct nn_conv_shape s = n->conv;
    s.n = h->n;
    long M = (long)s.n * s.oh * s.ow;
    float *y = h->nd[k].y;
    const float *gamma = nn_param_data(p, n->gamma), *beta = nn_param_data(p, n->beta);
    float *rmean = nn_param_data(p, n->mean), *rvar = nn_param_data(p, n->var);
    if (train_mode && h->nd[k].batch_stats) {
        float *z = h->nd[k].z, *stats = h->nd[k].stats;
        nn_conv2d_forward(z, x, nn_param_data(p, n->w), &s, h->scratch);
        nn_batchnorm_forward_train(y, stats, stats + s.k, z, gamma, beta, rmean, rvar, M, s.k, h->cfg.bn_eps,
                                   h->cfg.bn_decay, true);
    } else {
        nn_conv2d_forward(y, x, nn_param_data(p, n->w), &s, h->scratch);
        nn_batchnorm_forward_infer(y, y, gamma, beta, rmean, rvar, M, s.k, h->cfg.bn_eps, true);
    }
}

static void fc_forward(struct nn_heads *h, int k, const float *x)
{
    const struct nn_node *n = node_of(h, k);
    const struct nn_tensor *in = &h->g.tensors[n->inputs[0]];
    nn_fc_forward(h->nd[k].y, x, nn_param_data(h->params, n->w), nn_param_data(h->params, n->bias), h->n,
                  (int)(in->count / (size_t)in->n), h->g.tensors[n->output].c);
}

enum nn_status nn_heads_forward(struct nn_heads *h, const float *pre_logits, const float *aux, int n, bool train_mode,
                                bool dropout)
{
    if (!h || !pre_logits || (h->aux_floats && !aux)) return nn_fail(NN_ERR_ARG, "nn_heads_forward: NULL argument");
    if (n < 1 || n > h->batch) return nn_fail(NN_ERR_ARG, "batch of %d: the heads take 1 to %d", n, h->batch);
    h->n = n;
    h->train_mode = train_mode;
    h->pre = pre_logits;
    h->aux_in = aux;
    /* the graph's order: the aux head first, then dropout and fc */
    if (h->aux_floats) {
        conv_forward(h, NN_HEADS_AUX_CONV0, aux, train_mode);
        conv_forward(h, NN_HEADS_AUX_CONV1, h->nd[NN_HEADS_AUX_CONV0].y, train_mode);
        const float *x = h->nd[NN_HEADS_AUX_CONV1].y;
        const struct nn_node *gap = node_of(h, NN_HEADS_AUX_GAP);
        if (gap) {
            const struct nn_tensor *in = &h->g.tensors[gap->inputs[0]];
            nn_global_avgpool_forward(h->nd[NN_HEADS_AUX_GAP].y, x, n, in->h * in->w, in->c);
            x = h->nd[NN_HEADS_AUX_GAP].y;
        }
        fc_forward(h, NN_HEADS_AUX_FC, x);
    }
    long count = (long)n * h->features;
    float *d = h->nd[NN_HEADS_DROPOUT].y;
    h->dropout_on = train_mode && dropout && h->cfg.dropout_keep < 1.0f;
    if (h->dropout_on) nn_dropout_forward(d, h->mask, pre_logits, count, h->cfg.dropout_keep, &h->dropout_rng);
    else memcpy(d, pre_logits, (size_t)count * sizeof(float));
    fc_forward(h, NN_HEADS_FC, d);
    return NN_OK;
}

const float *nn_heads_logits(const struct nn_heads *h) { return h->nd[NN_HEADS_FC].y; }
const float *nn_heads_aux_logits(const struct nn_heads *h) { return h->aux_floats ? h->nd[NN_HEADS_AUX_FC].y : NULL; }

/* Only the trainable parameters' gradients are ever written or read: the
 * rest of the table stays zero from nn_heads_init. */
void nn_heads_zero_grads(struct nn_heads *h)
{
    for (int i = 0; i < h->params->count; i++)
        if (h->trainable[i]) memset(h->grads + h->params->items[i].offset, 0, h->params->items[i].count * sizeof(float));
}

static float *grad_for_write(struct nn_heads *h, int k)
{
    struct nn_heads_node *d = &h->nd[k];
    if (!d->grad_ready) {
        memset(d->dy, 0, (size_t)h->n * d->count * sizeof(float));
        d->grad_ready = true;
    }
    return d->dy;
}

static void fc_backward(struct nn_heads *h, int k, const float *x, float *dx)
{
    const struct nn_node *n = node_of(h, k);
    const struct nn_tensor *in = &h->g.tensors[n->inputs[0]];
    nn_fc_backward(dx, param_grad(h, n->w), param_grad(h, n->bias), h->nd[k].dy, x,
                   nn_param_data(h->params, n->w), h->n, (int)(in->count / (size_t)in->n),
                   h->g.tensors[n->output].c);
}

static void conv_backward(struct nn_heads *h, int k, const float *x, float *dx)
{
    const struct nn_node *n = node_of(h, k);
    const struct nn_params *p = h->params;
    struct nn_conv_shape s = n->conv;
    s.n = h->n;
    long M = (long)s.n * s.oh * s.ow;
    const float *dy = h->nd[k].dy, *y = h->nd[k].y, *gamma = nn_param_data(p, n->gamma);
    memset(h->dz, 0, (size_t)M * s.k * sizeof(float));
    if (h->nd[k].batch_stats) {
        const float *stats = h->nd[k].stats;
        float *dgamma = h->grads + p->items[n->gamma].offset, *dbeta = h->grads + p->items[n->beta].offset;
        nn_batchnorm_backward(h->dz, dgamma, dbeta, dy, h->nd[k].z, y, stats, stats + s.k, gamma, M, s.k, h->cfg.bn_eps,
                              true);
    } else {
        nn_batchnorm_backward_infer(h->dz, NULL, NULL, dy, NULL, y, gamma, nn_param_data(p, n->mean),
                                    nn_param_data(p, n->var), M, s.k, h->cfg.bn_eps, true);
    }
    float *dw = param_grad(h, n->w);
    if (dx || dw) nn_conv2d_backward(dx, dw, h->dz, x, nn_param_data(p, n->w), &s, h->scratch);
}

enum nn_status nn_heads_backward(struct nn_heads *h, const int32_t *labels, float label_smoothing, float aux_weight,
                                 double *loss)
{
    if (!h || !labels) return nn_fail(NN_ERR_ARG, "nn_heads_backward: NULL argument");
    if (!h->train_mode) return nn_fail(NN_ERR_ARG, "backward needs a training-mode forward");
    int n = h->n, K = h->cfg.num_classes;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return nn_fail(NN_ERR_ARG, "label %d of image %d is outside 0..%d", labels[i], i, K - 1);
    for (int k = 0; k < NN_HEADS_NODES; k++) h->nd[k].grad_ready = false;

    double total = nn_softmax_xent_forward(h->probs, nn_heads_logits(h), labels, n, K, label_smoothing);
    if (h->nd[NN_HEADS_FC].needs_grad)
        nn_softmax_xent_backward(grad_for_write(h, NN_HEADS_FC), h->probs, labels, n, K, label_smoothing, 1.0f);
    bool aux_on = h->aux_floats && aux_weight != 0.0f;
    if (aux_on) {
        total += aux_weight * nn_softmax_xent_forward(h->aux_probs, nn_heads_aux_logits(h), labels, n, K,
                                                      label_smoothing);
        if (h->nd[NN_HEADS_AUX_FC].needs_grad)
            nn_softmax_xent_backward(grad_for_write(h, NN_HEADS_AUX_FC), h->aux_probs, labels, n, K, label_smoothing,
                                     aux_weight);
    }
    if (loss) *loss = total;

    /* Reverse graph order. The dropout's input (the cached features) needs
     * no gradient, so the main head ends at fc. */
    if (h->nd[NN_HEADS_FC].grad_ready) fc_backward(h, NN_HEADS_FC, h->nd[NN_HEADS_DROPOUT].y, NULL);
    if (!aux_on || !h->nd[NN_HEADS_AUX_FC].grad_ready) return NN_OK;
    const struct nn_node *gap = node_of(h, NN_HEADS_AUX_GAP);
    int before_fc = gap ? NN_HEADS_AUX_GAP : NN_HEADS_AUX_CONV1;
    fc_backward(h, NN_HEADS_AUX_FC, h->nd[before_fc].y,
                h->nd[before_fc].needs_grad ? grad_for_write(h, before_fc) : NULL);
    if (gap && h->nd[NN_HEADS_AUX_GAP].grad_ready && h->nd[NN_HEADS_AUX_CONV1].needs_grad) {
        const struct nn_tensor *in = &h->g.tensors[gap->inputs[0]];
        nn_global_avgpool_backward(grad_for_write(h, NN_HEADS_AUX_CONV1), h->nd[NN_HEADS_AUX_GAP].dy, n,
                                   in->h * in->w, in->c);
    }
    if (h->nd[NN_HEADS_AUX_CONV1].grad_ready)
        conv_backward(h, NN_HEADS_AUX_CONV1, h->nd[NN_HEADS_AUX_CONV0].y,
                      h->nd[NN_HEADS_AUX_CONV0].needs_grad ? grad_for_write(h, NN_HEADS_AUX_CONV0) : NULL);
    if (h->nd[NN_HEADS_AUX_CONV0].grad_ready) conv_backward(h, NN_HEADS_AUX_CONV0, h->aux_in, NULL);
    return NN_OK;
}
