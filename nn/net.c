#include "nn/net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "nn/model.h"
#include "nn/plan.h"
#include "ops/activation.h"
#include "ops/batchnorm.h"
#include "ops/concat.h"
#include "ops/dense.h"
#include "ops/gemm.h"
#include "ops/winograd.h"

float *nn_net_tensor(const struct nn_net *net, int t) { return (float *)(net->arena + net->act[t]); }
static float *grad_of(const struct nn_net *net, int t) { return (float *)(net->arena + net->grad[t]); }
static float *at(const struct nn_net *net, size_t off) { return (float *)(net->arena + off); }

/* Floats of tensor t for the current batch of n images. */
static size_t live_count(const struct nn_net *net, int t)
{
    const struct nn_tensor *x = &net->g.tensors[t];
    return x->count / (size_t)x->n * (size_t)net->n;
}

static bool node_has_trainable(const struct nn_net *net, const struct nn_node *n)
{
    int ids[] = {n->w, n->gamma, n->beta, n->bias};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0 && net->trainable[ids[i]]) return true;
    return false;
}

/* What a node's backward reads, to extend lifetimes in the plan. */
static bool backward_reads_input(const struct nn_net *net, const struct nn_node *n)
{
    switch (n->kind) {
    case NN_NODE_CONV: return net->trainable[n->w] || !net->bn_batch_stats[n - net->g.nodes];
    case NN_NODE_FC: return net->trainable[n->w];
    case NN_NODE_MAXPOOL: return true;
    default: return false;
    }
}

static bool backward_reads_output(const struct nn_node *n)
{
    return n->kind == NN_NODE_CONV || n->kind == NN_NODE_MAXPOOL;
}

static void analyse(struct nn_net *net)
{
    struct nn_graph *g = &net->g;
    for (int i = 0; i < g->nnodes; i++) {
        const struct nn_node *n = &g->nodes[i];
        bool mine = node_has_trainable(net, n);
        net->bn_batch_stats[i] = n->kind == NN_NODE_CONV && n->gamma >= 0 &&
                                 (net->trainable[n->gamma] || net->trainable[n->beta]);
        bool upstream = false;
        for (int k = 0; k < n->ninputs; k++) upstream |= net->needs_grad[n->inputs[k]];
        net->needs_grad[n->output] = mine || upstream;
    }
}

/* Inference only: a conv whose output feeds nothing but a concatenation
 * writes straight into its channel slice of the concatenation's output
 * (the GEMM's row stride), so the copy disappears. The concatenation's
 * buffer then lives from the first such conv on. */
static void plan_in_place_concats(struct nn_net *net, struct nn_plan_buf *act)
{
    const struct nn_graph *g = &net->g;
    int *uses = calloc((size_t)g->ntensors, sizeof(int));
    if (!uses) return; /* an optimisation only */
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < g->nodes[i].ninputs; k++) uses[g->nodes[i].inputs[k]]++;
    int keep[] = {g->logits, g->aux_logits, g->pre_logits, g->aux_input};
    for (int i = 0; i < g->nnodes; i++) {
        const struct nn_node *n = &g->nodes[i];
        if (n->kind != NN_NODE_CONCAT) continue;
        for (int k = 0; k < n->ninputs; k++) {
            int t = n->inputs[k], p = g->tensors[t].producer;
            bool kept = false;
            for (int q = 0; q < 4; q++) kept |= keep[q] == t;
            if (p < 0 || g->nodes[p].kind != NN_NODE_CONV || uses[t] != 1 || kept) continue;
            net->in_place[t] = true;
            act[t].bytes = 0;
            if (act[n->output].first > act[t].first) act[n->output].first = act[t].first;
        }
    }
    free(uses);
}

/* Points every in-place conv output at its slice of the concatenation. */
static void resolve_in_place(struct nn_net *net)
{
    const struct nn_graph *g = &net->g;
    for (int i = 0; i < g->nnodes; i++) {
        const struct nn_node *n = &g->nodes[i];
        if (n->kind != NN_NODE_CONCAT) continue;
        size_t c0 = 0;
        for (int k = 0; k < n->ninputs; k++) {
            int t = n->inputs[k];
            if (net->in_place[t]) {
                net->act[t] = net->act[n->output] + c0 * sizeof(float);
                net->ld[t] = g->tensors[n->output].c;
            }
            c0 += (size_t)g->tensors[t].c;
        }
    }
}

