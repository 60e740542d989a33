/* Freezing a trained model for serving: no aux head (it only helps
 * training) and batch norm folded into the convs, so inference is one GEMM
 * plus bias and ReLU per layer. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/model.h"

enum nn_status nn_model_freeze(const struct nn_model *src, struct nn_model **out)
{
    if (!src || !out) return nn_fail(NN_ERR_ARG, "nn_model_freeze: NULL argument");
    *out = NULL;
    if (src->cfg.folded) return nn_model_clone(src, out);
    struct nn_config cfg = src->cfg;
    cfg.aux_logits = false;
    cfg.folded = true;
    struct nn_model *m;
    NN_TRY(nn_model_alloc(&cfg, &m));
    m->central_fraction = src->central_fraction;
    enum nn_status st = nn_model_set_class_names(m, (const char *const *)src->class_names, cfg.num_classes);
    const struct nn_params *sp = &src->params;
    for (int i = 0; st == NN_OK && i < m->params.count; i++) {
        const struct nn_param *p = &m->params.items[i];
        float *dst = nn_param_data(&m->params, i);
        if (p->kind == NN_PARAM_FC_W || p->kind == NN_PARAM_FC_B) {
            int j = nn_params_find(sp, p->name);
            if (j < 0) st = nn_fail(NN_ERR_INTERNAL, "freeze: %s missing", p->name);
            else memcpy(dst, nn_param_data(sp, j), p->count * sizeof(float));
            continue;
        }
        if (p->kind != NN_PARAM_CONV_W) continue;
        /* "X.conv.weight" -> the conv's batch norm "X.bn.*" and bias "X.conv.bias" */
        char layer[NN_PARAM_NAME_MAX], name[NN_PARAM_NAME_MAX + 16];
        size_t len = strlen(p->name) - strlen(".conv.weight");
        memcpy(layer, p->name, len);
        layer[len] = '\0';
        const char *suffixes[] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "conv.bias"};
        const float *v[5];
        for (int k = 0; k < 5 && st == NN_OK; k++) {
            snprintf(name, sizeof name, "%s.%s", layer, suffixes[k]);
            int j = nn_params_find(sp, name);
            if (j < 0) st = nn_fail(NN_ERR_INTERNAL, "freeze: %s missing", name);
            else v[k] = nn_param_data(sp, j);
        }
        snprintf(name, sizeof name, "%s.conv.bias", layer);
        int bias = nn_params_find(&m->params, name);
        if (st != NN_OK || bias < 0) {
            if (st == NN_OK) st = nn_fail(NN_ERR_INTERNAL, "freeze: %s missing", name);
            break;
        }
        int K = p->shape[3];
        size_t rows = p->count / (size_t)K;
        float *b = nn_param_data(&m->params, bias);
        for (int k = 0; k < K; k++) {
            double scale = v[1][k] / sqrt((double)v[4][k] + cfg.bn_eps);
            b[k] = (float)(v[2][k] - v[3][k] * scale);
            for (size_t r = 0; r < rows; r++) dst[r * K + k] = (float)(v[0][r * K + k] * scale);
        }
    }
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}
