/* nn predict: classify photos with a model, printing the top classes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/threads.h"
#include "nn/model.h"
#include "tools/classify.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn predict MODEL IMAGE... [--top K] [--batch B] [--threads T]\n"
    "  Decodes each photo (JPEG or PNG), applies the model's eval transform (central crop,\n"
    "  bilinear resize, scale to [-1, 1]) and prints the K most likely classes (default 5).\n";

static void print_result(const struct nn_model *m, const char *path, const float *logits, int top_k,
                         struct classify_score *buf)
{
    int K = m->cfg.num_classes;
    if (!classify_rank(logits, K, buf)) return;
    printf("%s\n", path);
    for (int k = 0; k < top_k && k < K; k++) printf("  %.4f  %s\n", buf[k].p, nn_model_class_name(m, buf[k].id));
}

int cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL;
    int top_k = 5, batch = 1, threads = 0, nimages = 0;
    const char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return cli_error("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v = "";
        if (cli_flag(argv, i, "--help")) return free(images), printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "--top", &v)) {
            if (!cli_int(v, 1, 1000000, &top_k)) return free(images), cli_usage(usage, "--top needs a positive integer");
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!cli_int(v, 1, 4096, &batch)) return free(images), cli_usage(usage, "--batch must be 1..4096");
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int(v, 1, 256, &threads)) return free(images), cli_usage(usage, "--threads must be 1..256");
        } else if (argv[i][0] == '-') return free(images), cli_usage(usage, "unknown option %s", argv[i]);
        else if (!model_path) model_path = argv[i];
        else images[nimages++] = argv[i];
    }
    if (!model_path || nimages == 0) return free(images), cli_usage(usage, "need MODEL and at least one IMAGE");
    cli_log_setup(false);
    nn_threads_set(threads);
    if (batch > nimages) batch = nimages;

    int rc = 0;
    struct nn_model *m = NULL;
    struct nn_ctx *ctx = NULL;
    float *input = NULL, *logits = NULL;
    const char **names = calloc((size_t)batch, sizeof *names);
    struct classify_score *order = NULL;
    if (nn_model_load(model_path, &m) != NN_OK || nn_ctx_new(m, batch, &ctx) != NN_OK) {
        rc = cli_fail();
        goto out;
    }
    int S = m->cfg.image_size, K = m->cfg.num_classes;
    size_t per_image = (size_t)S * S * 3;
    input = nn_alloc((size_t)batch * per_image * sizeof(float));
    logits = malloc((size_t)batch * K * sizeof(float));
    order = malloc((size_t)K * sizeof *order);
    if (!input || !logits || !order || !names) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int first = 0; first < nimages;) {
        int n = 0;
        /* fill a batch with the photos that decode; report the others */
        while (n < batch && first < nimages) {
            const char *path = images[first++];
            if (classify_input_from_file(m, path, input + (size_t)n * per_image) != NN_OK) {
                rc = cli_fail();
                continue;
            }
            names[n++] = path;
        }
        if (n == 0) continue;
        if (nn_infer(ctx, input, n, logits) != NN_OK) {
            rc = cli_fail();
            goto out;
        }
        for (int k = 0; k < n; k++) print_result(m, names[k], logits + (size_t)k * K, top_k, order);
    }
out:
    free(order);
    free(logits);
    nn_free(input);
    free(names);
    nn_ctx_free(ctx);
    nn_model_free(m);
    free(images);
    return rc;
}
