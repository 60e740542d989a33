/* Learning-rate schedules, as functions of the global step.
 *
 *   fixed        lr
 *   exponential  lr * factor^floor(step / decay_steps), decay_steps =
 *                floor(decay_epochs * steps_per_epoch): TF-slim's staircase
 *                exponential_decay (0.94 every 2 epochs)
 *   cosine       lr * (1 + cos(pi * t)) / 2, t = the fraction of the
 *                post-warmup steps done: from lr at the end of warmup to 0
 *                at total_steps
 *
 * Any of them may start with a linear warmup over warmup_epochs: step s <
 * warmup_steps gets (s + 1) / warmup_steps of what the schedule gives, so
 * the first step is not taken at zero and the last warmup step reaches it. */
#ifndef NN_TRAIN_SCHEDULE_H
#define NN_TRAIN_SCHEDULE_H

#include "base/status.h"

enum nn_lr_kind { NN_LR_FIXED, NN_LR_EXPONENTIAL, NN_LR_COSINE };

/* "fixed", "exponential", "cosine". */
const char *nn_lr_name(enum nn_lr_kind kind);
enum nn_status nn_lr_parse(const char *name, enum nn_lr_kind *out);

struct nn_lr_schedule {
    enum nn_lr_kind kind;
    double lr;                  /* the base (peak) learning rate (0.01) */
    double steps_per_epoch;     /* examples / batch size (need not be whole) */
    double decay_factor;        /* exponential (0.94) */
    double decay_epochs;        /* exponential (2.0) */
    double warmup_epochs;       /* 0: no warmup */
    long total_steps;           /* cosine: the step it reaches 0 at */
};

/* TF-slim's defaults: exponential, 0.01, x0.94 every 2 epochs, no warmup. */
void nn_lr_schedule_default(struct nn_lr_schedule *s);

/* Warmup length in steps (0 when warmup_epochs is 0). */
long nn_lr_warmup_steps(const struct nn_lr_schedule *s);

/* The learning rate of step `step` (counted from 0). */
double nn_lr_at(const struct nn_lr_schedule *s, long step);

#endif
