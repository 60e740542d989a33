#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "io/json.h"
#include "nn/graph.h"

struct nn_config nn_config_default(int num_classes)
{
    return (struct nn_config){
        .num_classes = num_classes,
        .image_size = 299,
        .aux_logits = true,
        .dropout_keep = 0.8f,
        .bn_eps = 0.001f,
        .bn_decay = 0.9997f,
    };
}

enum nn_status nn_model_declare_params(const struct nn_config *cfg, struct nn_params *params)
{
    struct nn_graph g;
    NN_TRY(nn_graph_build(&g, cfg, 1, params));
    nn_graph_free(&g);
    return NN_OK;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static float truncated_normal(struct nn_rng *r, float stddev)
{
    for (;;) {
        float v = nn_rng_normal(r);
        if (v > -2.0f && v < 2.0f) return v * stddev;
    }
}

void nn_param_init(const struct nn_param *p, float *data, uint64_t seed)
{
    /* Each tensor draws from its own stream, keyed by its name, so a
     * tensor's initial values do not depend on which others are fresh. */
    struct nn_rng r;
    nn_rng_seed(&r, seed, hash_name(p->name));
    float fill = 0.0f;
    switch (p->kind) {
    case NN_PARAM_CONV_W:
    case NN_PARAM_FC_W: {
        float stddev;
        if (strstr(p->name, "AuxLogits.fc.") || !strncmp(p->name, "fc.", 3)) stddev = 0.001f;
        else if (strstr(p->name, "AuxLogits.conv1.")) stddev = 0.01f;
        else {
            size_t fan_in = p->count / (size_t)p->shape[p->ndim - 1];
            /* variance scaling (He): the truncation at 2 sigma loses ~12% of the variance */
            stddev = sqrtf(2.0f / (float)fan_in) / 0.87962566f;
        }
        for (size_t i = 0; i < p->count; i++) data[i] = truncated_normal(&r, stddev);
        return;
    }
    case NN_PARAM_BN_GAMMA:
    case NN_PARAM_BN_VAR: fill = 1.0f; break;
    default: fill = 0.0f; break;
    }
    for (size_t i = 0; i < p->count; i++) data[i] = fill;
}

static void free_names(char **names, int count)
{
    if (!names) return;
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

enum nn_status nn_model_set_class_names(struct nn_model *m, const char *const *names, int count)
{
    if (count != m->cfg.num_classes)
        return nn_fail(NN_ERR_ARG, "%d class names for a model with %d classes", count, m->cfg.num_classes);
    /* Checked here, where the name comes in, not when the model is saved:
     * model files and every JSON output hold names as UTF-8 text. */
    for (int i = 0; names && i < count; i++)
        if (names[i] && !nn_utf8_valid(names[i], strlen(names[i])))
            return nn_fail(NN_ERR_ARG, "class name %d is not valid UTF-8 text", i);
    char **copy = calloc((size_t)count, sizeof *copy);
    if (!copy) return nn_fail(NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < count; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        copy[i] = strdup(names && names[i] ? names[i] : num);
        if (!copy[i]) {
            free_names(copy, count);
            return nn_fail(NN_ERR_NOMEM, "out of memory");
        }
    }
    free_names(m->class_names, m->cfg.num_classes);
    m->class_names = copy;
    return NN_OK;
}

enum nn_status nn_model_alloc(const struct nn_config *cfg, struct nn_model **out)
{
    *out = NULL;
    if (!cfg) return nn_fail(NN_ERR_ARG, "NULL config");
    if (cfg->precision != NN_PRECISION_F32 && cfg->precision != NN_PRECISION_BF16 &&
        cfg->precision != NN_PRECISION_INT8)
        return nn_fail(NN_ERR_ARG, "unknown precision %d", (int)cfg->precision);
    if (cfg->precision != NN_PRECISION_F32 && !cfg->folded)
        return nn_fail(NN_ERR_ARG, "a %s model must be a frozen export (batch norm folded)",
                       nn_precision_name(cfg->precision));
    struct nn_model *m = calloc(1, sizeof *m);
    if (!m) return nn_fail(NN_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->central_fraction = 0.875f;
    enum nn_status st = nn_model_declare_params(cfg, &m->params);
    if (st == NN_OK) st = nn_params_alloc(&m->params);
    if (st == NN_OK) st = nn_model_set_class_names(m, NULL, cfg->num_classes);
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}

enum nn_status nn_model_new(const struct nn_config *cfg, const char *const *class_names, uint64_t seed,
                            struct nn_model **out)
{
    if (cfg && cfg->precision != NN_PRECISION_F32)
        return nn_fail(NN_ERR_ARG, "nn_model_new makes float32 models; convert with nn_model_to_bf16 or quantise");
    struct nn_model *m;
    NN_TRY(nn_model_alloc(cfg, &m));
    for (int i = 0; i < m->params.count; i++)
        nn_param_init(&m->params.items[i], nn_param_data(&m->params, i), seed);
    enum nn_status st = class_names ? nn_model_set_class_names(m, class_names, cfg->num_classes) : NN_OK;
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}

enum nn_status nn_model_clone(const struct nn_model *src, struct nn_model **out)
{
    struct nn_model *m;
    NN_TRY(nn_model_alloc(&src->cfg, &m));
    memcpy(m->params.data, src->params.data, src->params.total * sizeof(float));
    m->central_fraction = src->central_fraction;
    enum nn_status st = nn_model_set_class_names(m, (const char *const *)src->class_names, src->cfg.num_classes);
    if (st == NN_OK) st = nn_model_pack_lowp(m);
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}

void nn_model_free(struct nn_model *m)
{
    if (!m) return;
    nn_model_free_lowp(m);
    nn_params_free(&m->params);
    free_names(m->class_names, m->cfg.num_classes);
    free(m);
}

const struct nn_config *nn_model_config(const struct nn_model *m) { return &m->cfg; }

const char *nn_model_class_name(const struct nn_model *m, int class_id)
{
    if (!m || class_id < 0 || class_id >= m->cfg.num_classes) return NULL;
    return m->class_names[class_id];
}

void nn_softmax(float *x, int k)
{
    float mx = x[0];
    for (int i = 1; i < k; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < k; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < k; i++) x[i] = (float)(x[i] / sum);
}
