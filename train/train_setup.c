/* Setting up a run: the starting model (fresh, from --init-from with its
 * head adapted to the dataset, or from a checkpoint), the trainable set
 * from --trainable-scopes, and the check that a resumed run's options agree
 * with the ones it was started with. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/json.h"
#include "train/train_internal.h"

/* Copies every tensor of src whose name and shape fit into dst; the others
 * are initialised fresh and listed. */
static enum nn_status adapt(const struct nn_model *src, struct nn_model *dst, uint64_t seed, const char *from,
                            const char *why)
{
    struct nn_strbuf fresh;
    nn_strbuf_init(&fresh);
    int nfresh = 0;
    for (int i = 0; i < dst->params.count; i++) {
        const struct nn_param *p = &dst->params.items[i];
        int j = nn_params_find(&src->params, p->name);
        bool same = j >= 0 && src->params.items[j].ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = src->params.items[j].shape[d] == p->shape[d];
        if (same) {
            memcpy(nn_param_data(&dst->params, i), nn_param_data(&src->params, j), p->count * sizeof(float));
        } else {
            nn_param_init(p, nn_param_data(&dst->params, i), seed);
            if (nfresh < 8) nn_strbuf_printf(&fresh, "%s%s", nfresh ? ", " : "", p->name);
            nfresh++;
        }
    }
    if (nfresh)
        nn_info("%s: %d tensor%s initialised fresh (%s%s): %s", from, nfresh, nfresh == 1 ? "" : "s",
                fresh.data ? fresh.data : "", nfresh > 8 ? ", ..." : "", why);
    bool failed = fresh.failed;
    nn_strbuf_free(&fresh);
    return failed ? nn_fail(NN_ERR_NOMEM, "out of memory") : NN_OK;
}

/* Classes named "0", "1", ...: an import without --labels, nothing to compare. */
static bool default_names(const struct nn_model *m)
{
    for (int c = 0; c < m->cfg.num_classes; c++) {
        char num[16];
        snprintf(num, sizeof num, "%d", c);
        if (strcmp(m->class_names[c], num)) return false;
    }
    return true;
}

enum nn_status nn_trainer_make_model(const struct nn_train_options *o, const struct nn_dataset_desc *d,
                                     struct nn_model **out)
{
    *out = NULL;
    int size = o->image_size;
    if (!o->init_from) {
        struct nn_config cfg = nn_config_default(d->num_classes);
        cfg.image_size = size ? size : 299;
        cfg.bn_decay = o->bn_decay;
        nn_info("starting from fresh weights (seed %llu)", (unsigned long long)o->seed);
        return nn_model_new(&cfg, (const char *const *)d->classes, o->seed, out);
    }
    struct nn_model *src;
    NN_TRY(nn_model_load(o->init_from, &src));
    if (src->cfg.folded) {
        nn_model_free(src);
        return nn_fail(NN_ERR_ARG, "%s is a frozen export (batch norm folded into the convs): train from the model "
                       "it was exported from", o->init_from);
    }
    struct nn_config cfg = src->cfg;
    cfg.num_classes = d->num_classes;
    cfg.image_size = size ? size : src->cfg.image_size;
    cfg.bn_decay = o->bn_decay;
    struct nn_model *m;
    enum nn_status st = nn_model_alloc(&cfg, &m);
    if (st == NN_OK) {
        m->central_fraction = src->central_fraction;
        char why[256];
        if (src->cfg.num_classes != d->num_classes)
            snprintf(why, sizeof why, "the model has %d classes, the dataset %d", src->cfg.num_classes,
                     d->num_classes);
        else
            snprintf(why, sizeof why, "their shape differs at image size %d (the model's is %d)", cfg.image_size,
                     src->cfg.image_size);
        st = adapt(src, m, o->seed, o->init_from, why);
    }
    if (st == NN_OK) st = nn_model_set_class_names(m, (const char *const *)d->classes, d->num_classes);
    if (st == NN_OK && src->cfg.num_classes == d->num_classes && !default_names(src)) {
        for (int c = 0; c < d->num_classes; c++)
            if (strcmp(src->class_names[c], d->classes[c])) {
                nn_warn("%s: class %d is '%s' in the model and '%s' in the dataset: the dataset's names are used",
                        o->init_from, c, src->class_names[c], d->classes[c]);
                break;
            }
    }
    nn_model_free(src);
    if (st != NN_OK) {
        nn_model_free(m);
        return st;
    }
    nn_info("starting from %s", o->init_from);
    *out = m;
    return NN_OK;
}

