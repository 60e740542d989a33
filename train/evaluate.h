/* Classification metrics: top-1, top-5, per-class precision and recall and
 * the confusion matrix, accumulated batch by batch.
 *
 * Top-1 compares the label with the arg-max of the logits (the first one
 * on a tie), as TF-slim's eval does with streaming accuracy; the confusion
 * matrix uses the same prediction. Top-5 counts an example when fewer than
 * 5 classes score strictly higher than its label (TensorFlow's in_top_k:
 * classes tied at the boundary are all "in"); with 5 classes or fewer it
 * is 1. */
#ifndef NN_TRAIN_EVALUATE_H
#define NN_TRAIN_EVALUATE_H

#include <stdint.h>

#include "base/status.h"
#include "io/dataset.h"
#include "nn/model.h"

struct nn_eval {
    int num_classes;
    long count;             /* examples seen */
    long top1, top5;        /* examples right */
    double loss_sum;        /* sum of the main head's cross-entropy */
    long *confusion;        /* [num_classes][num_classes]: row = true class, column = predicted */
};

enum nn_status nn_eval_init(struct nn_eval *e, int num_classes);
void nn_eval_free(struct nn_eval *e);
void nn_eval_reset(struct nn_eval *e);

/* Adds n examples: logits [n, num_classes], labels [n]. */
void nn_eval_add(struct nn_eval *e, const float *logits, const int32_t *labels, int n);

double nn_eval_top1(const struct nn_eval *e);    /* 0 when nothing was seen */
double nn_eval_top5(const struct nn_eval *e);
double nn_eval_loss(const struct nn_eval *e);    /* mean cross-entropy */
/* Of the examples predicted as c, the share that are c (0 if none were). */
double nn_eval_precision(const struct nn_eval *e, int c);
/* Of the examples of class c, the share predicted as c (0 if there are none). */
double nn_eval_recall(const struct nn_eval *e, int c);
long nn_eval_support(const struct nn_eval *e, int c);   /* examples of class c */

/* Progress of a long evaluation: batches done of total. */
typedef void (*nn_eval_progress_fn)(void *user, long done, long total);

/* Evaluates `m` on a split of the converted dataset in data_dir with the
 * eval transform, `batch` images at a time, decoding on `threads` threads
 * (0: all cores). e must be set up for the model's class count; the
 * dataset's must equal it. */
enum nn_status nn_evaluate_model(const struct nn_model *m, const char *data_dir, enum nn_split split, int batch,
                                 int threads, nn_eval_progress_fn progress, void *user, struct nn_eval *e);

#endif
