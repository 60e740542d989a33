/* Importing torchvision/timm checkpoints (safetensors, PyTorch layouts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "nn/model.h"

static bool excluded(const struct nn_import_options *opt, const char *name)
{
    for (int i = 0; i < opt->nexclude; i++) {
        size_t n = strlen(opt->exclude[i]);
        if (n && !strncmp(name, opt->exclude[i], n) && (name[n] == '\0' || name[n] == '.')) return true;
    }
    return false;
}

/* PyTorch keeps a step counter with every batch norm; it carries no weights. */
static bool ignorable(const char *name)
{
    size_t n = strlen(name), k = strlen("num_batches_tracked");
    return n >= k && !strcmp(name + n - k, "num_batches_tracked");
}

static bool shape_matches(const struct nn_st_tensor *t, const int *shape, int ndim)
{
    if (t->ndim != ndim) return false;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return false;
    return true;
}

static void describe_shape(char *buf, size_t n, const int64_t *s64, const int *s32, int ndim)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "[");
    for (int d = 0; d < ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", d ? "," : "", s64 ? (long long)s64[d] : (long long)s32[d]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

void nn_import_report_free(struct nn_import_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->nfresh; i++) free(r->fresh[i]);
    free(r->fresh);
    memset(r, 0, sizeof *r);
}

static enum nn_status report_fresh(struct nn_import_report *r, const char *name)
{
    char **grown = realloc(r->fresh, (size_t)(r->nfresh + 1) * sizeof *grown);
    if (!grown) return nn_fail(NN_ERR_NOMEM, "out of memory");
    r->fresh = grown;
    if (!(r->fresh[r->nfresh] = strdup(name))) return nn_fail(NN_ERR_NOMEM, "out of memory");
    r->nfresh++;
    return NN_OK;
}

enum nn_status nn_model_import(const char *path, const struct nn_import_options *opt, struct nn_model **out,
                               struct nn_import_report *report)
{
    if (!path || !opt || !out || !report) return nn_fail(NN_ERR_ARG, "nn_model_import: NULL argument");
    *out = NULL;
    memset(report, 0, sizeof *report);
    struct nn_safetensors *st_file;
    NN_TRY(nn_safetensors_open(path, &st_file));

    struct nn_config cfg = nn_config_default(opt->num_classes);
    if (opt->image_size) cfg.image_size = opt->image_size;
    cfg.aux_logits = opt->aux_logits;
    if (cfg.num_classes <= 0) {
        const struct nn_st_tensor *fcw = nn_safetensors_find(st_file, "fc.weight");
        if (!fcw || excluded(opt, "fc.weight") || fcw->ndim != 2) {
            nn_safetensors_close(st_file);
            return nn_fail(NN_ERR_ARG, "%s: has no fc.weight to take the class count from: give --num-classes", path);
        }
        cfg.num_classes = (int)fcw->shape[0];
    }
    struct nn_model *m = NULL;
    enum nn_status st = nn_model_new(&cfg, opt->class_names, opt->seed, &m);
    struct nn_strbuf problems;
    nn_strbuf_init(&problems);
    int nproblems = 0;
    float *tmp = NULL;
    size_t tmp_cap = 0;
    for (int i = 0; st == NN_OK && i < m->params.count; i++) {
        const struct nn_param *p = &m->params.items[i];
        if (excluded(opt, p->name)) {
            st = report_fresh(report, p->name);
            continue;
        }
        const struct nn_st_tensor *t = nn_safetensors_find(st_file, p->name);
        int tshape[4], ndim = nn_param_torch_shape(p, tshape);
        if (!t) {
            nn_strbuf_printf(&problems, "\n  missing: %s", p->name);
            nproblems++;
            continue;
        }
        if (!shape_matches(t, tshape, ndim)) {
            char want[64], got[64];
            describe_shape(want, sizeof want, NULL, tshape, ndim);
            describe_shape(got, sizeof got, t->shape, NULL, t->ndim);
            nn_strbuf_printf(&problems, "\n  wrong shape: %s is %s, expected %s", p->name, got, want);
            nproblems++;
            continue;
        }
        if (p->count > tmp_cap) {
            nn_free(tmp);
            tmp_cap = p->count;
            tmp = nn_alloc(tmp_cap * sizeof(float));
            if (!tmp) {
                st = nn_fail(NN_ERR_NOMEM, "out of memory");
                break;
            }
        }
        nn_st_to_f32(t, tmp);
        nn_param_from_torch(p, tmp, nn_param_data(&m->params, i));
        report->loaded++;
    }
    for (int i = 0; st == NN_OK && i < nn_safetensors_count(st_file); i++) {
        const char *name = nn_safetensors_at(st_file, i)->name;
        if (ignorable(name) || excluded(opt, name) || nn_params_find(&m->params, name) >= 0) continue;
        nn_strbuf_printf(&problems, "\n  unexpected: %s", name);
        nproblems++;
    }
    if (st == NN_OK && nproblems)
        st = nn_fail(NN_ERR_FORMAT,
                     "%s: %d tensor(s) do not fit Inception-v3 with %d classes%s (use --exclude PREFIX to "
                     "initialise them fresh):%s",
                     path, nproblems, cfg.num_classes, cfg.aux_logits ? " and an aux head" : "",
                     problems.data ? problems.data : "");
    nn_strbuf_free(&problems);
    nn_free(tmp);
    nn_safetensors_close(st_file);
    if (st != NN_OK) {
        nn_model_free(m);
        nn_import_report_free(report);
        return st;
    }
    *out = m;
    return NN_OK;
}
