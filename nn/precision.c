/* Reduced-precision models: converting a float32 model to bf16 or int8,
 * and packing the convs' weights for the low-precision GEMM once per model
 * (contexts share the packed copy, as they share the parameters).
 *
 * The parameter table stays float32 in every precision, holding exactly
 * the values the low-precision arithmetic uses (bf16-rounded weights, or
 * int8 values times their channel's scale); saving writes the compact
 * types and loading widens them back, both exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"
#include "nn/model.h"
#include "ops/gemm_lowp.h"
#include "ops/winograd.h"

const char *nn_precision_name(enum nn_precision p)
{
    switch (p) {
    case NN_PRECISION_F32: return "f32";
    case NN_PRECISION_BF16: return "bf16";
    case NN_PRECISION_INT8: return "int8";
    }
    return "?";
}

static void free_lowp(struct nn_model *m)
{
    if (!m->lowp) return;
    for (int i = 0; i < m->params.count; i++) {
        nn_lowp_weights_free(m->lowp[i].w);
        free(m->lowp[i].scale);
        for (int x = 0; x < 16; x++) nn_lowp_weights_free(m->lowp[i].wino[x]);
    }
    free(m->lowp);
    m->lowp = NULL;
}

void nn_model_free_lowp(struct nn_model *m) { free_lowp(m); }

/* A 3x3 stride-1 conv's Winograd transform, packed in bf16 (16/9 of the
 * weights again). Used where the float32 path would use Winograd
 * (nn_winograd_applies: enough channels and tiles for the batch). */
static enum nn_status pack_winograd(const struct nn_param *p, const float *w, struct nn_conv_lowp *out)
{
    const int C = p->shape[2], K = p->shape[3];
    float *u = malloc(nn_winograd_weight_floats(C, K) * sizeof(float));
    if (!u) return nn_fail(NN_ERR_NOMEM, "out of memory packing %s", p->name);
    nn_winograd_transform_weights(u, w, C, K);
    enum nn_status st = NN_OK;
    for (int x = 0; x < 16 && st == NN_OK; x++) st = nn_lowp_pack_bf16(u + (size_t)x * C * K, C, K, &out->wino[x]);
    free(u);
    return st;
}

static enum nn_status pack_conv(const struct nn_model *m, int i, bool winograd, struct nn_conv_lowp *out)
{
    const struct nn_param *p = &m->params.items[i];
    const float *w = nn_param_data(&m->params, i);
    const int K = p->shape[3], rows = (int)(p->count / (size_t)K);
    float in_scale = 0.0f;
    int ws = -1;
    if (m->cfg.precision == NN_PRECISION_INT8) {
        int as = nn_params_find_sibling(&m->params, p->name, "input_scale");
        ws = nn_params_find_sibling(&m->params, p->name, "weight_scale");
        if (as < 0 || ws < 0) return nn_fail(NN_ERR_INTERNAL, "%s: int8 model without scales", p->name);
        in_scale = nn_param_data(&m->params, as)[0];
        if (!(in_scale >= 0.0f) || !isfinite(in_scale))
            return nn_fail(NN_ERR_FORMAT, "%s: input scale %g is not a finite number >= 0", p->name, in_scale);
    }
    if (in_scale <= 0.0f) {
        NN_TRY(nn_lowp_pack_bf16(w, rows, K, &out->w));
        return winograd ? pack_winograd(p, w, out) : NN_OK;
    }
    const float *wscale = nn_param_data(&m->params, ws);
    int8_t *q = malloc(p->count);
    out->scale = malloc((size_t)K * sizeof(float));
    if (!q || !out->scale) {
        free(q);
        return nn_fail(NN_ERR_NOMEM, "out of memory packing %s", p->name);
    }
    for (size_t r = 0; r < (size_t)rows; r++)
        for (int k = 0; k < K; k++) q[r * K + k] = (int8_t)lrintf(w[r * K + k] / wscale[k]);
    for (int k = 0; k < K; k++) out->scale[k] = in_scale * wscale[k];
    out->a_inv_scale = 1.0f / in_scale;
    enum nn_status st = nn_lowp_pack_int8(q, rows, K, &out->w);
    free(q);
    return st;
}

enum nn_status nn_model_pack_lowp(struct nn_model *m)
{
    free_lowp(m);
    if (m->cfg.precision == NN_PRECISION_F32) return NN_OK;
    /* The graph (built for one image) says each conv's stride. */
    struct nn_graph g;
    NN_TRY(nn_graph_build(&g, &m->cfg, 1, &m->params));
    enum nn_status st = NN_OK;
    if (!(m->lowp = calloc((size_t)m->params.count, sizeof *m->lowp))) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    for (int i = 0; st == NN_OK && i < g.nnodes; i++) {
        const struct nn_node *n = &g.nodes[i];
        if (n->kind == NN_NODE_CONV) st = pack_conv(m, n->w, nn_winograd_supports(&n->conv), &m->lowp[n->w]);
    }
    nn_graph_free(&g);
    if (st != NN_OK) free_lowp(m);
    return st;
}

