/* Private to train/: the pieces of nn_train in separate files. */
#ifndef NN_TRAIN_INTERNAL_H
#define NN_TRAIN_INTERNAL_H

#include <stdbool.h>

#include "io/dataset.h"
#include "io/json.h"
#include "nn/model.h"
#include "train/trainer.h"

/* The starting model of a new run: fresh (seeded) or --init-from adapted
 * to the dataset's classes and the run's image size (tensors that no
 * longer fit are initialised fresh and reported). */
enum nn_status nn_trainer_make_model(const struct nn_train_options *o, const struct nn_dataset_desc *d,
                                     struct nn_model **out);

/* trainable[i] per parameter from comma-separated name prefixes (NULL or
 * "": all). A prefix that matches nothing is an error (a typo would
 * otherwise freeze the whole network). NN_BN_FROZEN leaves batch norm's
 * gamma and beta out. Logs what is trained. */
enum nn_status nn_trainer_trainable(const struct nn_model *m, const char *scopes, enum nn_bn_mode bn_mode,
                                    bool **out);

/* NN_OK when o agrees with the options a run was started with on
 * everything that shapes its result; otherwise an error listing each
 * difference. */
enum nn_status nn_trainer_check_resume(const struct nn_json *saved, const struct nn_train_options *o);

#endif