enum nn_status nn_net_init(struct nn_net *net, const struct nn_config *cfg, struct nn_params *params, int batch,
                           const bool *trainable)
{
    memset(net, 0, sizeof *net);
    net->cfg = *cfg;
    net->params = params;
    net->training = trainable != NULL;
    if (net->training && cfg->folded)
        return nn_fail(NN_ERR_UNSUPPORTED, "a model with folded batch norm is for inference only: train from the unfrozen model");
    NN_TRY(nn_graph_build(&net->g, cfg, batch, params));
    struct nn_graph *g = &net->g;
    int T = g->nnodes, NT = g->ntensors;
    net->trainable = calloc((size_t)params->count, sizeof(bool));
    net->bn_batch_stats = calloc((size_t)T, sizeof(bool));
    net->needs_grad = calloc((size_t)NT, sizeof(bool));
    net->grad_ready = calloc((size_t)NT, sizeof(bool));
    net->act = calloc((size_t)NT, sizeof(size_t));
    net->grad = calloc((size_t)NT, sizeof(size_t));
    net->z = calloc((size_t)T, sizeof(size_t));
    net->stats = calloc((size_t)T, sizeof(size_t));
    net->ld = calloc((size_t)NT, sizeof(int));
    net->in_place = calloc((size_t)NT, sizeof(bool));
    net->affine_off = calloc((size_t)T, sizeof(size_t));
    /* buffers: act[NT], grad[NT], z[T], stats[T], dz, mask, probs, aux_probs */
    int nbufs = 2 * NT + 2 * T + 4;
    struct nn_plan_buf *bufs = calloc((size_t)nbufs, sizeof *bufs);
    if (!net->trainable || !net->bn_batch_stats || !net->needs_grad || !net->grad_ready || !net->act ||
        !net->grad || !net->z || !net->stats || !net->ld || !net->in_place || !net->affine_off || !bufs) {
        free(bufs);
        nn_net_free(net);
        return nn_fail(NN_ERR_NOMEM, "out of memory building the network");
    }
    if (trainable) {
        memcpy(net->trainable, trainable, (size_t)params->count * sizeof(bool));
        for (int i = 0; i < params->count; i++)
            if (!nn_param_learned(&params->items[i])) net->trainable[i] = false;
    }
    analyse(net);

    /* Time line: forward of node i at step i, the loss at step T, backward of
     * node i at step 2T - i. Results the caller reads live to the end. */
    const int end = 2 * T + 1;
    struct nn_plan_buf *act = bufs, *grad = bufs + NT, *z = bufs + 2 * NT, *stats = z + T, *extra = stats + T;
    for (int t = 0; t < NT; t++) {
        act[t].bytes = g->tensors[t].count * sizeof(float);
        act[t].first = act[t].last = g->tensors[t].producer < 0 ? 0 : g->tensors[t].producer;
        grad[t].first = end;
        grad[t].last = -1;
    }
    int keep[] = {g->logits, g->aux_logits, g->pre_logits, g->aux_input};
    for (int k = 0; k < 4; k++)
        if (keep[k] >= 0) act[keep[k]].last = end;
    size_t conv_scratch = 0, max_z = 0;
    for (int i = 0; i < T; i++) {
        const struct nn_node *n = &g->nodes[i];
        bool runs_backward = net->training && net->needs_grad[n->output];
        int bwd = 2 * T - i;
        for (int k = 0; k < n->ninputs; k++) {
            int t = n->inputs[k];
            if (act[t].last < i) act[t].last = i;
            if (runs_backward && backward_reads_input(net, n) && act[t].last < bwd) act[t].last = bwd;
            if (runs_backward && net->needs_grad[t]) {
                /* the gradient is written first by the latest consumer */
                if (grad[t].first > bwd) grad[t].first = bwd;
            }
        }
        if (runs_backward) {
            if (backward_reads_output(n) && act[n->output].last < bwd) act[n->output].last = bwd;
            if (grad[n->output].last < bwd) grad[n->output].last = bwd;
            if (grad[n->output].first > bwd) grad[n->output].first = bwd;
        }
        if (n->kind == NN_NODE_CONV) {
            size_t sc = nn_conv2d_scratch_floats(&n->conv);
            if (sc > conv_scratch) conv_scratch = sc;
            size_t zc = g->tensors[n->output].count;
            if (zc > max_z) max_z = zc;
            if (net->training && net->bn_batch_stats[i]) {
                z[i] = (struct nn_plan_buf){zc * sizeof(float), i, runs_backward ? bwd : i, 0};
                stats[i] = (struct nn_plan_buf){2 * (size_t)n->conv.k * sizeof(float), i, runs_backward ? bwd : i, 0};
            }
        }
    }
    if (!net->training) plan_in_place_concats(net, act);
    int K = cfg->num_classes;
    if (net->training) {
        int logit_ts[] = {g->logits, g->aux_logits};
        for (int k = 0; k < 2; k++)
            if (logit_ts[k] >= 0 && net->needs_grad[logit_ts[k]]) grad[logit_ts[k]].first = T;
        for (int t = 0; t < NT; t++) {
            if (!net->needs_grad[t] || grad[t].last < 0) grad[t].bytes = 0;
            else grad[t].bytes = g->tensors[t].count * sizeof(float);
        }
        extra[0] = (struct nn_plan_buf){max_z * sizeof(float), T, end, 0};                    /* dz */
        extra[1] = (struct nn_plan_buf){g->tensors[g->pre_logits].count * sizeof(float), 0, end, 0}; /* mask */
        extra[2] = (struct nn_plan_buf){(size_t)batch * K * sizeof(float), T, end, 0};       /* probs */
        extra[3] = (struct nn_plan_buf){(size_t)batch * K * sizeof(float), T, end, 0};       /* aux probs */
    }
    size_t total = 0;
    enum nn_status st = nn_plan_assign(bufs, nbufs, &total);
    if (st == NN_OK) {
        for (int t = 0; t < NT; t++) {
            net->act[t] = act[t].offset;
            net->grad[t] = grad[t].offset;
            net->ld[t] = g->tensors[t].c;
        }
        resolve_in_place(net);
        for (int i = 0; i < T; i++) {
            net->z[i] = z[i].offset;
            net->stats[i] = stats[i].offset;
        }
        net->dz = extra[0].offset;
        net->mask = extra[1].offset;
        net->probs = extra[2].offset;
        net->aux_probs = extra[3].offset;
        net->arena_bytes = total;
        net->arena = nn_alloc(total ? total : NN_ALIGN);
        net->scratch = nn_alloc((conv_scratch ? conv_scratch : 16) * sizeof(float));
        if (net->training) net->grads = nn_calloc(params->total * sizeof(float));
        size_t affine = 0;
        for (int i = 0; i < T; i++) {
            net->affine_off[i] = affine;
            if (g->nodes[i].kind == NN_NODE_CONV) affine += 2 * (size_t)g->nodes[i].conv.k;
        }
        if (!net->training && !(net->bn_affine = nn_alloc((affine ? affine : 1) * sizeof(float))))
            st = nn_fail(NN_ERR_NOMEM, "out of memory");
        if (!net->arena || !net->scratch || (net->training && !net->grads))
            st = nn_fail(NN_ERR_NOMEM, "cannot allocate %.1f MB for the network's activations", total / 1e6);
    }
    free(bufs);
    if (st != NN_OK) {
        nn_net_free(net);
        return st;
    }
    nn_rng_seed(&net->dropout_rng, 0x5eed, 11);
    return NN_OK;
}

