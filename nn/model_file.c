/* Saving and loading models in nn's own container (io/modelfile.h). The
 * metadata block makes a file self-describing: architecture and its
 * hyper-parameters, class names and the preprocessing the model expects. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/modelfile.h"
#include "nn/model.h"
#include "ops/gemm_lowp.h"

#define ARCH_NAME "inception_v3"

static char *meta_json(const struct nn_model *m)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    const struct nn_config *c = &m->cfg;
    nn_strbuf_printf(&b,
                     "{\"arch\":\"" ARCH_NAME "\",\"num_classes\":%d,\"image_size\":%d,\"aux_logits\":%s,"
                     "\"dropout_keep\":%.9g,\"bn_eps\":%.9g,\"bn_decay\":%.9g,\"folded\":%s,",
                     c->num_classes, c->image_size, c->aux_logits ? "true" : "false", c->dropout_keep, c->bn_eps,
                     c->bn_decay, c->folded ? "true" : "false");
    /* Written only when not float32, so float32 files stay as they were. */
    if (c->precision != NN_PRECISION_F32) nn_strbuf_printf(&b, "\"precision\":\"%s\",", nn_precision_name(c->precision));
    nn_strbuf_printf(&b,
                     "\"preprocess\":{\"layout\":\"NHWC\",\"central_fraction\":%.9g,\"resize\":\"bilinear\","
                     "\"scale\":%.9g,\"offset\":-1},\"classes\":[",
                     m->central_fraction, 1.0 / 127.5);
    for (int i = 0; i < c->num_classes; i++) {
        if (i) nn_strbuf_append(&b, ",", 1);
        nn_strbuf_json_string(&b, m->class_names[i]);
    }
    nn_strbuf_append(&b, "]}", 2);
    if (b.failed) {
        nn_strbuf_free(&b);
        return NULL;
    }
    return b.data;
}

/* How conv weight i is stored: float32, or for bf16/int8 models the type
 * its values were rounded to (int8 where the conv has an input scale);
 * *wscale is then the weight-scale parameter (int8) or -1. */
static enum nn_mf_dtype stored_dtype(const struct nn_model *m, int i, int *wscale)
{
    const struct nn_param *p = &m->params.items[i];
    *wscale = -1;
    if (p->kind != NN_PARAM_CONV_W || m->cfg.precision == NN_PRECISION_F32) return NN_MF_F32;
    if (m->cfg.precision == NN_PRECISION_INT8) {
        int as = nn_params_find_sibling(&m->params, p->name, "input_scale");
        if (as >= 0 && nn_param_data(&m->params, as)[0] > 0.0f) {
            *wscale = nn_params_find_sibling(&m->params, p->name, "weight_scale");
            if (*wscale >= 0) return NN_MF_I8;
        }
    }
    return NN_MF_BF16;
}

/* The compact copy of conv weight i, for saving (the values are exact). */
static void *narrow(const struct nn_model *m, int i, enum nn_mf_dtype dtype, int wscale)
{
    const struct nn_param *p = &m->params.items[i];
    const float *w = nn_param_data(&m->params, i);
    void *out = malloc(p->count * (size_t)nn_mf_dtype_size(dtype));
    if (!out) return NULL;
    if (dtype == NN_MF_BF16) {
        uint16_t *h = out;
        for (size_t k = 0; k < p->count; k++) h[k] = nn_bf16_round(w[k]);
    } else {
        int8_t *q = out;
        const float *scale = nn_param_data(&m->params, wscale);
        const size_t K = (size_t)p->shape[p->ndim - 1];
        for (size_t k = 0; k < p->count; k++) q[k] = (int8_t)lrintf(w[k] / scale[k % K]);
    }
    return out;
}

