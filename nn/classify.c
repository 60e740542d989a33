/* Photos in, classes out: the public path that `nn predict`, `nn serve` and
 * C programs share, so all of them apply exactly the evaluation transform. */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "io/image.h"
#include "nn/model.h"

static enum nn_status transform(const struct nn_model *m, const struct nn_image *img, float *input)
{
    return nn_image_eval_transform(img, m->cfg.image_size, m->central_fraction, input);
}

enum nn_status nn_preprocess_encoded(const struct nn_model *m, const void *data, size_t len, const char *name,
                                     float *input)
{
    if (!m || !data || !input) return nn_fail(NN_ERR_ARG, "nn_preprocess_encoded: NULL argument");
    struct nn_image img;
    NN_TRY(nn_image_decode(data, len, name ? name : "image", 0, &img));
    enum nn_status st = transform(m, &img, input);
    nn_image_free(&img);
    return st;
}

enum nn_status nn_preprocess_file(const struct nn_model *m, const char *path, float *input)
{
    if (!m || !path || !input) return nn_fail(NN_ERR_ARG, "nn_preprocess_file: NULL argument");
    struct nn_image img;
    NN_TRY(nn_image_load(path, 0, &img));
    enum nn_status st = transform(m, &img, input);
    nn_image_free(&img);
    return st;
}

enum nn_status nn_preprocess_rgb8(const struct nn_model *m, const uint8_t *rgb, int width, int height, float *input)
{
    if (!m || !rgb || !input) return nn_fail(NN_ERR_ARG, "nn_preprocess_rgb8: NULL argument");
    if (width < 1 || height < 1) return nn_fail(NN_ERR_ARG, "nn_preprocess_rgb8: %dx%d image", width, height);
    /* the transform only reads the pixels */
    struct nn_image img = {.width = width, .height = height, .rgb = (uint8_t *)rgb};
    return transform(m, &img, input);
}

static int by_probability(const void *a, const void *b)
{
    const struct nn_class_score *x = a, *y = b;
    if (x->probability != y->probability) return (x->probability < y->probability) - (x->probability > y->probability);
    return (x->id > y->id) - (x->id < y->id);
}

enum nn_status nn_rank_classes(const float *logits, int k, struct nn_class_score *ranked)
{
    if (!logits || !ranked || k < 1) return nn_fail(NN_ERR_ARG, "nn_rank_classes: bad arguments");
    float *p = malloc((size_t)k * sizeof(float));
    if (!p) return nn_fail(NN_ERR_NOMEM, "out of memory");
    memcpy(p, logits, (size_t)k * sizeof(float));
    nn_softmax(p, k);
    for (int i = 0; i < k; i++) ranked[i] = (struct nn_class_score){i, p[i]};
    qsort(ranked, (size_t)k, sizeof *ranked, by_probability);
    free(p);
    return NN_OK;
}

/* Runs one preprocessed image and keeps the `top` best classes. */
static enum nn_status classify_input(struct nn_ctx *ctx, const struct nn_model *m, const float *input, int top,
                                     struct nn_class_score *scores)
{
    int K = m->cfg.num_classes;
    float *logits = malloc((size_t)K * sizeof(float));
    struct nn_class_score *ranked = malloc((size_t)K * sizeof *ranked);
    enum nn_status st = logits && ranked ? NN_OK : nn_fail(NN_ERR_NOMEM, "out of memory");
    if (st == NN_OK) st = nn_infer(ctx, input, 1, logits);
    if (st == NN_OK) st = nn_rank_classes(logits, K, ranked);
    if (st == NN_OK) memcpy(scores, ranked, (size_t)top * sizeof *scores);
    free(logits);
    free(ranked);
    return st;
}

enum classify_source { FROM_FILE, FROM_ENCODED, FROM_RGB8 };

struct classify_request {
    enum classify_source source;
    const char *path;
    const void *data;
    size_t len;
    int width, height;
};

static enum nn_status classify(struct nn_ctx *ctx, const struct classify_request *rq, int top,
                               struct nn_class_score *scores)
{
    const struct nn_model *m = ctx ? nn_ctx_model(ctx) : NULL;
    if (!m || !scores) return nn_fail(NN_ERR_ARG, "nn_classify: NULL argument");
    if (top < 1 || top > m->cfg.num_classes)
        return nn_fail(NN_ERR_ARG, "top %d: the model has %d classes", top, m->cfg.num_classes);
    size_t floats = (size_t)m->cfg.image_size * m->cfg.image_size * 3;
    float *input = nn_alloc(floats * sizeof(float));
    if (!input) return nn_fail(NN_ERR_NOMEM, "out of memory");
    enum nn_status st;
    switch (rq->source) {
    case FROM_FILE: st = nn_preprocess_file(m, rq->path, input); break;
    case FROM_ENCODED: st = nn_preprocess_encoded(m, rq->data, rq->len, "image buffer", input); break;
    default: st = nn_preprocess_rgb8(m, rq->data, rq->width, rq->height, input); break;
    }
    if (st == NN_OK) st = classify_input(ctx, m, input, top, scores);
    nn_free(input);
    return st;
}

enum nn_status nn_classify_file(struct nn_ctx *ctx, const char *path, int top, struct nn_class_score *scores)
{
    struct classify_request rq = {.source = FROM_FILE, .path = path};
    if (!path) return nn_fail(NN_ERR_ARG, "nn_classify_file: NULL path");
    return classify(ctx, &rq, top, scores);
}

enum nn_status nn_classify_encoded(struct nn_ctx *ctx, const void *data, size_t len, int top,
                                   struct nn_class_score *scores)
{
    struct classify_request rq = {.source = FROM_ENCODED, .data = data, .len = len};
    if (!data) return nn_fail(NN_ERR_ARG, "nn_classify_encoded: NULL data");
    return classify(ctx, &rq, top, scores);
}

enum nn_status nn_classify_rgb8(struct nn_ctx *ctx, const uint8_t *rgb, int width, int height, int top,
                                struct nn_class_score *scores)
{
    struct classify_request rq = {.source = FROM_RGB8, .data = rgb, .width = width, .height = height};
    if (!rgb) return nn_fail(NN_ERR_ARG, "nn_classify_rgb8: NULL pixels");
    return classify(ctx, &rq, top, scores);
}