void nn_net_free(struct nn_net *net)
{
    nn_graph_free(&net->g);
    free(net->trainable);
    free(net->bn_batch_stats);
    free(net->needs_grad);
    free(net->grad_ready);
    free(net->act);
    free(net->grad);
    free(net->z);
    free(net->stats);
    free(net->ld);
    free(net->in_place);
    free(net->affine_off);
    nn_free(net->bn_affine);
    nn_free(net->arena);
    nn_free(net->scratch);
    nn_free(net->grads);
    free(net->prof_fwd);
    free(net->prof_bwd);
    memset(net, 0, sizeof *net);
}

enum nn_status nn_net_enable_profile(struct nn_net *net)
{
    if (!net->prof_fwd) net->prof_fwd = calloc((size_t)net->g.nnodes, sizeof(double));
    if (!net->prof_bwd) net->prof_bwd = calloc((size_t)net->g.nnodes, sizeof(double));
    if (!net->prof_fwd || !net->prof_bwd) return nn_fail(NN_ERR_NOMEM, "out of memory");
    return NN_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

size_t nn_net_memory(const struct nn_net *net)
{
    size_t bytes = net->arena_bytes;
    if (net->training) bytes += net->params->total * sizeof(float);
    return bytes;
}

void nn_net_use_lowp(struct nn_net *net, const struct nn_conv_lowp *lowp) { net->lowp = lowp; }

static void conv_node_forward(struct nn_net *net, int i, bool train_mode)
{
    const struct nn_node *n = &net->g.nodes[i];
    const struct nn_params *p = net->params;
    struct nn_conv_shape s = n->conv;
    s.n = net->n;
    long M = (long)s.n * s.oh * s.ow;
    float *x = nn_net_tensor(net, n->inputs[0]), *y = nn_net_tensor(net, n->output);
    if (!net->training) {
        /* batch norm (or a folded model's bias) and ReLU inside the GEMM */
        struct nn_gemm_epilogue ep = {.relu = true};
        if (net->lowp) {
            /* bf16/int8: bias, ReLU and the int8 dequantisation in the epilogue */
            const struct nn_conv_lowp *lw = &net->lowp[n->w];
            ep.scale = lw->scale;
            ep.shift = nn_param_data(p, n->bias);
            if (lw->wino[0] && nn_winograd_applies(&s))
                nn_conv2d_winograd_forward_lowp(y, net->ld[n->output], x, (const struct nn_lowp_weights *const *)lw->wino,
                                                &s, net->scratch, &ep);
            else nn_conv2d_forward_lowp(y, net->ld[n->output], x, lw->w, lw->a_inv_scale, &s, net->scratch, &ep);
            return;
        }
        if (net->cfg.folded) {
            ep.shift = nn_param_data(p, n->bias);
        } else {
            float *scale = net->bn_affine + net->affine_off[i], *shift = scale + s.k;
            const float *gamma = nn_param_data(p, n->gamma), *beta = nn_param_data(p, n->beta);
            const float *mean = nn_param_data(p, n->mean), *var = nn_param_data(p, n->var);
            for (int k = 0; k < s.k; k++) {
                scale[k] = gamma[k] / sqrtf(var[k] + net->cfg.bn_eps);
                shift[k] = beta[k] - mean[k] * scale[k];
            }
            ep.scale = scale;
            ep.shift = shift;
        }
        nn_conv2d_forward_fused(y, net->ld[n->output], x, nn_param_data(p, n->w), &s, net->scratch, &ep);
        return;
    }
    const float *gamma = nn_param_data(p, n->gamma), *beta = nn_param_data(p, n->beta);
    float *rmean = nn_param_data(p, n->mean), *rvar = nn_param_data(p, n->var);
    if (train_mode && net->bn_batch_stats[i]) {
        float *z = at(net, net->z[i]), *stats = at(net, net->stats[i]);
        nn_conv2d_forward(z, x, nn_param_data(p, n->w), &s, net->scratch);
        nn_batchnorm_forward_train(y, stats, stats + s.k, z, gamma, beta, rmean, rvar, M, s.k, net->cfg.bn_eps,
                                   net->cfg.bn_decay, true);
    } else {
        nn_conv2d_forward(y, x, nn_param_data(p, n->w), &s, net->scratch);
        nn_batchnorm_forward_infer(y, y, gamma, beta, rmean, rvar, M, s.k, net->cfg.bn_eps, true);
    }
}

enum nn_status nn_net_forward(struct nn_net *net, const float *images, int n, bool train_mode, bool dropout)
{
    if (!net || !images) return nn_fail(NN_ERR_ARG, "nn_net_forward: NULL argument");
    if (n < 1 || n > net->g.batch)
        return nn_fail(NN_ERR_ARG, "batch of %d images: this network takes 1 to %d", n, net->g.batch);
    if (train_mode && !net->training) return nn_fail(NN_ERR_ARG, "training forward on an inference network");
    if (net->cfg.precision != NN_PRECISION_F32 && !net->lowp)
        return nn_fail(NN_ERR_INTERNAL, "a %s network without its packed weights (nn_net_use_lowp)",
                       nn_precision_name(net->cfg.precision));
    net->n = n;
    net->train_mode = train_mode;
    struct nn_graph *g = &net->g;
    memcpy(nn_net_tensor(net, g->input), images, live_count(net, g->input) * sizeof(float));
    for (int i = 0; i < g->nnodes; i++) {
        const struct nn_node *node = &g->nodes[i];
        double t0 = net->prof_fwd ? now_seconds() : 0;
        float *x = nn_net_tensor(net, node->inputs[0]), *y = nn_net_tensor(net, node->output);
        const struct nn_tensor *in = &g->tensors[node->inputs[0]];
        switch (node->kind) {
        case NN_NODE_CONV:
            if (net->observe) net->observe(net->observe_user, i, x, live_count(net, node->inputs[0]));
            conv_node_forward(net, i, train_mode);
            break;
        case NN_NODE_MAXPOOL:
        case NN_NODE_AVGPOOL: {
            struct nn_pool_shape s = node->pool;
            s.n = n;
            if (node->kind == NN_NODE_MAXPOOL) nn_maxpool_forward(y, x, &s);
            else nn_avgpool_forward(y, x, &s);
            break;
        }
        case NN_NODE_CONCAT: {
            const float *ins[NN_MAX_INPUTS];
            int channels[NN_MAX_INPUTS];
            for (int k = 0; k < node->ninputs; k++) {
                ins[k] = net->in_place[node->inputs[k]] ? NULL : nn_net_tensor(net, node->inputs[k]);
                channels[k] = g->tensors[node->inputs[k]].c;
            }
            nn_concat_forward(y, ins, channels, node->ninputs, (long)n * in->h * in->w);
            break;
        }
        case NN_NODE_GAP: nn_global_avgpool_forward(y, x, n, in->h * in->w, in->c); break;
        case NN_NODE_DROPOUT:
            if (train_mode && dropout && net->cfg.dropout_keep < 1.0f)
                nn_dropout_forward(y, at(net, net->mask), x, live_count(net, node->inputs[0]), net->cfg.dropout_keep,
                                   &net->dropout_rng);
            else memcpy(y, x, live_count(net, node->inputs[0]) * sizeof(float));
            break;
        case NN_NODE_FC:
            nn_fc_forward(y, x, nn_param_data(net->params, node->w), nn_param_data(net->params, node->bias), n,
                          (int)(in->count / in->n), g->tensors[node->output].c);
            break;
        }
        if (net->prof_fwd) net->prof_fwd[i] += now_seconds() - t0;
    }
    net->dropout_on = train_mode && dropout && net->cfg.dropout_keep < 1.0f;
    return NN_OK;
}

const float *nn_net_logits(const struct nn_net *net) { return nn_net_tensor(net, net->g.logits); }
const float *nn_net_aux_logits(const struct nn_net *net)
{
    return net->g.aux_logits >= 0 ? nn_net_tensor(net, net->g.aux_logits) : NULL;
}
const float *nn_net_pre_logits(const struct nn_net *net) { return nn_net_tensor(net, net->g.pre_logits); }
const float *nn_net_aux_input(const struct nn_net *net)
{
    return net->g.aux_input >= 0 ? nn_net_tensor(net, net->g.aux_input) : NULL;
}

void nn_net_zero_grads(struct nn_net *net)
{
    if (net->grads) memset(net->grads, 0, net->params->total * sizeof(float));
}

/* The gradient buffer of tensor t, zeroed on first use in this backward
 * (buffers are shared by lifetime, so they hold stale values until then). */
static float *grad_for_write(struct nn_net *net, int t)
{
    float *gbuf = grad_of(net, t);
    if (!net->grad_ready[t]) {
        memset(gbuf, 0, live_count(net, t) * sizeof(float));
        net->grad_ready[t] = true;
    }
    return gbuf;
}

static float *param_grad(struct nn_net *net, int param)
{
    return param >= 0 && net->trainable[param] ? net->grads + net->params->items[param].offset : NULL;
}

static void conv_node_backward(struct nn_net *net, int i)
{
    const struct nn_node *n = &net->g.nodes[i];
    const struct nn_params *p = net->params;
    struct nn_conv_shape s = n->conv;
    s.n = net->n;
    long M = (long)s.n * s.oh * s.ow;
    int in = n->inputs[0];
    const float *dy = grad_of(net, n->output), *y = nn_net_tensor(net, n->output);
    const float *gamma = nn_param_data(p, n->gamma);
    float *dz = at(net, net->dz);
    if (net->bn_batch_stats[i]) {
        const float *stats = at(net, net->stats[i]);
        float *dgamma = net->grads + p->items[n->gamma].offset, *dbeta = net->grads + p->items[n->beta].offset;
        nn_batchnorm_backward_set(dz, dgamma, dbeta, dy, at(net, net->z[i]), y, stats, stats + s.k, gamma, M, s.k,
                              net->cfg.bn_eps, true);
    } else {
        nn_batchnorm_backward_infer_set(dz, NULL, NULL, dy, NULL, y, gamma, nn_param_data(p, n->mean),
                                    nn_param_data(p, n->var), M, s.k, net->cfg.bn_eps, true);
    }
    float *dx = net->needs_grad[in] ? grad_for_write(net, in) : NULL;
    float *dw = param_grad(net, n->w);
    if (dx || dw) nn_conv2d_backward(dx, dw, dz, nn_net_tensor(net, in), nn_param_data(p, n->w), &s, net->scratch);
}

enum nn_status nn_net_backward(struct nn_net *net, const int32_t *labels, float label_smoothing, float aux_weight,
                               double *loss)
{
    if (!net || !labels) return nn_fail(NN_ERR_ARG, "nn_net_backward: NULL argument");
    if (!net->training || !net->train_mode)
        return nn_fail(NN_ERR_ARG, "backward needs a training network after a training-mode forward");
    struct nn_graph *g = &net->g;
    int n = net->n, K = net->cfg.num_classes;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return nn_fail(NN_ERR_ARG, "label %d of image %d is outside 0..%d", labels[i], i, K - 1);
    memset(net->grad_ready, 0, (size_t)g->ntensors * sizeof(bool));

    float *probs = at(net, net->probs);
    double total = nn_softmax_xent_forward(probs, nn_net_logits(net), labels, n, K, label_smoothing);
    if (net->needs_grad[g->logits])
        nn_softmax_xent_backward(grad_for_write(net, g->logits), probs, labels, n, K, label_smoothing, 1.0f);
    if (g->aux_logits >= 0 && aux_weight != 0.0f) {
        float *aux_probs = at(net, net->aux_probs);
        total += aux_weight *
                 nn_softmax_xent_forward(aux_probs, nn_net_aux_logits(net), labels, n, K, label_smoothing);
        if (net->needs_grad[g->aux_logits])
            nn_softmax_xent_backward(grad_for_write(net, g->aux_logits), aux_probs, labels, n, K, label_smoothing,
                                     aux_weight);
    }
    if (loss) *loss = total;

    for (int i = g->nnodes - 1; i >= 0; i--) {
        const struct nn_node *node = &g->nodes[i];
        if (!net->needs_grad[node->output]) continue;
        if (!net->grad_ready[node->output]) continue; /* nothing downstream reached it (aux head off in the loss) */
        int in = node->inputs[0];
        const struct nn_tensor *xt = &g->tensors[in];
        const float *dy = grad_of(net, node->output);
        double t0 = net->prof_bwd ? now_seconds() : 0;
        switch (node->kind) {
        case NN_NODE_CONV: conv_node_backward(net, i); break;
        case NN_NODE_MAXPOOL:
        case NN_NODE_AVGPOOL:
            if (net->needs_grad[in]) {
                struct nn_pool_shape s = node->pool;
                s.n = n;
                if (node->kind == NN_NODE_MAXPOOL)
                    nn_maxpool_backward(grad_for_write(net, in), dy, nn_net_tensor(net, in),
                                        nn_net_tensor(net, node->output), &s);
                else nn_avgpool_backward(grad_for_write(net, in), dy, &s);
            }
            break;
        case NN_NODE_CONCAT: {
            float *dins[NN_MAX_INPUTS];
            int channels[NN_MAX_INPUTS];
            for (int k = 0; k < node->ninputs; k++) {
                int t = node->inputs[k];
                dins[k] = net->needs_grad[t] ? grad_for_write(net, t) : NULL;
                channels[k] = g->tensors[t].c;
            }
            nn_concat_backward(dins, dy, channels, node->ninputs, (long)n * xt->h * xt->w);
            break;
        }
        case NN_NODE_GAP:
            if (net->needs_grad[in]) nn_global_avgpool_backward(grad_for_write(net, in), dy, n, xt->h * xt->w, xt->c);
            break;
        case NN_NODE_DROPOUT:
            if (net->needs_grad[in]) {
                float *dx = grad_for_write(net, in);
                long count = (long)live_count(net, in);
                if (net->dropout_on) nn_dropout_backward(dx, dy, at(net, net->mask), count);
                else
                    for (long k = 0; k < count; k++) dx[k] += dy[k];
            }
            break;
        case NN_NODE_FC: {
            float *dx = net->needs_grad[in] ? grad_for_write(net, in) : NULL;
            nn_fc_backward(dx, param_grad(net, node->w), param_grad(net, node->bias), dy, nn_net_tensor(net, in),
                           nn_param_data(net->params, node->w), n, (int)(xt->count / xt->n), g->tensors[node->output].c);
            break;
        }
        }
        if (net->prof_bwd) net->prof_bwd[i] += now_seconds() - t0;
    }
    return NN_OK;
}
