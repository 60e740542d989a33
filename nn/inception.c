/* Inception-v3 exactly as TF-slim's nets/inception_v3.py defines it, with
 * torchvision's layer names. Block by block, each conv is TF-slim's
 * conv2d + batch norm + ReLU; stride-2 convs and max pools are VALID, the
 * stem's 2a and 4a convs are VALID, everything inside Mixed blocks is SAME.
 * Concatenation order follows the reference (and so do the channel slices
 * of every Mixed block's output). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"

struct builder {
    struct nn_graph *g;
    struct nn_params *params;
    const struct nn_config *cfg;
    bool declaring;     /* params are being created, not looked up */
    int next_param;     /* lookup mode: index the next declaration must have */
    enum nn_status st;  /* first failure; later calls become no-ops */
};

static bool failed(const struct builder *b) { return b->st != NN_OK; }

static int add_tensor(struct builder *b, int n, int h, int w, int c, int producer)
{
    struct nn_graph *g = b->g;
    if (failed(b)) return 0;
    if (g->ntensors == g->cap_tensors) {
        int cap = g->cap_tensors ? g->cap_tensors * 2 : 256;
        struct nn_tensor *t = realloc(g->tensors, (size_t)cap * sizeof *t);
        if (!t) {
            b->st = nn_fail(NN_ERR_NOMEM, "out of memory building the graph");
            return 0;
        }
        g->tensors = t;
        g->cap_tensors = cap;
    }
    struct nn_tensor *t = &g->tensors[g->ntensors];
    memset(t, 0, sizeof *t);
    t->n = n;
    t->h = h;
    t->w = w;
    t->c = c;
    t->count = (size_t)n * h * w * c;
    t->producer = producer;
    return g->ntensors++;
}

static struct nn_node *add_node(struct builder *b, enum nn_node_kind kind, const char *name)
{
    struct nn_graph *g = b->g;
    if (failed(b)) return NULL;
    if (g->nnodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 128;
        struct nn_node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n) {
            b->st = nn_fail(NN_ERR_NOMEM, "out of memory building the graph");
            return NULL;
        }
        g->nodes = n;
        g->cap_nodes = cap;
    }
    struct nn_node *node = &g->nodes[g->nnodes++];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    snprintf(node->name, sizeof node->name, "%s", name);
    node->w = node->gamma = node->beta = node->mean = node->var = node->bias = node->wscale = node->ascale = -1;
    return node;
}

