#include "train/bottleneck.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "nn/net.h"
#include "train/pipeline.h"

void nn_bottleneck_free(struct nn_bottleneck *b)
{
    if (!b) return;
    nn_free(b->pre);
    nn_free(b->aux);
    free(b->labels);
    free(b->ok);
    memset(b, 0, sizeof *b);
}

enum nn_status nn_bottleneck_build(const struct nn_model *m, const struct nn_heads *h, const char *data_dir,
                                   enum nn_split s, int batch, int threads, nn_bottleneck_progress_fn progress,
                                   void *user, struct nn_bottleneck *out)
{
    memset(out, 0, sizeof *out);
    struct nn_pipeline_options po;
    nn_pipeline_options_eval(&po);
    po.batch_size = batch;
    po.image_size = m->cfg.image_size;
    po.central_fraction = m->central_fraction;
    po.threads = threads;
    struct nn_pipeline *p;
    NN_TRY(nn_pipeline_open(data_dir, s, &po, &p));
    long n = nn_pipeline_examples(p);
    out->n = n;
    out->features = h->features;
    out->aux_floats = h->aux_floats;
    out->pre = nn_alloc((size_t)n * h->features * sizeof(float));
    out->aux = h->aux_floats ? nn_alloc((size_t)n * h->aux_floats * sizeof(float)) : NULL;
    out->labels = calloc((size_t)n, sizeof *out->labels);
    out->ok = calloc((size_t)n, 1);
    enum nn_status st = NN_OK;
    if (!out->pre || (h->aux_floats && !out->aux) || !out->labels || !out->ok)
        st = nn_fail(NN_ERR_NOMEM, "cannot allocate the bottleneck cache of %ld images (%.0f MB)", n,
                     (double)n * (h->features + h->aux_floats) * 4 / 1e6);
    struct nn_net net;
    memset(&net, 0, sizeof net);
    if (st == NN_OK) st = nn_net_init(&net, &m->cfg, (struct nn_params *)&m->params, batch, NULL);
    bool net_ok = st == NN_OK;
    long done = 0, total = nn_pipeline_batches_per_epoch(p);
    float *pooled = NULL;
    if (st == NN_OK && h->aux_floats) {
        pooled = nn_alloc((size_t)batch * h->aux_floats * sizeof(float));
        if (!pooled) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    }
    while (st == NN_OK) {
        const struct nn_batch *b;
        st = nn_pipeline_next(p, &b);
        if (st != NN_OK || !b) break;
        st = nn_net_forward(&net, b->images, b->n, false, false);
        if (st != NN_OK) break;
        const float *pre = nn_net_pre_logits(&net);
        if (h->aux_floats) nn_heads_pool_aux(h, nn_net_aux_input(&net), b->n, pooled);
        for (int i = 0; i < b->n; i++) {
            long e = b->examples[i];
            memcpy(out->pre + (size_t)e * h->features, pre + (size_t)i * h->features, h->features * sizeof(float));
            if (h->aux_floats)
                memcpy(out->aux + (size_t)e * h->aux_floats, pooled + (size_t)i * h->aux_floats,
                       h->aux_floats * sizeof(float));
            out->labels[e] = b->labels[i];
            out->ok[e] = 1;
        }
        if (progress) progress(user, ++done, total);
    }
    nn_free(pooled);
    if (net_ok) nn_net_free(&net);
    nn_pipeline_close(p);
    if (st != NN_OK) nn_bottleneck_free(out);
    return st;
}
