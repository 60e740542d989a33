#include "train/schedule.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"fixed", "exponential", "cosine"};

const char *nn_lr_name(enum nn_lr_kind kind) { return (unsigned)kind <= NN_LR_COSINE ? names[kind] : "?"; }

enum nn_status nn_lr_parse(const char *name, enum nn_lr_kind *out)
{
    for (int i = 0; name && i <= NN_LR_COSINE; i++)
        if (!strcmp(name, names[i])) {
            *out = (enum nn_lr_kind)i;
            return NN_OK;
        }
    return nn_fail(NN_ERR_ARG, "unknown learning-rate schedule '%s' (fixed, exponential or cosine)",
                   name ? name : "");
}

void nn_lr_schedule_default(struct nn_lr_schedule *s)
{
    *s = (struct nn_lr_schedule){
        .kind = NN_LR_EXPONENTIAL,
        .lr = 0.01,
        .steps_per_epoch = 1,
        .decay_factor = 0.94,
        .decay_epochs = 2.0,
    };
}

long nn_lr_warmup_steps(const struct nn_lr_schedule *s)
{
    if (s->warmup_epochs <= 0) return 0;
    long w = (long)ceil(s->warmup_epochs * s->steps_per_epoch - 1e-9);
    return w < 1 ? 1 : w;
}

double nn_lr_at(const struct nn_lr_schedule *s, long step)
{
    if (step < 0) step = 0;
    long warm = nn_lr_warmup_steps(s);
    double lr = s->lr;
    switch (s->kind) {
    case NN_LR_FIXED: break;
    case NN_LR_EXPONENTIAL: {
        /* TF-slim: decay_steps = int(samples_per_epoch * epochs_per_decay / batch) */
        long decay_steps = (long)floor(s->decay_epochs * s->steps_per_epoch + 1e-9);
        if (decay_steps < 1) decay_steps = 1;
        lr *= pow(s->decay_factor, (double)(step / decay_steps));
        break;
    }
    case NN_LR_COSINE: {
        long span = s->total_steps - warm;
        double t = span > 0 ? (double)(step - warm) / (double)span : 1.0;
        if (t < 0) t = 0;
        if (t > 1) t = 1;
        lr *= 0.5 * (1.0 + cos(M_PI * t));
        break;
    }
    }
    if (step < warm) lr *= (double)(step + 1) / (double)warm;
    return lr;
}
