/* Post-training int8 quantisation calibrated on a converted dataset. */
#ifndef NN_TRAIN_QUANTIZE_H
#define NN_TRAIN_QUANTIZE_H

#include "base/status.h"
#include "io/dataset.h"
#include "nn/calibrate.h"
#include "nn/model.h"

struct nn_quantize_options {
    enum nn_split split;        /* calibration photos: the training split (validation stays unseen) */
    long images;                /* how many (500; fewer if the split is smaller) */
    int batch;                  /* 16 */
    int threads;                /* decoding threads (0: all cores) */
    enum nn_calib_method method;
    uint64_t seed;              /* which images: the first of a seeded shuffle (1) */
};
void nn_quantize_options_default(struct nn_quantize_options *o);

typedef void (*nn_quantize_progress_fn)(void *user, long done, long total);

/* The int8 model of `m` (float32, frozen or not) calibrated on opt->images
 * photos of data_dir with the model's eval transform. */
enum nn_status nn_quantize_model(const struct nn_model *m, const char *data_dir, const struct nn_quantize_options *opt,
                                 nn_quantize_progress_fn progress, void *user, struct nn_model **out);

#endif
