/* nn forward: runs the network on a NumPy batch, for checking nn against
 * other implementations. Inputs and outputs follow NumPy's NCHW convention;
 * gradients are written in the parameters' PyTorch layouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "io/npy.h"
#include "nn/model.h"
#include "nn/net.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn forward MODEL --input X.npy --output LOGITS.npy\n"
    "       nn forward MODEL --input X.npy --train --labels L.npy --output LOGITS.npy\n"
    "                  [--aux AUX.npy] [--loss LOSS.npy] [--grads DIR]\n"
    "  X.npy: float32 [N, 3, S, S] already preprocessed to [-1, 1]; L.npy: int32 [N].\n"
    "  --train runs one training-mode step with dropout off (batch statistics, loss =\n"
    "  cross-entropy + 0.4 x aux cross-entropy) and writes DIR/grad_<name>.npy per parameter.\n";

static enum nn_status write_f32(const char *path, const float *data, int64_t d0, int64_t d1)
{
    int64_t shape[2] = {d0, d1};
    return nn_npy_write(path, NN_DTYPE_F32, shape, d1 ? 2 : 1, data);
}

static enum nn_status write_grads(const struct nn_net *net, const struct nn_params *params, const char *dir)
{
    float *tmp = NULL;
    size_t cap = 0;
    enum nn_status st = NN_OK;
    for (int i = 0; st == NN_OK && i < params->count; i++) {
        const struct nn_param *p = &params->items[i];
        if (!nn_param_learned(p)) continue;
        if (p->count > cap) {
            nn_free(tmp);
            cap = p->count;
            if (!(tmp = nn_alloc(cap * sizeof(float)))) return nn_fail(NN_ERR_NOMEM, "out of memory");
        }
        nn_param_to_torch(p, net->grads + p->offset, tmp);
        int shape[4];
        int64_t shape64[4];
        int ndim = nn_param_torch_shape(p, shape);
        for (int d = 0; d < ndim; d++) shape64[d] = shape[d];
        char path[4096];
        snprintf(path, sizeof path, "%s/grad_%s.npy", dir, p->name);
        st = nn_npy_write(path, NN_DTYPE_F32, shape64, ndim, tmp);
    }
    nn_free(tmp);
    return st;
}

int cmd_forward(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *output = NULL, *labels_path = NULL, *aux_path = NULL;
    const char *loss_path = NULL, *grads_dir = NULL;
    bool train = false;
    for (int i = 1; i < argc; i++) {
        const char *v = "";
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "--input", &v)) input = v;
        else if (cli_opt(argc, argv, &i, "--output", &v) || cli_opt(argc, argv, &i, "-o", &v)) output = v;
        else if (cli_opt(argc, argv, &i, "--labels", &v)) labels_path = v;
        else if (cli_opt(argc, argv, &i, "--aux", &v)) aux_path = v;
        else if (cli_opt(argc, argv, &i, "--loss", &v)) loss_path = v;
        else if (cli_opt(argc, argv, &i, "--grads", &v)) grads_dir = v;
        else if (cli_flag(argv, i, "--train")) train = true;
        else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!model_path) model_path = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
        if (!v) return cli_usage(usage, "%s needs a value", argv[i]);
    }
    if (!model_path || !input || !output) return cli_usage(usage, "need MODEL, --input and --output");
    if (train && !labels_path) return cli_usage(usage, "--train needs --labels");
    if (!train && (labels_path || aux_path || loss_path || grads_dir))
        return cli_usage(usage, "--labels, --aux, --loss and --grads need --train");

    int rc = 1;
    struct nn_model *m = NULL;
    struct nn_npy x = {0}, labels = {0};
    float *nhwc = NULL;
    bool *trainable = NULL;
    struct nn_net net;
    bool have_net = false;
    if (nn_model_load(model_path, &m) != NN_OK || nn_npy_read(input, &x) != NN_OK) goto fail;
    if (x.dtype != NN_DTYPE_F32 || x.ndim != 4 || x.shape[1] != 3 || x.shape[2] != x.shape[3] || x.shape[2] < 75) {
        rc = cli_error("%s: expected float32 [N, 3, S, S] with S >= 75", input);
        goto out;
    }
    int N = (int)x.shape[0], S = (int)x.shape[2];
    if (train) {
        if (nn_npy_read(labels_path, &labels) != NN_OK) goto fail;
        if (labels.dtype != NN_DTYPE_I32 || labels.count != N) {
            rc = cli_error("%s: expected int32 [%d] labels", labels_path, N);
            goto out;
        }
    }
    nhwc = nn_alloc((size_t)x.count * sizeof(float));
    if (!nhwc) {
        rc = cli_error("out of memory");
        goto out;
    }
    const float *src = x.data;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < S * S; p++) nhwc[((size_t)n * S * S + p) * 3 + c] = src[((size_t)n * 3 + c) * S * S + p];
    struct nn_config cfg = m->cfg;
    cfg.image_size = S;
    if (train) {
        trainable = malloc((size_t)m->params.count);
        if (!trainable) goto fail;
        memset(trainable, 1, (size_t)m->params.count);
    }
    if (nn_net_init(&net, &cfg, &m->params, N, trainable) != NN_OK) goto fail;
    have_net = true;
    nn_net_use_lowp(&net, m->lowp);
    int K = cfg.num_classes;
    if (!train) {
        if (nn_net_forward(&net, nhwc, N, false, false) != NN_OK) goto fail;
        if (write_f32(output, nn_net_logits(&net), N, K) != NN_OK) goto fail;
        rc = 0;
        goto out;
    }
    nn_net_zero_grads(&net);
    double loss;
    if (nn_net_forward(&net, nhwc, N, true, false) != NN_OK) goto fail;
    if (nn_net_backward(&net, labels.data, 0.0f, 0.4f, &loss) != NN_OK) goto fail;
    float loss32 = (float)loss;
    if (write_f32(output, nn_net_logits(&net), N, K) != NN_OK) goto fail;
    if (aux_path) {
        if (!nn_net_aux_logits(&net)) {
            rc = cli_error("%s has no aux head: --aux cannot be written", model_path);
            goto out;
        }
        if (write_f32(aux_path, nn_net_aux_logits(&net), N, K) != NN_OK) goto fail;
    }
    if (loss_path && write_f32(loss_path, &loss32, 1, 0) != NN_OK) goto fail;
    if (grads_dir && write_grads(&net, &m->params, grads_dir) != NN_OK) goto fail;
    fprintf(stderr, "nn: loss %.8f\n", loss);
    rc = 0;
    goto out;
fail:
    rc = cli_fail();
out:
    if (have_net) nn_net_free(&net);
    free(trainable);
    nn_free(nhwc);
    nn_npy_free(&x);
    nn_npy_free(&labels);
    nn_model_free(m);
    return rc;
}
