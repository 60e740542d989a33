/* Checkpoints of a training run, in RUN_DIR/checkpoints/:
 *
 *   ckpt-<step>.nnm     the model at that step (nn_model_save: weights and
 *                       batch-norm moving statistics)
 *   ckpt-<step>.state   everything else needed to continue exactly: the
 *                       optimizer's slots and update count, and the
 *                       trainer's state (step, RNG states, data position,
 *                       the run's options) as a JSON object
 *
 * The .state file uses the model container (io/modelfile.h: magic, version,
 * CRC-32C over every part) with metadata {"format": "nn-train-state",
 * "version": 1, ...} and one tensor "<slot>/<parameter name>" per optimizer
 * slot and trainable parameter. Both files are written atomically, the model
 * first: a .state file is the mark of a complete checkpoint. docs/training.md
 * describes the layout. */
#ifndef NN_TRAIN_CHECKPOINT_H
#define NN_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "base/status.h"
#include "io/json.h"
#include "io/modelfile.h"
#include "nn/model.h"
#include "train/optimizer.h"

#define NN_TRAIN_STATE_VERSION 1

/* Writes checkpoint `step` of the run in run_dir (creating
 * run_dir/checkpoints), then removes all but the newest `keep` checkpoints
 * (keep <= 0: keep all). trainer_json is a JSON object. */
enum nn_status nn_checkpoint_save(const char *run_dir, int64_t step, const struct nn_model *m,
                                  const struct nn_optimizer *o, const char *trainer_json, int keep);

/* Steps of the checkpoints whose .state file exists, ascending (malloc'd). */
enum nn_status nn_checkpoint_list(const char *run_dir, int64_t **steps, int *count);

/* A loaded checkpoint. */
struct nn_checkpoint {
    int64_t step;
    struct nn_model *model;         /* owned */
    struct nn_modelfile *state;     /* the .state file, open */
    struct nn_json *meta;           /* its metadata */
    const struct nn_json *trainer;  /* meta's "trainer" object */
};

/* Loads and checks checkpoint `step` (both files, every CRC). */
enum nn_status nn_checkpoint_load(const char *run_dir, int64_t step, struct nn_checkpoint *out);

/* The newest checkpoint that loads. A newer one that does not (truncated,
 * corrupt, half-written) is reported with nn_warn and the one before it is
 * tried. NN_ERR_NOT_FOUND when the run has no usable checkpoint. */
enum nn_status nn_checkpoint_load_latest(const char *run_dir, struct nn_checkpoint *out);

/* Copies the saved slots into an optimizer set up over `params` (the
 * checkpoint's model, or a table with the same names): kind and trainable
 * set must match the checkpoint's. */
enum nn_status nn_checkpoint_restore_optimizer(const struct nn_checkpoint *c, const struct nn_params *params,
                                               struct nn_optimizer *o);

void nn_checkpoint_free(struct nn_checkpoint *c);

/* Removes temporary files a killed writer left in run_dir/checkpoints and
 * those of the run's own files (final.nnm, options.json, metrics.jsonl)
 * in run_dir. */
void nn_checkpoint_clean_temps(const char *run_dir);

#endif
