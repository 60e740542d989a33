/* The public inference context: one per thread, over a shared model. */
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "nn/net.h"

struct nn_ctx {
    const struct nn_model *model;
    struct nn_net net;
};

enum nn_status nn_ctx_new(const struct nn_model *m, int max_batch, struct nn_ctx **out)
{
    if (!m || !out) return nn_fail(NN_ERR_ARG, "nn_ctx_new: NULL argument");
    *out = NULL;
    struct nn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return nn_fail(NN_ERR_NOMEM, "out of memory");
    ctx->model = m;
    /* An inference net never writes to the parameters: the cast is safe. */
    enum nn_status st = nn_net_init(&ctx->net, &m->cfg, (struct nn_params *)&m->params, max_batch, NULL);
    if (st != NN_OK) {
        free(ctx);
        return st;
    }
    nn_net_use_lowp(&ctx->net, m->lowp);
    *out = ctx;
    return NN_OK;
}

const struct nn_model *nn_ctx_model(const struct nn_ctx *ctx) { return ctx ? ctx->model : NULL; }

void nn_ctx_free(struct nn_ctx *ctx)
{
    if (!ctx) return;
    nn_net_free(&ctx->net);
    free(ctx);
}

enum nn_status nn_infer(struct nn_ctx *ctx, const float *images, int n, float *logits)
{
    if (!ctx || !images || !logits) return nn_fail(NN_ERR_ARG, "nn_infer: NULL argument");
    NN_TRY(nn_net_forward(&ctx->net, images, n, false, false));
    memcpy(logits, nn_net_logits(&ctx->net), (size_t)n * ctx->model->cfg.num_classes * sizeof(float));
    return NN_OK;
}