enum nn_status nn_trainer_trainable(const struct nn_model *m, const char *scopes, enum nn_bn_mode bn_mode,
                                    bool **out)
{
    const struct nn_params *t = &m->params;
    bool *tr = calloc((size_t)t->count + 1, sizeof *tr);
    if (!tr) return nn_fail(NN_ERR_NOMEM, "out of memory");
    if (!scopes || !*scopes) {
        for (int i = 0; i < t->count; i++) tr[i] = true;
    } else {
        enum nn_status st = nn_params_select(t, scopes, tr);
        if (st != NN_OK) {
            free(tr);
            return st;
        }
    }
    long tensors = 0, values = 0;
    for (int i = 0; i < t->count; i++) {
        const struct nn_param *p = &t->items[i];
        if (!nn_param_learned(p)) tr[i] = false;
        /* frozen batch norm: normalise with the moving statistics and keep
         * gamma and beta as they are, as at inference */
        if (bn_mode == NN_BN_FROZEN && (p->kind == NN_PARAM_BN_GAMMA || p->kind == NN_PARAM_BN_BETA)) tr[i] = false;
        if (tr[i]) {
            tensors++;
            values += (long)p->count;
        }
    }
    if (!tensors) {
        free(tr);
        return nn_fail(NN_ERR_ARG, "nothing to train: the scopes '%s' select no learnable parameter", scopes);
    }
    nn_info("training %ld of %d parameter tensors (%.2fM values)%s", tensors, t->count, values / 1e6,
            bn_mode == NN_BN_FROZEN ? ", batch norm frozen" : "");
    *out = tr;
    return NN_OK;
}

/* Same file for two paths? */
static bool same_path(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    if (!strcmp(a, b)) return true;
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static bool same_str(const char *a, const char *b)
{
    if (!a || !*a) return !b || !*b;
    return b && !strcmp(a, b);
}

enum nn_status nn_trainer_check_resume(const struct nn_json *saved_json, const struct nn_train_options *o)
{
    struct nn_train_options s;
    nn_train_options_default(&s);
    NN_TRY(nn_train_options_from_json(saved_json, &s));
    struct nn_strbuf b;
    nn_strbuf_init(&b);
#define DIFF_NUM(field, name)                                                                                  \
    if ((double)s.field != (double)o->field)                                                                   \
        nn_strbuf_printf(&b, "%s%s (run: %g, now: %g)", b.len ? ", " : "", name, (double)s.field, (double)o->field);
    if (!same_path(s.data_dir, o->data_dir))
        nn_strbuf_printf(&b, "%s--data (run: %s, now: %s)", b.len ? ", " : "", s.data_dir ? s.data_dir : "-",
                         o->data_dir ? o->data_dir : "-");
    if (!same_str(s.trainable_scopes, o->trainable_scopes))
        nn_strbuf_printf(&b, "%s--trainable-scopes (run: %s, now: %s)", b.len ? ", " : "",
                         s.trainable_scopes ? s.trainable_scopes : "all", o->trainable_scopes ? o->trainable_scopes : "all");
    if (s.opt.kind != o->opt.kind)
        nn_strbuf_printf(&b, "%s--optimizer (run: %s, now: %s)", b.len ? ", " : "", nn_optimizer_name(s.opt.kind),
                         nn_optimizer_name(o->opt.kind));
    if (s.lr_schedule != o->lr_schedule)
        nn_strbuf_printf(&b, "%s--lr-schedule (run: %s, now: %s)", b.len ? ", " : "", nn_lr_name(s.lr_schedule),
                         nn_lr_name(o->lr_schedule));
    if (s.bn_mode != o->bn_mode)
        nn_strbuf_printf(&b, "%s--bn-mode (run: %s, now: %s)", b.len ? ", " : "", nn_bn_mode_name(s.bn_mode),
                         nn_bn_mode_name(o->bn_mode));
    if (s.augment != o->augment) nn_strbuf_printf(&b, "%s--augment", b.len ? ", " : "");
    if (s.seed != o->seed)
        nn_strbuf_printf(&b, "%s--seed (run: %llu, now: %llu)", b.len ? ", " : "", (unsigned long long)s.seed,
                         (unsigned long long)o->seed);
    DIFF_NUM(opt.momentum, "--momentum")
    DIFF_NUM(opt.rms_decay, "--rmsprop-decay")
    DIFF_NUM(opt.epsilon, "--epsilon")
    DIFF_NUM(opt.beta1, "--adam-beta1")
    DIFF_NUM(opt.beta2, "--adam-beta2")
    DIFF_NUM(opt.weight_decay, "--weight-decay")
    DIFF_NUM(learning_rate, "--learning-rate")
    DIFF_NUM(lr_decay_factor, "--lr-decay-factor")
    DIFF_NUM(lr_decay_epochs, "--lr-decay-epochs")
    DIFF_NUM(warmup_epochs, "--warmup-epochs")
    DIFF_NUM(label_smoothing, "--label-smoothing")
    DIFF_NUM(batch_size, "--batch-size")
    DIFF_NUM(image_size, "--image-size")
    DIFF_NUM(bn_decay, "--bn-decay")
    DIFF_NUM(aux_weight, "--aux-weight")
#undef DIFF_NUM
    enum nn_status st = NN_OK;
    if (b.failed) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    else if (b.len)
        st = nn_fail(NN_ERR_ARG,
                     "--resume continues a run exactly, but these options differ from the run's: %s. Drop them "
                     "(the run's own options are used) or start a new run with --init-from the last checkpoint",
                     b.data);
    nn_strbuf_free(&b);
    return st;
}
