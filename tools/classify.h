/* The eval path that nn predict and nn serve share: a photo to the model's
 * input, and logits to classes ranked by probability. Keeping it in one place
 * means the server answers exactly what `nn predict` prints. */
#ifndef NN_TOOLS_CLASSIFY_H
#define NN_TOOLS_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

struct nn_model;

struct classify_score {
    int id;
    float p;    /* softmax probability */
};

/* Decodes a photo at full resolution (never the reduced-size JPEG decode of
 * training) and applies the model's eval transform: central crop of
 * m->central_fraction, resize to image_size x image_size, scale to [-1, 1].
 * input[image_size * image_size * 3], HWC. `name` is used in messages. */
enum nn_status classify_input_from_memory(const struct nn_model *m, const void *data, size_t len,
                                          const char *name, float *input);
enum nn_status classify_input_from_file(const struct nn_model *m, const char *path, float *input);

/* Softmax of logits[K] into ranked[K], most likely first (ties by lower id).
 * False only when out of memory. */
bool classify_rank(const float *logits, int K, struct classify_score *ranked);

#endif
