/* Training Inception-v3 on a converted dataset: the loop behind `nn train`
 * and the two stages of `nn finetune`, as a library function.
 *
 * A run lives in one directory (docs/training.md):
 *
 *   RUN_DIR/options.json        the run's options (written when it starts)
 *   RUN_DIR/metrics.jsonl       one JSON object per line: training loss, lr,
 *                               images/s; validation top-1/top-5; events
 *   RUN_DIR/checkpoints/        ckpt-<step>.nnm + ckpt-<step>.state, the last K
 *   RUN_DIR/final.nnm           the trained model
 *
 * Determinism: for a fixed seed the batches, augmentation, dropout and
 * updates depend only on the step, so a run resumed from a checkpoint
 * reproduces the uninterrupted run's weights bit for bit. */
#ifndef NN_TRAIN_TRAINER_H
#define NN_TRAIN_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/status.h"
#include "io/json.h"
#include "train/optimizer.h"
#include "train/schedule.h"

/* How batch norm behaves in trainable layers. Frozen layers always use
 * their moving statistics. */
enum nn_bn_mode {
    NN_BN_TRAIN,    /* batch statistics, moving averages updated (TF-slim's is_training) */
    NN_BN_FROZEN    /* moving statistics, and gamma/beta held fixed: batch norm as at inference */
};
const char *nn_bn_mode_name(enum nn_bn_mode m);
enum nn_status nn_bn_mode_parse(const char *name, enum nn_bn_mode *out);

struct nn_train_options {
    const char *data_dir;           /* a converted dataset (nn convert) */
    const char *run_dir;            /* created if missing */
    const char *init_from;          /* start weights (a model file); NULL: fresh initialisation */
    bool resume;                    /* continue run_dir from its newest usable checkpoint */
    const char *trainable_scopes;   /* comma-separated name prefixes; NULL or "": every parameter */
    struct nn_optimizer_options opt;
    enum nn_lr_kind lr_schedule;    /* exponential */
    double learning_rate;           /* 0.01 */
    double lr_decay_factor;         /* 0.94 */
    double lr_decay_epochs;         /* 2.0 */
    double warmup_epochs;           /* 0 */
    float label_smoothing;          /* 0 */
    int batch_size;                 /* 32 */
    double epochs;                  /* used when max_steps is 0 (1) */
    long max_steps;                 /* 0: from epochs */
    int image_size;                 /* 0: the init model's, else 299 */
    float bn_decay;                 /* 0.9997 */
    float aux_weight;               /* 0.4 */
    enum nn_bn_mode bn_mode;        /* train */
    bool augment;                   /* TF-slim's training transform (true); off: the eval transform */
    int cache;                      /* bottleneck cache: -1 when possible (heads only, no augmentation), 0 never, 1 required */
    uint64_t seed;                  /* 1 */
    int threads;                    /* 0: all cores */
    long eval_every;                /* validate every N steps (0: only at the end) */
    bool eval_at_end;               /* true */
    int eval_batch_size;            /* 0: batch_size */
    int bn_recalibrate;             /* batches (0: off): recompute trainable batch norm statistics before evaluating */
    long log_every;                 /* metrics line every N steps (10) */
    long checkpoint_every;          /* steps (0: not by steps) */
    double checkpoint_seconds;      /* seconds (600; 0: not by time) */
    int keep_checkpoints;           /* 3 */
    const char *stage;              /* a label written into metrics lines (NULL: none) */
    /* Cancellation (not saved with the run): when non-NULL and *cancel
     * becomes non-zero (a signal handler may set it), the run stops after
     * the step in progress, writes a checkpoint and returns
     * NN_ERR_CANCELLED; --resume continues it. Polled between steps and
     * between the phases of a run (caching, evaluation). */
    volatile sig_atomic_t *cancel;
};

void nn_train_options_default(struct nn_train_options *o);

/* The largest learning rate nn_train accepts: far above any useful one for
 * these optimizers, so that only a typo (1e30, inf) is refused. nn_train
 * checks every real-valued option against its range and names the option
 * that is out of it. */
#define NN_TRAIN_MAX_LR 100.0

/* The options as a JSON object (written to RUN_DIR/options.json and into
 * every checkpoint). */
char *nn_train_options_json(const struct nn_train_options *o);
/* Reads options back from such an object. String options point into `j`,
 * which must outlive *o. Keys that are absent keep *o's values. */
enum nn_status nn_train_options_from_json(const struct nn_json *j, struct nn_train_options *o);
/* Reads RUN_DIR/options.json into *o (strings point into *storage; free it
 * with nn_json_free after the last use of *o). */
enum nn_status nn_train_options_load(const char *run_dir, struct nn_train_options *o, struct nn_json **storage);

/* What the progress callback sees. */
struct nn_train_progress {
    const char *phase;      /* "caching", "training", "recalibrating", "evaluating" */
    long done, total;       /* steps or batches of this phase */
    double epoch;           /* training: epochs done */
    double loss;            /* training: mean loss since the last report */
    double lr;
    double images_per_sec;
    double seconds;         /* since the phase started */
    double eta;             /* seconds left in this phase (< 0: unknown yet) */
};
typedef void (*nn_train_progress_fn)(void *user, const struct nn_train_progress *p);

struct nn_train_result {
    long steps;             /* global step reached */
    long total_steps;
    double last_loss;       /* mean loss of the last logged interval */
    double seconds;         /* wall time of this call, caching and evaluation included */
    bool cached;            /* trained from the bottleneck cache */
    bool recalibrated;      /* batch norm statistics recomputed at the end */
    bool evaluated;         /* top1/top5 hold the final validation result */
    double top1, top5;
    long eval_count;
};

/* Runs (or resumes) a training run. Progress (may be NULL) is called on
 * the caller's thread. Fails without training on inconsistent options:
 * --resume with --init-from, a run directory that already holds
 * checkpoints without --resume, options on resume that contradict the
 * run's (learning rate, optimizer, data, scopes, ...: only the step budget,
 * evaluation, checkpointing and threads may change). A NaN or infinite
 * loss, or a NaN or infinite weight (checked every few steps and before
 * every checkpoint and the final model), stops the run (NN_ERR_INTERNAL)
 * with the last good checkpoint kept: a non-finite model is never saved.
 * A run stopped through opt->cancel returns NN_ERR_CANCELLED after writing
 * a checkpoint. A run directory this call created is removed again when
 * the call fails while it is still empty; stale temporary files of an
 * interrupted write (RUN_DIR/final.nnm.tmp.*, checkpoints) are removed at
 * the start. */
enum nn_status nn_train(const struct nn_train_options *opt, nn_train_progress_fn progress, void *user,
                        struct nn_train_result *result);

#endif
