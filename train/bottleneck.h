/* The bottleneck cache of head-only training (train/heads.h): the frozen
 * trunk's outputs for every image of a split, computed once with the eval
 * transform. */
#ifndef NN_TRAIN_BOTTLENECK_H
#define NN_TRAIN_BOTTLENECK_H

#include <stdint.h>

#include "io/dataset.h"
#include "nn/model.h"
#include "train/heads.h"

struct nn_bottleneck {
    long n;                 /* examples in the split */
    int features;           /* pre_logits floats per example (2048) */
    size_t aux_floats;      /* cached aux input floats per example (0: no aux head) */
    float *pre;             /* [n, features] */
    float *aux;             /* [n, aux_floats], NULL without the aux head */
    int32_t *labels;        /* [n] */
    unsigned char *ok;      /* [n]: 0 for a record that could not be read (left out, as the pipeline does) */
};

typedef void (*nn_bottleneck_progress_fn)(void *user, long done, long total);

/* Runs the model's trunk (inference mode: the trunk is frozen, so its batch
 * norm uses the moving statistics either way) over split s of the dataset
 * in `batch`-image batches. image_size and central_fraction are the
 * model's. h gives the aux head's pooling. */
enum nn_status nn_bottleneck_build(const struct nn_model *m, const struct nn_heads *h, const char *data_dir,
                                   enum nn_split s, int batch, int threads, nn_bottleneck_progress_fn progress,
                                   void *user, struct nn_bottleneck *out);
void nn_bottleneck_free(struct nn_bottleneck *b);

#endif
