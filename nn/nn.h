/* nn: Inception-v3 inference and training on CPUs. The public API.
 *
 * A model (struct nn_model) holds the architecture and the weights. Once
 * loaded it is never modified by inference, so one model can be shared by any
 * number of threads, each with its own small inference context
 * (struct nn_ctx) that holds the activations for one batch size.
 *
 * Every function that can fail returns enum nn_status; nn_last_error() gives
 * the message of the last failure on the calling thread. Images go in as
 * NHWC float32 batches already transformed to [-1, 1] (nn_model_preprocess
 * does that for a decoded photo). */
#ifndef NN_NN_H
#define NN_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "base/status.h"

#define NN_VERSION "0.1.0"

/* The arithmetic of a model's convolutions. bf16 and int8 models are
 * frozen inference models (batch norm folded) made by `nn export
 * --precision bf16` and `nn quantize`; everything outside the convs (pools,
 * the classifier, softmax) stays float32. */
enum nn_precision {
    NN_PRECISION_F32 = 0,
    NN_PRECISION_BF16 = 1,   /* conv weights and inputs rounded to bfloat16, float32 sums */
    NN_PRECISION_INT8 = 2    /* int8 weights per output channel, uint8 inputs from calibrated scales;
                                the first conv (on the image) in bf16 */
};

/* "f32", "bf16", "int8". */
const char *nn_precision_name(enum nn_precision p);

/* Architecture and hyper-parameters, stored in every model file. */
struct nn_config {
    int num_classes;        /* classifier outputs (1000 for ImageNet) */
    int image_size;         /* input height = width, >= 75 (299 by default) */
    bool aux_logits;        /* the auxiliary head on Mixed_6e */
    float dropout_keep;     /* keep probability before the classifier (0.8) */
    float bn_eps;           /* 0.001 */
    float bn_decay;         /* running-statistics decay in training (0.9997) */
    bool folded;            /* batch norm folded into conv weights + bias: inference only (nn_model_freeze) */
    enum nn_precision precision; /* not f32: folded too */
};

/* TF-slim's Inception-v3 defaults with the given class count. */
struct nn_config nn_config_default(int num_classes);

struct nn_model;

/* A new model with freshly initialised weights (TF-slim's initialisers,
 * drawn from `seed`). class_names may be NULL (classes are then "0", "1", ...). */
enum nn_status nn_model_new(const struct nn_config *cfg, const char *const *class_names, uint64_t seed,
                            struct nn_model **out);
/* Loads nn's own model file (docs/model-format.md). */
enum nn_status nn_model_load(const char *path, struct nn_model **out);
/* Writes the model atomically. */
enum nn_status nn_model_save(const struct nn_model *m, const char *path);
void nn_model_free(struct nn_model *m);

const struct nn_config *nn_model_config(const struct nn_model *m);
const char *nn_model_class_name(const struct nn_model *m, int class_id);

/* Per-thread inference state for batches of up to max_batch images. */
struct nn_ctx;
enum nn_status nn_ctx_new(const struct nn_model *m, int max_batch, struct nn_ctx **out);
void nn_ctx_free(struct nn_ctx *ctx);

/* The model a context runs. */
const struct nn_model *nn_ctx_model(const struct nn_ctx *ctx);

/* logits[n * num_classes] for n images in images[n, size, size, 3] (NHWC). */
enum nn_status nn_infer(struct nn_ctx *ctx, const float *images, int n, float *logits);

/* Softmax of one row of logits, in place. */
void nn_softmax(float *x, int k);

/* ---- Photos in, classes out ---- */

/* One class and its probability. */
struct nn_class_score {
    int id;
    float probability;
};

/* The model's eval transform (the same one evaluation and serving use):
 * decode at full resolution, central crop, bilinear resize to image_size,
 * scale to [-1, 1]. Each writes image_size * image_size * 3 floats (HWC),
 * one image of an nn_infer batch. An encoded photo is JPEG or PNG; `name`
 * only labels error messages. rgb: height rows of width * 3 bytes. */
enum nn_status nn_preprocess_encoded(const struct nn_model *m, const void *data, size_t len, const char *name,
                                     float *input);
enum nn_status nn_preprocess_file(const struct nn_model *m, const char *path, float *input);
enum nn_status nn_preprocess_rgb8(const struct nn_model *m, const uint8_t *rgb, int width, int height, float *input);

/* Softmax of logits[k], most likely first (ties: lower id first) into ranked[k]. */
enum nn_status nn_rank_classes(const float *logits, int k, struct nn_class_score *ranked);

/* One photo end to end: the `top` most likely classes (1 <= top <= num_classes)
 * into scores[top]. Use a context made for at least one image. */
enum nn_status nn_classify_file(struct nn_ctx *ctx, const char *path, int top, struct nn_class_score *scores);
enum nn_status nn_classify_encoded(struct nn_ctx *ctx, const void *data, size_t len, int top,
                                   struct nn_class_score *scores);
enum nn_status nn_classify_rgb8(struct nn_ctx *ctx, const uint8_t *rgb, int width, int height, int top,
                                struct nn_class_score *scores);

#endif
