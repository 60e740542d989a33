/* The input pipeline: batches of preprocessed images from a converted
 * dataset (io/dataset.h), made on worker threads one batch ahead of the
 * trainer.
 *
 * Epoch e visits the split in the order nn_pipeline_epoch_order(seed, e)
 * gives; batch b of epoch e holds positions b*B .. b*B+B-1 of that order.
 * Every random draw for an example comes from a stream seeded by (seed,
 * epoch, example number), so batches do not depend on the thread count or
 * timing, and (epoch, batch) is all a checkpoint needs to resume exactly.
 *
 * A record that fails its CRC or does not decode is reported (nn_warn, with
 * shard and record number) and left out of its batch, which then holds
 * fewer examples; training goes on. */
#ifndef NN_TRAIN_PIPELINE_H
#define NN_TRAIN_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "io/dataset.h"
#include "train/augment.h"

struct nn_pipeline_options {
    int batch_size;              /* 32 */
    int image_size;              /* 299: images are image_size x image_size */
    uint64_t seed;               /* shuffling and augmentation (1) */
    bool shuffle;                /* a new seeded order every epoch (true); off: dataset order */
    bool train_transform;        /* nn_augment_train (true); off: the eval transform */
    struct nn_augment_options augment;   /* nn_augment_defaults */
    float central_fraction;      /* eval transform's central crop (0.875) */
    int threads;                 /* worker threads (0: all cores) */
    bool drop_last;              /* leave out an epoch's last, short batch (true) */
    long epochs;                 /* stop after this many epochs, counted from 0 (0: never stop) */
    long start_epoch, start_batch;   /* where to begin: a saved nn_pipeline_position (0, 0) */
};
/* Training defaults (shuffle, train transform, drop_last). */
void nn_pipeline_options_default(struct nn_pipeline_options *o);
/* Evaluation defaults: dataset order, eval transform, keep the last short
 * batch, one epoch. */
void nn_pipeline_options_eval(struct nn_pipeline_options *o);

struct nn_batch {
    int n;               /* examples in this batch (<= batch_size) */
    int size;            /* image side */
    float *images;       /* [n, size, size, 3] NHWC, values in [-1, 1] */
    int32_t *labels;     /* [n] */
    long *examples;      /* [n] example numbers within the split */
    long epoch, index;   /* this batch's position */
};

struct nn_pipeline_position {
    long epoch;
    long batch;
};

struct nn_pipeline;

enum nn_status nn_pipeline_open(const char *dataset_dir, enum nn_split split, const struct nn_pipeline_options *opt,
                                struct nn_pipeline **out);

/* The next batch, valid until the following call (or close). *batch is NULL
 * once opt.epochs epochs are done. Examples that cannot be read or decoded
 * are left out, each warned about once (nn_warn) however many epochs visit
 * it; a batch of nothing but such examples is skipped. When a whole epoch's
 * worth of batches in a row had nothing usable, this fails (NN_ERR_CORRUPT,
 * naming the dataset and the first failure) on every call from then on. */
enum nn_status nn_pipeline_next(struct nn_pipeline *p, const struct nn_batch **batch);

/* The position of the batch the next nn_pipeline_next returns: save it with
 * a checkpoint and pass it as start_epoch/start_batch to resume. */
struct nn_pipeline_position nn_pipeline_position(const struct nn_pipeline *p);

long nn_pipeline_batches_per_epoch(const struct nn_pipeline *p);
long nn_pipeline_examples(const struct nn_pipeline *p);     /* in the split */
const struct nn_dataset *nn_pipeline_dataset(const struct nn_pipeline *p);
/* Records left out so far because they were corrupt or did not decode. */
long nn_pipeline_skipped(const struct nn_pipeline *p);

void nn_pipeline_close(struct nn_pipeline *p);

/* The visiting order of epoch `epoch`: order[n] is a permutation of 0..n-1
 * (the identity when !shuffle). */
void nn_pipeline_epoch_order(uint64_t seed, long epoch, bool shuffle, long n, long *order);

/* Shorter side a JPEG may be DCT-scaled down to for the training transform
 * without its crop being upsampled from fewer pixels than it would have
 * had at full size (see pipeline.c). 0: no scaling. */
int nn_pipeline_train_min_side(int image_size, const struct nn_augment_options *aug);

#endif
