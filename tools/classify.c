#include "tools/classify.h"

#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "nn/model.h"

static enum nn_status transform(const struct nn_model *m, struct nn_image *img, float *input)
{
    enum nn_status st = nn_image_eval_transform(img, m->cfg.image_size, m->central_fraction, input);
    nn_image_free(img);
    return st;
}

enum nn_status classify_input_from_memory(const struct nn_model *m, const void *data, size_t len,
                                          const char *name, float *input)
{
    struct nn_image img;
    NN_TRY(nn_image_decode(data, len, name, 0, &img));
    return transform(m, &img, input);
}

enum nn_status classify_input_from_file(const struct nn_model *m, const char *path, float *input)
{
    struct nn_image img;
    NN_TRY(nn_image_load(path, 0, &img));
    return transform(m, &img, input);
}

static int by_prob_desc(const void *a, const void *b)
{
    const struct classify_score *x = a, *y = b;
    if (x->p != y->p) return (x->p < y->p) - (x->p > y->p);
    return (x->id > y->id) - (x->id < y->id);
}

bool classify_rank(const float *logits, int K, struct classify_score *ranked)
{
    float *p = malloc((size_t)K * sizeof(float));
    if (!p) return false;
    memcpy(p, logits, (size_t)K * sizeof(float));
    nn_softmax(p, K);
    for (int k = 0; k < K; k++) ranked[k] = (struct classify_score){k, p[k]};
    qsort(ranked, (size_t)K, sizeof *ranked, by_prob_desc);
    free(p);
    return true;
}