/* A frozen float32 model with the same weights, or a clone if src is one. */
static enum nn_status frozen_f32(const struct nn_model *src, struct nn_model **out)
{
    if (src->cfg.precision != NN_PRECISION_F32)
        return nn_fail(NN_ERR_ARG, "the model is already %s: convert from the float32 model",
                       nn_precision_name(src->cfg.precision));
    return nn_model_freeze(src, out);
}

/* A model with cfg's precision and src's float32 values for every
 * parameter the two share (the new model's scales start at zero). */
static enum nn_status copy_with_precision(const struct nn_model *src, enum nn_precision precision,
                                          struct nn_model **out)
{
    struct nn_config cfg = src->cfg;
    cfg.precision = precision;
    struct nn_model *m;
    NN_TRY(nn_model_alloc(&cfg, &m));
    m->central_fraction = src->central_fraction;
    enum nn_status st = nn_model_set_class_names(m, (const char *const *)src->class_names, cfg.num_classes);
    for (int i = 0; st == NN_OK && i < m->params.count; i++) {
        const struct nn_param *p = &m->params.items[i];
        int j = nn_params_find(&src->params, p->name);
        if (j >= 0) memcpy(nn_param_data(&m->params, i), nn_param_data(&src->params, j), p->count * sizeof(float));
        else if (p->kind != NN_PARAM_CONV_WSCALE && p->kind != NN_PARAM_CONV_ASCALE)
            st = nn_fail(NN_ERR_INTERNAL, "%s missing from the float32 model", p->name);
    }
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}

static void round_to_bf16(float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) w[i] = nn_bf16_value(nn_bf16_round(w[i]));
}

enum nn_status nn_model_to_bf16(const struct nn_model *src, struct nn_model **out)
{
    if (!src || !out) return nn_fail(NN_ERR_ARG, "nn_model_to_bf16: NULL argument");
    *out = NULL;
    struct nn_model *frozen, *m;
    NN_TRY(frozen_f32(src, &frozen));
    enum nn_status st = copy_with_precision(frozen, NN_PRECISION_BF16, &m);
    nn_model_free(frozen);
    if (st != NN_OK) return st;
    for (int i = 0; i < m->params.count; i++)
        if (m->params.items[i].kind == NN_PARAM_CONV_W) round_to_bf16(nn_param_data(&m->params, i), m->params.items[i].count);
    st = nn_model_pack_lowp(m);
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}

enum nn_status nn_model_to_int8(const struct nn_model *folded, const float *scales, struct nn_model **out)
{
    if (!folded || !scales || !out) return nn_fail(NN_ERR_ARG, "nn_model_to_int8: NULL argument");
    *out = NULL;
    if (!folded->cfg.folded || folded->cfg.precision != NN_PRECISION_F32)
        return nn_fail(NN_ERR_ARG, "nn_model_to_int8 takes a frozen float32 model");
    struct nn_model *m;
    NN_TRY(copy_with_precision(folded, NN_PRECISION_INT8, &m));
    enum nn_status st = NN_OK;
    for (int i = 0; st == NN_OK && i < m->params.count; i++) {
        const struct nn_param *p = &m->params.items[i];
        if (p->kind != NN_PARAM_CONV_W) continue;
        int src = nn_params_find(&folded->params, p->name);
        int as = nn_params_find_sibling(&m->params, p->name, "input_scale"), ws = nn_params_find_sibling(&m->params, p->name, "weight_scale");
        if (src < 0 || as < 0 || ws < 0) {
            st = nn_fail(NN_ERR_INTERNAL, "%s: int8 scales missing", p->name);
            break;
        }
        float in_scale = scales[src];
        if (!(in_scale >= 0.0f) || !isfinite(in_scale)) {
            st = nn_fail(NN_ERR_ARG, "%s: input scale %g is not a finite number >= 0", p->name, in_scale);
            break;
        }
        float *w = nn_param_data(&m->params, i), *wscale = nn_param_data(&m->params, ws);
        nn_param_data(&m->params, as)[0] = in_scale;
        const int K = p->shape[3];
        const size_t rows = p->count / (size_t)K;
        if (in_scale == 0.0f) {
            /* stays in bf16; the weight scales are unused (1) */
            round_to_bf16(w, p->count);
            for (int k = 0; k < K; k++) wscale[k] = 1.0f;
            continue;
        }
        int8_t *q = malloc(p->count);
        if (!q) {
            st = nn_fail(NN_ERR_NOMEM, "out of memory quantising %s", p->name);
            break;
        }
        nn_lowp_quantize_weights(w, (int)rows, K, q, wscale);
        for (size_t r = 0; r < rows; r++)
            for (int k = 0; k < K; k++) w[r * K + k] = (float)q[r * K + k] * wscale[k];
        free(q);
    }
    if (st == NN_OK) st = nn_model_pack_lowp(m);
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}
