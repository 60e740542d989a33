#include "train/optimizer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static const char *const kind_names[] = {"sgd", "momentum", "rmsprop", "adam"};

const char *nn_optimizer_name(enum nn_optimizer_kind kind)
{
    return (unsigned)kind < sizeof kind_names / sizeof kind_names[0] ? kind_names[kind] : "?";
}

enum nn_status nn_optimizer_parse(const char *name, enum nn_optimizer_kind *out)
{
    for (int i = 0; name && i < (int)(sizeof kind_names / sizeof kind_names[0]); i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (enum nn_optimizer_kind)i;
            return NN_OK;
        }
    return nn_fail(NN_ERR_ARG, "unknown optimizer '%s' (sgd, momentum, rmsprop or adam)", name ? name : "");
}

void nn_optimizer_options_default(struct nn_optimizer_options *o)
{
    *o = (struct nn_optimizer_options){
        .kind = NN_OPT_RMSPROP,
        .momentum = 0.9f,
        .rms_decay = 0.9f,
        .epsilon = 1.0f,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .weight_decay = 4e-5f,
    };
}

static int slots_of(enum nn_optimizer_kind k)
{
    switch (k) {
    case NN_OPT_SGD: return 0;
    case NN_OPT_MOMENTUM: return 1;
    default: return 2;
    }
}

enum nn_status nn_optimizer_init(struct nn_optimizer *o, const struct nn_optimizer_options *opt,
                                 const struct nn_params *params, const bool *trainable)
{
    memset(o, 0, sizeof *o);
    if (!opt || !params) return nn_fail(NN_ERR_ARG, "nn_optimizer_init: NULL argument");
    if ((unsigned)opt->kind > NN_OPT_ADAM) return nn_fail(NN_ERR_ARG, "unknown optimizer kind %d", (int)opt->kind);
    o->opt = *opt;
    o->count = params->count;
    o->nslots = slots_of(opt->kind);
    o->trainable = calloc((size_t)params->count + 1, sizeof *o->trainable);
    o->slot_off = calloc((size_t)params->count + 1, sizeof *o->slot_off);
    if (!o->trainable || !o->slot_off) {
        nn_optimizer_free(o);
        return nn_fail(NN_ERR_NOMEM, "out of memory for the optimizer");
    }
    for (int i = 0; i < params->count; i++) {
        const struct nn_param *p = &params->items[i];
        o->trainable[i] = nn_param_learned(p) && (!trainable || trainable[i]);
        o->slot_off[i] = o->slot_floats;
        /* keep every parameter's slot 64-byte aligned, as its data is */
        if (o->trainable[i]) o->slot_floats += (p->count + 15) & ~(size_t)15;
    }
    if (o->nslots && o->slot_floats) {
        o->state = nn_calloc((size_t)o->nslots * o->slot_floats * sizeof(float));
        if (!o->state) {
            size_t mb = (size_t)o->nslots * o->slot_floats * sizeof(float) >> 20;
            nn_optimizer_free(o);
            return nn_fail(NN_ERR_NOMEM, "cannot allocate %zu MB of optimizer state", mb);
        }
        if (opt->kind == NN_OPT_RMSPROP) /* TF's RMSPropOptimizer initialises the mean square to ones */
            for (size_t k = 0; k < o->slot_floats; k++) o->state[k] = 1.0f;
    }
    return NN_OK;
}

void nn_optimizer_free(struct nn_optimizer *o)
{
    if (!o) return;
    free(o->trainable);
    free(o->slot_off);
    nn_free(o->state);
    memset(o, 0, sizeof *o);
}

const char *nn_optimizer_slot_name(const struct nn_optimizer *o, int slot)
{
    switch (o->opt.kind) {
    case NN_OPT_MOMENTUM: return slot == 0 ? "momentum" : NULL;
    case NN_OPT_RMSPROP: return slot == 0 ? "rms" : slot == 1 ? "momentum" : NULL;
    case NN_OPT_ADAM: return slot == 0 ? "m" : slot == 1 ? "v" : NULL;
    default: return NULL;
    }
}

float *nn_optimizer_slot(const struct nn_optimizer *o, int slot, int i)
{
    if (slot < 0 || slot >= o->nslots || i < 0 || i >= o->count || !o->trainable[i]) return NULL;
    return o->state + (size_t)slot * o->slot_floats + o->slot_off[i];
}

/* The rules on one parameter of n floats. g already includes weight decay
 * when `wd` is non-zero (it is added here, on the fly, to leave grads alone). */
static void update(const struct nn_optimizer *o, float *w, const float *grad, float *s0, float *s1, size_t n,
                   float lr, float wd, float adam_lr)
{
    const struct nn_optimizer_options *p = &o->opt;
    switch (p->kind) {
    case NN_OPT_SGD:
        for (size_t k = 0; k < n; k++) w[k] -= lr * (grad[k] + wd * w[k]);
        break;
    case NN_OPT_MOMENTUM:
        for (size_t k = 0; k < n; k++) {
            float g = grad[k] + wd * w[k];
            s0[k] = p->momentum * s0[k] + g;
            w[k] -= lr * s0[k];
        }
        break;
    case NN_OPT_RMSPROP:
        for (size_t k = 0; k < n; k++) {
            float g = grad[k] + wd * w[k];
            s0[k] = p->rms_decay * s0[k] + (1.0f - p->rms_decay) * g * g;
            s1[k] = p->momentum * s1[k] + lr * g / sqrtf(s0[k] + p->epsilon);
            w[k] -= s1[k];
        }
        break;
    case NN_OPT_ADAM:
        for (size_t k = 0; k < n; k++) {
            float g = grad[k] + wd * w[k];
            s0[k] = p->beta1 * s0[k] + (1.0f - p->beta1) * g;
            s1[k] = p->beta2 * s1[k] + (1.0f - p->beta2) * g * g;
            w[k] -= adam_lr * s0[k] / (sqrtf(s1[k]) + p->epsilon);
        }
        break;
    }
}

void nn_optimizer_step(struct nn_optimizer *o, struct nn_params *params, const float *grads, float lr)
{
    o->updates++;
    float adam_lr = 0.0f;
    if (o->opt.kind == NN_OPT_ADAM) {
        double t = (double)o->updates;
        adam_lr = (float)(lr * sqrt(1.0 - pow(o->opt.beta2, t)) / (1.0 - pow(o->opt.beta1, t)));
    }
    for (int i = 0; i < o->count; i++) {
        if (!o->trainable[i]) continue;
        const struct nn_param *p = &params->items[i];
        float wd = nn_param_decayed(p) ? o->opt.weight_decay : 0.0f;
        update(o, params->data + p->offset, grads + p->offset, nn_optimizer_slot(o, 0, i), nn_optimizer_slot(o, 1, i),
               p->count, lr, wd, adam_lr);
    }
}

double nn_optimizer_decay_loss(const struct nn_optimizer *o, const struct nn_params *params)
{
    if (o->opt.weight_decay == 0.0f) return 0.0;
    double sum = 0;
    for (int i = 0; i < o->count; i++) {
        const struct nn_param *p = &params->items[i];
        if (!o->trainable[i] || !nn_param_decayed(p)) continue;
        const float *w = params->data + p->offset;
        for (size_t k = 0; k < p->count; k++) sum += (double)w[k] * w[k];
    }
    return 0.5 * o->opt.weight_decay * sum;
}