static int param(struct builder *b, const char *layer, const char *suffix, enum nn_param_kind kind, int ndim,
                 const int *shape)
{
    if (failed(b)) return -1;
    char name[NN_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", layer, suffix);
    if (b->declaring) {
        int i = nn_params_add(b->params, name, kind, ndim, shape);
        if (i < 0) b->st = nn_fail(NN_ERR_NOMEM, "out of memory declaring %s", name);
        return i;
    }
    int i = b->next_param++;
    const struct nn_param *p = i < b->params->count ? &b->params->items[i] : NULL;
    bool same = p && !strcmp(p->name, name) && p->kind == kind && p->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = p->shape[d] == shape[d];
    if (!same) {
        b->st = nn_fail(NN_ERR_SHAPE, "parameter %s does not match the model's table", name);
        return -1;
    }
    return i;
}

/* TF-slim's conv2d with batch norm and ReLU. */
static int conv(struct builder *b, const char *name, int in, int k, int kh, int kw, int stride, enum nn_padding pad)
{
    if (failed(b)) return 0;
    const struct nn_tensor x = b->g->tensors[in];
    struct nn_node *node = add_node(b, NN_NODE_CONV, name);
    if (!node) return 0;
    enum nn_status st = nn_conv_shape_init(&node->conv, x.n, x.h, x.w, x.c, k, kh, kw, stride, pad);
    if (st != NN_OK) {
        b->st = nn_fail(st, "layer %s: input %dx%d is too small for its %dx%d kernel (image size too small?)", name,
                        x.h, x.w, kh, kw);
        return 0;
    }
    int wshape[4] = {kh, kw, x.c, k}, cshape[1] = {k};
    char layer[NN_PARAM_NAME_MAX];
    snprintf(layer, sizeof layer, "%s.conv", name);
    node->w = param(b, layer, "weight", NN_PARAM_CONV_W, 4, wshape);
    if (b->cfg->folded) {
        node->bias = param(b, layer, "bias", NN_PARAM_CONV_B, 1, cshape);
        if (b->cfg->precision == NN_PRECISION_INT8) {
            int one[1] = {1};
            node->wscale = param(b, layer, "weight_scale", NN_PARAM_CONV_WSCALE, 1, cshape);
            node->ascale = param(b, layer, "input_scale", NN_PARAM_CONV_ASCALE, 1, one);
        }
        goto connect;
    }
    snprintf(layer, sizeof layer, "%s.bn", name);
    node->gamma = param(b, layer, "weight", NN_PARAM_BN_GAMMA, 1, cshape);
    node->beta = param(b, layer, "bias", NN_PARAM_BN_BETA, 1, cshape);
    node->mean = param(b, layer, "running_mean", NN_PARAM_BN_MEAN, 1, cshape);
    node->var = param(b, layer, "running_var", NN_PARAM_BN_VAR, 1, cshape);
connect:
    node->inputs[0] = in;
    node->ninputs = 1;
    node->output = add_tensor(b, x.n, node->conv.oh, node->conv.ow, k, b->g->nnodes - 1);
    return node->output;
}

static int pool(struct builder *b, enum nn_node_kind kind, const char *name, int in, int k, int stride,
                enum nn_padding pad)
{
    if (failed(b)) return 0;
    const struct nn_tensor x = b->g->tensors[in];
    struct nn_node *node = add_node(b, kind, name);
    if (!node) return 0;
    enum nn_status st = nn_pool_shape_init(&node->pool, x.n, x.h, x.w, x.c, k, k, stride, pad);
    if (st != NN_OK) {
        b->st = nn_fail(st, "layer %s: input %dx%d is too small for its %dx%d window (image size too small?)", name,
                        x.h, x.w, k, k);
        return 0;
    }
    node->inputs[0] = in;
    node->ninputs = 1;
    node->output = add_tensor(b, x.n, node->pool.oh, node->pool.ow, x.c, b->g->nnodes - 1);
    return node->output;
}

static int concat(struct builder *b, const char *name, const int *ins, int count)
{
    if (failed(b)) return 0;
    struct nn_node *node = add_node(b, NN_NODE_CONCAT, name);
    if (!node) return 0;
    const struct nn_tensor first = b->g->tensors[ins[0]];
    int c = 0;
    for (int i = 0; i < count; i++) {
        const struct nn_tensor *t = &b->g->tensors[ins[i]];
        if (t->h != first.h || t->w != first.w) {
            b->st = nn_fail(NN_ERR_INTERNAL, "%s: branch sizes differ", name);
            return 0;
        }
        node->inputs[i] = ins[i];
        c += t->c;
    }
    node->ninputs = count;
    node->output = add_tensor(b, first.n, first.h, first.w, c, b->g->nnodes - 1);
    return node->output;
}

static int fc(struct builder *b, const char *name, int in, int k)
{
    if (failed(b)) return 0;
    const struct nn_tensor x = b->g->tensors[in];
    struct nn_node *node = add_node(b, NN_NODE_FC, name);
    if (!node) return 0;
    int in_features = x.h * x.w * x.c;
    int wshape[2] = {in_features, k}, bshape[1] = {k};
    node->w = param(b, name, "weight", NN_PARAM_FC_W, 2, wshape);
    node->bias = param(b, name, "bias", NN_PARAM_FC_B, 1, bshape);
    node->inputs[0] = in;
    node->ninputs = 1;
    node->output = add_tensor(b, x.n, 1, 1, k, b->g->nnodes - 1);
    return node->output;
}

static int simple(struct builder *b, enum nn_node_kind kind, const char *name, int in)
{
    if (failed(b)) return 0;
    const struct nn_tensor x = b->g->tensors[in];
    struct nn_node *node = add_node(b, kind, name);
    if (!node) return 0;
    node->inputs[0] = in;
    node->ninputs = 1;
    int hw = kind == NN_NODE_GAP ? 1 : 0;
    node->output = add_tensor(b, x.n, hw ? 1 : x.h, hw ? 1 : x.w, x.c, b->g->nnodes - 1);
    return node->output;
}

/* "Mixed_5b" + "branch1x1" -> "Mixed_5b.branch1x1" */
static const char *nm(char *buf, const char *block, const char *layer)
{
    snprintf(buf, NN_PARAM_NAME_MAX, "%s.%s", block, layer);
    return buf;
}

#define SAME NN_PAD_SAME
#define VALID NN_PAD_VALID

/* 35x35 blocks (torchvision's InceptionA). */
static int block_a(struct builder *b, const char *blk, int x, int pool_features)
{
    char n[NN_PARAM_NAME_MAX];
    int b1 = conv(b, nm(n, blk, "branch1x1"), x, 64, 1, 1, 1, SAME);
    int b5 = conv(b, nm(n, blk, "branch5x5_1"), x, 48, 1, 1, 1, SAME);
    b5 = conv(b, nm(n, blk, "branch5x5_2"), b5, 64, 5, 5, 1, SAME);
    int b3 = conv(b, nm(n, blk, "branch3x3dbl_1"), x, 64, 1, 1, 1, SAME);
    b3 = conv(b, nm(n, blk, "branch3x3dbl_2"), b3, 96, 3, 3, 1, SAME);
    b3 = conv(b, nm(n, blk, "branch3x3dbl_3"), b3, 96, 3, 3, 1, SAME);
    int bp = pool(b, NN_NODE_AVGPOOL, nm(n, blk, "avg_pool"), x, 3, 1, SAME);
    bp = conv(b, nm(n, blk, "branch_pool"), bp, pool_features, 1, 1, 1, SAME);
    int outs[] = {b1, b5, b3, bp};
    return concat(b, blk, outs, 4);
}

/* 35x35 -> 17x17 reduction (InceptionB). */
static int block_b(struct builder *b, const char *blk, int x)
{
    char n[NN_PARAM_NAME_MAX];
    int b3 = conv(b, nm(n, blk, "branch3x3"), x, 384, 3, 3, 2, VALID);
    int bd = conv(b, nm(n, blk, "branch3x3dbl_1"), x, 64, 1, 1, 1, SAME);
    bd = conv(b, nm(n, blk, "branch3x3dbl_2"), bd, 96, 3, 3, 1, SAME);
    bd = conv(b, nm(n, blk, "branch3x3dbl_3"), bd, 96, 3, 3, 2, VALID);
    int bp = pool(b, NN_NODE_MAXPOOL, nm(n, blk, "max_pool"), x, 3, 2, VALID);
    int outs[] = {b3, bd, bp};
    return concat(b, blk, outs, 3);
}

/* 17x17 blocks with factorised 7x7 convolutions (InceptionC). */
static int block_c(struct builder *b, const char *blk, int x, int c7)
{
    char n[NN_PARAM_NAME_MAX];
    int b1 = conv(b, nm(n, blk, "branch1x1"), x, 192, 1, 1, 1, SAME);
    int b7 = conv(b, nm(n, blk, "branch7x7_1"), x, c7, 1, 1, 1, SAME);
    b7 = conv(b, nm(n, blk, "branch7x7_2"), b7, c7, 1, 7, 1, SAME);
    b7 = conv(b, nm(n, blk, "branch7x7_3"), b7, 192, 7, 1, 1, SAME);
    int bd = conv(b, nm(n, blk, "branch7x7dbl_1"), x, c7, 1, 1, 1, SAME);
    bd = conv(b, nm(n, blk, "branch7x7dbl_2"), bd, c7, 7, 1, 1, SAME);
    bd = conv(b, nm(n, blk, "branch7x7dbl_3"), bd, c7, 1, 7, 1, SAME);
    bd = conv(b, nm(n, blk, "branch7x7dbl_4"), bd, c7, 7, 1, 1, SAME);
    bd = conv(b, nm(n, blk, "branch7x7dbl_5"), bd, 192, 1, 7, 1, SAME);
    int bp = pool(b, NN_NODE_AVGPOOL, nm(n, blk, "avg_pool"), x, 3, 1, SAME);
    bp = conv(b, nm(n, blk, "branch_pool"), bp, 192, 1, 1, 1, SAME);
    int outs[] = {b1, b7, bd, bp};
    return concat(b, blk, outs, 4);
}

/* 17x17 -> 8x8 reduction (InceptionD). */
static int block_d(struct builder *b, const char *blk, int x)
{
    char n[NN_PARAM_NAME_MAX];
    int b3 = conv(b, nm(n, blk, "branch3x3_1"), x, 192, 1, 1, 1, SAME);
    b3 = conv(b, nm(n, blk, "branch3x3_2"), b3, 320, 3, 3, 2, VALID);
    int b7 = conv(b, nm(n, blk, "branch7x7x3_1"), x, 192, 1, 1, 1, SAME);
    b7 = conv(b, nm(n, blk, "branch7x7x3_2"), b7, 192, 1, 7, 1, SAME);
    b7 = conv(b, nm(n, blk, "branch7x7x3_3"), b7, 192, 7, 1, 1, SAME);
    b7 = conv(b, nm(n, blk, "branch7x7x3_4"), b7, 192, 3, 3, 2, VALID);
    int bp = pool(b, NN_NODE_MAXPOOL, nm(n, blk, "max_pool"), x, 3, 2, VALID);
    int outs[] = {b3, b7, bp};
    return concat(b, blk, outs, 3);
}

/* 8x8 blocks with expanded filter banks (InceptionE). The two split
 * branches concatenate [1x3, 3x1] in place, so the block's output is one
 * six-way concatenation with the reference's channel order. */
static int block_e(struct builder *b, const char *blk, int x)
{
    char n[NN_PARAM_NAME_MAX];
    int b1 = conv(b, nm(n, blk, "branch1x1"), x, 320, 1, 1, 1, SAME);
    int b3 = conv(b, nm(n, blk, "branch3x3_1"), x, 384, 1, 1, 1, SAME);
    int b3a = conv(b, nm(n, blk, "branch3x3_2a"), b3, 384, 1, 3, 1, SAME);
    int b3b = conv(b, nm(n, blk, "branch3x3_2b"), b3, 384, 3, 1, 1, SAME);
    int bd = conv(b, nm(n, blk, "branch3x3dbl_1"), x, 448, 1, 1, 1, SAME);
    bd = conv(b, nm(n, blk, "branch3x3dbl_2"), bd, 384, 3, 3, 1, SAME);
    int bda = conv(b, nm(n, blk, "branch3x3dbl_3a"), bd, 384, 1, 3, 1, SAME);
    int bdb = conv(b, nm(n, blk, "branch3x3dbl_3b"), bd, 384, 3, 1, 1, SAME);
    int bp = pool(b, NN_NODE_AVGPOOL, nm(n, blk, "avg_pool"), x, 3, 1, SAME);
    bp = conv(b, nm(n, blk, "branch_pool"), bp, 192, 1, 1, 1, SAME);
    int outs[] = {b1, b3a, b3b, bda, bdb, bp};
    return concat(b, blk, outs, 6);
}

/* The auxiliary head on Mixed_6e. For small inputs the pool and conv
 * kernels shrink to the feature map, as TF-slim's
 * _reduced_kernel_size_for_small_input does; at 299 they are 5x5. */
static int aux_head(struct builder *b, int x, int num_classes)
{
    const struct nn_tensor t = b->g->tensors[x];
    int k = t.h < 5 ? t.h : 5;
    if (t.w < k) k = t.w;
    int p = pool(b, NN_NODE_AVGPOOL, "AuxLogits.avg_pool", x, k, 3, VALID);
    p = conv(b, "AuxLogits.conv0", p, 128, 1, 1, 1, SAME);
    const struct nn_tensor pt = b->g->tensors[p];
    int k1 = pt.h < 5 ? pt.h : 5;
    if (pt.w < k1) k1 = pt.w;
    p = conv(b, "AuxLogits.conv1", p, 768, k1, k1, 1, VALID);
    if (!failed(b) && (b->g->tensors[p].h != 1 || b->g->tensors[p].w != 1))
        p = simple(b, NN_NODE_GAP, "AuxLogits.global_pool", p);
    return fc(b, "AuxLogits.fc", p, num_classes);
}

enum nn_status nn_graph_build(struct nn_graph *g, const struct nn_config *cfg, int batch, struct nn_params *params)
{
    memset(g, 0, sizeof *g);
    if (batch < 1) return nn_fail(NN_ERR_ARG, "batch size must be >= 1 (got %d)", batch);
    if (cfg->num_classes < 1) return nn_fail(NN_ERR_ARG, "num_classes must be >= 1 (got %d)", cfg->num_classes);
    if (cfg->image_size < 75)
        return nn_fail(NN_ERR_ARG, "image size %d is too small: Inception-v3 needs at least 75", cfg->image_size);
    struct builder b = {.g = g, .params = params, .cfg = cfg, .declaring = params->count == 0};
    g->batch = batch;
    g->aux_logits = g->aux_input = -1;
    int s = cfg->image_size;
    g->input = add_tensor(&b, batch, s, s, 3, -1);

    int x = conv(&b, "Conv2d_1a_3x3", g->input, 32, 3, 3, 2, VALID);
    x = conv(&b, "Conv2d_2a_3x3", x, 32, 3, 3, 1, VALID);
    x = conv(&b, "Conv2d_2b_3x3", x, 64, 3, 3, 1, SAME);
    x = pool(&b, NN_NODE_MAXPOOL, "MaxPool_3a_3x3", x, 3, 2, VALID);
    x = conv(&b, "Conv2d_3b_1x1", x, 80, 1, 1, 1, VALID);
    x = conv(&b, "Conv2d_4a_3x3", x, 192, 3, 3, 1, VALID);
    x = pool(&b, NN_NODE_MAXPOOL, "MaxPool_5a_3x3", x, 3, 2, VALID);
    x = block_a(&b, "Mixed_5b", x, 32);
    x = block_a(&b, "Mixed_5c", x, 64);
    x = block_a(&b, "Mixed_5d", x, 64);
    x = block_b(&b, "Mixed_6a", x);
    x = block_c(&b, "Mixed_6b", x, 128);
    x = block_c(&b, "Mixed_6c", x, 160);
    x = block_c(&b, "Mixed_6d", x, 160);
    x = block_c(&b, "Mixed_6e", x, 192);
    if (cfg->aux_logits) {
        g->aux_input = x;
        g->aux_logits = aux_head(&b, x, cfg->num_classes);
    }
    x = block_d(&b, "Mixed_7a", x);
    x = block_e(&b, "Mixed_7b", x);
    x = block_e(&b, "Mixed_7c", x);
    g->pre_logits = simple(&b, NN_NODE_GAP, "avgpool", x);
    x = simple(&b, NN_NODE_DROPOUT, "dropout", g->pre_logits);
    g->logits = fc(&b, "fc", x, cfg->num_classes);
    if (b.st == NN_OK && !b.declaring && b.next_param != params->count)
        b.st = nn_fail(NN_ERR_SHAPE, "the model has %d parameters, the graph uses %d", params->count, b.next_param);
    if (b.st != NN_OK) nn_graph_free(g);
    return b.st;
}

void nn_graph_free(struct nn_graph *g)
{
    free(g->nodes);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

double nn_graph_macs_per_image(const struct nn_graph *g)
{
    double macs = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const struct nn_node *n = &g->nodes[i];
        if (n->kind == NN_NODE_CONV) {
            const struct nn_conv_shape *s = &n->conv;
            macs += (double)s->oh * s->ow * s->k * s->kh * s->kw * s->c;
        } else if (n->kind == NN_NODE_FC) {
            const struct nn_tensor *in = &g->tensors[n->inputs[0]], *out = &g->tensors[n->output];
            macs += (double)(in->count / in->n) * out->c;
        }
    }
    return macs;
}