enum nn_status nn_model_save(const struct nn_model *m, const char *path)
{
    if (!m || !path) return nn_fail(NN_ERR_ARG, "nn_model_save: NULL argument");
    char *meta = meta_json(m);
    struct nn_mf_tensor *ts = calloc((size_t)m->params.count, sizeof *ts);
    void **narrowed = calloc((size_t)m->params.count, sizeof *narrowed);
    enum nn_status st = NN_OK;
    if (!meta || !ts || !narrowed) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; st == NN_OK && i < m->params.count; i++) {
        const struct nn_param *p = &m->params.items[i];
        ts[i].name = p->name;
        ts[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) ts[i].shape[d] = p->shape[d];
        int wscale;
        ts[i].dtype = stored_dtype(m, i, &wscale);
        ts[i].data = nn_param_data(&m->params, i);
        if (ts[i].dtype != NN_MF_F32) {
            ts[i].data = narrowed[i] = narrow(m, i, ts[i].dtype, wscale);
            if (!narrowed[i]) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    if (st == NN_OK) st = nn_modelfile_write(path, meta, ts, m->params.count);
    for (int i = 0; narrowed && i < m->params.count; i++) free(narrowed[i]);
    free(narrowed);
    free(ts);
    free(meta);
    return st;
}

static enum nn_status read_config(const char *path, const struct nn_json *j, struct nn_config *cfg,
                                  float *central_fraction)
{
    const struct nn_json *arch = nn_json_get(j, "arch");
    if (!arch || !nn_json_string(arch) || strcmp(nn_json_string(arch), ARCH_NAME))
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: architecture is not %s", path, ARCH_NAME);
    *cfg = nn_config_default(1);
    const char *ints[] = {"num_classes", "image_size"};
    int *int_dst[] = {&cfg->num_classes, &cfg->image_size};
    for (int i = 0; i < 2; i++) {
        const struct nn_json *v = nn_json_get(j, ints[i]);
        if (!v || nn_json_type(v) != NN_JSON_NUMBER || nn_json_number(v) < 1 || nn_json_number(v) > 1e6)
            return nn_fail(NN_ERR_FORMAT, "%s: metadata lacks a valid '%s'", path, ints[i]);
        *int_dst[i] = (int)nn_json_number(v);
    }
    const char *floats[] = {"dropout_keep", "bn_eps", "bn_decay"};
    float *float_dst[] = {&cfg->dropout_keep, &cfg->bn_eps, &cfg->bn_decay};
    for (int i = 0; i < 3; i++) {
        const struct nn_json *v = nn_json_get(j, floats[i]);
        if (v && nn_json_type(v) == NN_JSON_NUMBER) *float_dst[i] = (float)nn_json_number(v);
    }
    const struct nn_json *aux = nn_json_get(j, "aux_logits");
    cfg->aux_logits = aux && nn_json_type(aux) == NN_JSON_BOOL && nn_json_bool(aux);
    const struct nn_json *folded = nn_json_get(j, "folded");
    cfg->folded = folded && nn_json_type(folded) == NN_JSON_BOOL && nn_json_bool(folded);
    const struct nn_json *prec = nn_json_get(j, "precision");
    if (prec) {
        const char *name = nn_json_string(prec);
        if (name && !strcmp(name, "bf16")) cfg->precision = NN_PRECISION_BF16;
        else if (name && !strcmp(name, "int8")) cfg->precision = NN_PRECISION_INT8;
        else if (!name || strcmp(name, "f32"))
            return nn_fail(NN_ERR_UNSUPPORTED, "%s: unknown precision in the metadata (this nn knows f32, bf16, int8)",
                           path);
        if (cfg->precision != NN_PRECISION_F32 && !cfg->folded)
            return nn_fail(NN_ERR_FORMAT, "%s: a %s model must be folded", path, nn_precision_name(cfg->precision));
    }
    const struct nn_json *pre = nn_json_get(j, "preprocess");
    const struct nn_json *cf = pre ? nn_json_get(pre, "central_fraction") : NULL;
    *central_fraction = cf && nn_json_type(cf) == NN_JSON_NUMBER ? (float)nn_json_number(cf) : 0.875f;
    return NN_OK;
}

/* Parameter i from file tensor t: float32 as it is; bf16 and int8 conv
 * weights (bf16/int8 models only) widened exactly, int8 through the
 * weight scales, which must be in the file as float32. */
static enum nn_status widen(const char *path, struct nn_model *m, const struct nn_modelfile *mf, int i,
                            const struct nn_mf_tensor *t)
{
    const struct nn_param *p = &m->params.items[i];
    float *dst = nn_param_data(&m->params, i);
    if (t->dtype == NN_MF_F32) {
        memcpy(dst, t->data, p->count * sizeof(float));
        return NN_OK;
    }
    if (p->kind != NN_PARAM_CONV_W || m->cfg.precision == NN_PRECISION_F32 ||
        (t->dtype == NN_MF_I8 && m->cfg.precision != NN_PRECISION_INT8))
        return nn_fail(NN_ERR_FORMAT, "%s: tensor %s is stored as %s, which this model's precision (%s) does not use",
                       path, p->name, t->dtype == NN_MF_I8 ? "int8" : "bf16", nn_precision_name(m->cfg.precision));
    if (t->dtype == NN_MF_BF16) {
        const uint16_t *h = t->data;
        for (size_t k = 0; k < p->count; k++) dst[k] = nn_bf16_value(h[k]);
        return NN_OK;
    }
    char name[NN_PARAM_NAME_MAX + 16];
    snprintf(name, sizeof name, "%.*sweight_scale", (int)(strlen(p->name) - strlen("weight")), p->name);
    const struct nn_mf_tensor *s = nn_modelfile_find(mf, name);
    const size_t K = (size_t)p->shape[p->ndim - 1];
    if (!s || s->dtype != NN_MF_F32 || s->ndim != 1 || (size_t)s->shape[0] != K)
        return nn_fail(NN_ERR_FORMAT, "%s: int8 tensor %s has no float32 %s of %zu values", path, p->name, name, K);
    const int8_t *q = t->data;
    const float *scale = s->data;
    for (size_t k = 0; k < K; k++)
        if (!(scale[k] > 0.0f) || !isfinite(scale[k]))
            return nn_fail(NN_ERR_FORMAT, "%s: %s holds %g, not a positive finite scale", path, name, scale[k]);
    for (size_t k = 0; k < p->count; k++) dst[k] = (float)q[k] * scale[k % K];
    return NN_OK;
}

enum nn_status nn_model_load(const char *path, struct nn_model **out)
{
    if (!path || !out) return nn_fail(NN_ERR_ARG, "nn_model_load: NULL argument");
    *out = NULL;
    struct nn_modelfile *mf;
    NN_TRY(nn_modelfile_open(path, &mf));
    struct nn_json *j = NULL;
    struct nn_model *m = NULL;
    const char *meta = nn_modelfile_meta(mf);
    enum nn_status st = nn_json_parse(meta, strlen(meta), &j);
    if (st != NN_OK) st = nn_fail(st, "%s: metadata: %s", path, nn_last_error());
    struct nn_config cfg;
    float central_fraction = 0.875f;
    if (st == NN_OK) st = read_config(path, j, &cfg, &central_fraction);
    if (st == NN_OK) st = nn_model_alloc(&cfg, &m);
    if (st == NN_OK) {
        m->central_fraction = central_fraction;
        const struct nn_json *classes = nn_json_get(j, "classes");
        if (!classes || nn_json_type(classes) != NN_JSON_ARRAY || (int)nn_json_len(classes) != cfg.num_classes) {
            st = nn_fail(NN_ERR_FORMAT, "%s: metadata must list %d class names", path, cfg.num_classes);
        } else {
            const char **names = calloc((size_t)cfg.num_classes, sizeof *names);
            if (!names) st = nn_fail(NN_ERR_NOMEM, "out of memory");
            for (int i = 0; st == NN_OK && i < cfg.num_classes; i++) {
                names[i] = nn_json_string(nn_json_at(classes, (size_t)i));
                if (!names[i]) st = nn_fail(NN_ERR_FORMAT, "%s: class name %d is not a string", path, i);
            }
            if (st == NN_OK) st = nn_model_set_class_names(m, names, cfg.num_classes);
            free(names);
        }
    }
    if (st == NN_OK && nn_modelfile_count(mf) != m->params.count)
        st = nn_fail(NN_ERR_FORMAT, "%s: has %d tensors, an Inception-v3 with this configuration has %d", path,
                     nn_modelfile_count(mf), m->params.count);
    for (int i = 0; st == NN_OK && i < m->params.count; i++) {
        const struct nn_param *p = &m->params.items[i];
        const struct nn_mf_tensor *t = nn_modelfile_find(mf, p->name);
        if (!t) {
            st = nn_fail(NN_ERR_FORMAT, "%s: tensor %s is missing", path, p->name);
            break;
        }
        bool same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            st = nn_fail(NN_ERR_SHAPE, "%s: tensor %s has the wrong shape", path, p->name);
            break;
        }
        st = widen(path, m, mf, i, t);
    }
    if (st == NN_OK) st = nn_model_pack_lowp(m);
    nn_json_free(j);
    nn_modelfile_close(mf);
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    *out = m;
    return NN_OK;
}
