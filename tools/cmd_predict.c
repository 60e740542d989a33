/* nn predict: classify photos with a model, printing the top classes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/threads.h"
#include "io/json.h"
#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn predict MODEL IMAGE... [--top K] [--json] [--batch B] [--threads T]\n"
    "  Decodes each photo (JPEG or PNG), applies the model's eval transform (central crop,\n"
    "  bilinear resize, scale to [-1, 1]) and prints the K most likely classes (default 5).\n"
    "  --json: one JSON object per line and image: {\"image\", \"predictions\": [{\"class\", \"id\",\n"
    "  \"probability\"}...]}, or {\"image\", \"error\"} for a photo that cannot be read. Always valid\n"
    "  JSON: a probability that is not a number is null, bytes of a name that are not UTF-8 are U+FFFD.\n"
    "  The exit status is 1 if any photo failed; the others are still classified.\n";

/* One JSON line per image on stdout; msg != NULL reports a failure. */
static void print_json(const struct nn_model *m, const char *path, const struct nn_class_score *top, int k,
                       const char *msg)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{\"image\":", 9);
    nn_strbuf_json_string(&b, path);
    if (msg) {
        nn_strbuf_append(&b, ",\"error\":", 9);
        nn_strbuf_json_string(&b, msg);
    } else {
        nn_strbuf_append(&b, ",\"predictions\":[", 16);
        for (int i = 0; i < k; i++) {
            nn_strbuf_append(&b, i ? ",{\"class\":" : "{\"class\":", i ? 10 : 9);
            nn_strbuf_json_string(&b, nn_model_class_name(m, top[i].id));
            /* a non-finite probability (a model of NaNs) is null: JSON has no NaN */
            nn_strbuf_printf(&b, ",\"id\":%d,\"probability\":", top[i].id);
            if (isfinite(top[i].probability)) nn_strbuf_printf(&b, "%.6g}", top[i].probability);
            else nn_strbuf_append(&b, "null}", 5);
        }
        nn_strbuf_append(&b, "]", 1);
    }
    nn_strbuf_append(&b, "}", 1);
    if (!b.failed) printf("%s\n", b.data);
    nn_strbuf_free(&b);
}

static void print_result(const struct nn_model *m, const char *path, const float *logits, int top_k,
                         struct nn_class_score *buf, bool json)
{
    int K = m->cfg.num_classes;
    if (nn_rank_classes(logits, K, buf) != NN_OK) return;
    if (json) {
        print_json(m, path, buf, top_k < K ? top_k : K, NULL);
        return;
    }
    printf("%s\n", path);
    for (int k = 0; k < top_k && k < K; k++) printf("  %.4f  %s\n", buf[k].probability, nn_model_class_name(m, buf[k].id));
}

int cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL;
    int top_k = 5, batch = 1, threads = 0, nimages = 0;
    bool json = false;
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
        } else if (cli_flag(argv, i, "--json")) json = true;
        else if (argv[i][0] == '-') return free(images), cli_usage(usage, "unknown option %s", argv[i]);
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
    struct nn_class_score *order = NULL;
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
            if (nn_preprocess_file(m, path, input + (size_t)n * per_image) != NN_OK) {
                rc = cli_fail();
                if (json) print_json(m, path, NULL, 0, nn_last_error());
                continue;
            }
            names[n++] = path;
        }
        if (n == 0) continue;
        if (nn_infer(ctx, input, n, logits) != NN_OK) {
            rc = cli_fail();
            goto out;
        }
        for (int k = 0; k < n; k++) print_result(m, names[k], logits + (size_t)k * K, top_k, order, json);
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
