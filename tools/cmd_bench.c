/* nn bench: speed of inference and training on random weights and inputs,
 * with the machine's practical peak (a large square sgemm) measured in the
 * same run, so every number is also a fraction of what this CPU can do now.
 * Results are medians: these machines are shared and noisy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "nn/calibrate.h"
#include "nn/model.h"
#include "nn/net.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/heads.h"
#include "train/optimizer.h"

static const char usage[] =
    "usage: nn bench infer [--batch B] [--size S] [--threads T] [--runs N] [--precision f32|bf16|int8] [--profile]\n"
    "       nn bench train [--batch B] [--size S] [--threads T] [--runs N] [--trainable-scopes P,...]\n"
    "                      [--profile]\n"
    "       nn bench heads [--batch B] [--size S] [--threads T] [--runs N] [--trainable-scopes P,...]\n"
    "       nn bench gemm [--threads T] [--runs N] [--cpu-time]\n"
    "  Random weights and inputs; one warm-up, then the median of N runs (default 5).\n"
    "  train: one full step (forward, backward, RMSProp update), all layers unless\n"
    "  --trainable-scopes limits them.\n"
    "  heads: stage-1 training with the bottleneck cache (default scopes fc,AuxLogits): the\n"
    "  first epoch's cost per image (the frozen trunk's forward that fills the cache, plus\n"
    "  the head step) and every later epoch's (the head step from the cache).\n"
    "  infer --precision: the model exported to bf16 (nn export --precision bf16) or quantised to\n"
    "  int8 (nn quantize, calibrated here on the random input batch).\n"
    "  gemm: GFLOP/s of float32, bf16 and int8 GEMM on a large square and Inception's conv shapes.\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of an n x n x n sgemm: the practical peak of BLAS here, now. */
static double sgemm_peak(int n)
{
    float *a = nn_alloc((size_t)n * n * sizeof(float)), *b = nn_alloc((size_t)n * n * sizeof(float));
    float *c = nn_alloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) {
        nn_free(a);
        nn_free(b);
        nn_free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1.0f / (float)(1 + i % 7);
    double t[5];
    nn_gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < 5; r++) {
        double t0 = cli_now();
        nn_gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = cli_now() - t0;
    }
    nn_free(a);
    nn_free(b);
    nn_free(c);
    return 2.0 * n * n * (double)n / median(t, 5) / 1e9;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* Per-layer and per-kind profile, sorted by time. */
struct prof_row {
    char name[96];
    double seconds, fwd;
};

static int by_time_desc(const void *a, const void *b)
{
    const struct prof_row *x = a, *y = b;
    return (x->seconds < y->seconds) - (x->seconds > y->seconds);
}

static void node_kind(const struct nn_node *n, char *buf, size_t len)
{
    switch (n->kind) {
    case NN_NODE_CONV:
        snprintf(buf, len, "conv %dx%d/%d", n->conv.kh, n->conv.kw, n->conv.stride);
        break;
    case NN_NODE_MAXPOOL: snprintf(buf, len, "maxpool"); break;
    case NN_NODE_AVGPOOL: snprintf(buf, len, "avgpool"); break;
    case NN_NODE_CONCAT: snprintf(buf, len, "concat"); break;
    case NN_NODE_GAP: snprintf(buf, len, "global pool"); break;
    case NN_NODE_DROPOUT: snprintf(buf, len, "dropout"); break;
    case NN_NODE_FC: snprintf(buf, len, "fc"); break;
    }
}

static void print_profile(const struct nn_net *net, int runs)
{
    int T = net->g.nnodes;
    struct prof_row *rows = calloc((size_t)T, sizeof *rows), *kinds = calloc((size_t)T, sizeof *kinds);
    if (!rows || !kinds) {
        free(rows);
        free(kinds);
        return;
    }
    int nkinds = 0;
    double total = 0;
    for (int i = 0; i < T; i++) {
        double s = (net->prof_fwd[i] + net->prof_bwd[i]) / runs;
        total += s;
        snprintf(rows[i].name, sizeof rows[i].name, "%s", net->g.nodes[i].name);
        rows[i].seconds = s;
        rows[i].fwd = net->prof_fwd[i] / runs;
        char kind[64];
        node_kind(&net->g.nodes[i], kind, sizeof kind);
        int k = 0;
        while (k < nkinds && strcmp(kinds[k].name, kind)) k++;
        if (k == nkinds) snprintf(kinds[nkinds++].name, sizeof kinds[0].name, "%s", kind);
        kinds[k].seconds += s;
        kinds[k].fwd += net->prof_fwd[i] / runs;
    }
    qsort(rows, (size_t)T, sizeof *rows, by_time_desc);
    qsort(kinds, (size_t)nkinds, sizeof *kinds, by_time_desc);
    printf("profile by op kind (ms per batch: total, forward, backward; share of the total):\n");
    for (int k = 0; k < nkinds; k++)
        printf("  %-20s %9.2f %9.2f %9.2f  %5.1f%%\n", kinds[k].name, kinds[k].seconds * 1e3, kinds[k].fwd * 1e3,
               (kinds[k].seconds - kinds[k].fwd) * 1e3, 100 * kinds[k].seconds / total);
    printf("slowest layers:\n");
    for (int i = 0; i < T && i < 25; i++)
        printf("  %-40s %9.2f %9.2f %9.2f  %5.1f%%\n", rows[i].name, rows[i].seconds * 1e3, rows[i].fwd * 1e3,
               (rows[i].seconds - rows[i].fwd) * 1e3, 100 * rows[i].seconds / total);
    free(rows);
    free(kinds);
}

static int bench_heads(struct nn_model *m, const struct nn_config *cfg, const bool *trainable, int batch, int runs,
                       const float *images, const int32_t *labels, int threads)
{
    struct nn_net net;
    struct nn_heads heads;
    struct nn_optimizer opt = {0};
    struct nn_optimizer_options oo;
    nn_optimizer_options_default(&oo);
    if (nn_net_init(&net, cfg, &m->params, batch, NULL) != NN_OK) return cli_fail();
    if (nn_heads_init(&heads, cfg, &m->params, batch, trainable) != NN_OK ||
        nn_optimizer_init(&opt, &oo, &m->params, trainable) != NN_OK) {
        nn_net_free(&net);
        nn_heads_free(&heads);
        return cli_fail();
    }
    float *pre = nn_alloc((size_t)batch * heads.features * sizeof(float));
    float *aux = heads.aux_floats ? nn_alloc((size_t)batch * heads.aux_floats * sizeof(float)) : NULL;
    double *fill = malloc((size_t)runs * sizeof *fill), *step = malloc((size_t)runs * sizeof *step);
    int rc = 1;
    if (!pre || (heads.aux_floats && !aux) || !fill || !step) {
        cli_error("out of memory");
        goto out;
    }
    for (int r = -1; r < runs; r++) {
        /* first epoch: the trunk fills the cache */
        double t0 = cli_now();
        if (nn_net_forward(&net, images, batch, false, false) != NN_OK) goto fail;
        memcpy(pre, nn_net_pre_logits(&net), (size_t)batch * heads.features * sizeof(float));
        if (aux) nn_heads_pool_aux(&heads, nn_net_aux_input(&net), batch, aux);
        double t1 = cli_now();
        /* every epoch: one head step from the cache */
        double loss;
        nn_heads_zero_grads(&heads);
        if (nn_heads_forward(&heads, pre, aux, batch, true, true) != NN_OK) goto fail;
        if (nn_heads_backward(&heads, labels, 0.0f, 0.4f, &loss) != NN_OK) goto fail;
        nn_optimizer_step(&opt, &m->params, heads.grads, 0.01f);
        double t2 = cli_now();
        if (r >= 0) {
            fill[r] = t1 - t0;
            step[r] = t2 - t1;
        }
    }
    double step_ms = median(step, runs) * 1e3 / batch, first_ms = median(fill, runs) * 1e3 / batch + step_ms;
    printf("nn heads: batch %d, size %d, %d threads; trainable: the heads only, trunk cached\n", batch,
           cfg->image_size, threads);
    printf("  median of %d: first epoch %.2f ms per image (trunk forward + head step), later epochs %.3f ms per "
           "image (head step)\n",
           runs, first_ms, step_ms);
    printf("nn heads batch=%d size=%d threads=%d ms_per_image_first_epoch=%.3f ms_per_image=%.4f peak_rss_mib=%.0f\n",
           batch, cfg->image_size, threads, first_ms, step_ms, peak_rss_mib());
    rc = 0;
    goto out;
fail:
    rc = cli_fail();
out:
    nn_free(pre);
    nn_free(aux);
    free(fill);
    free(step);
    nn_optimizer_free(&opt);
    nn_heads_free(&heads);
    nn_net_free(&net);
    return rc;
}

/* The bench model in bf16, or in int8 calibrated on the bench's own input. */
static enum nn_status to_precision(const struct nn_model *m, enum nn_precision precision, const float *images, int n,
                                   struct nn_model **out)
{
    if (precision == NN_PRECISION_BF16) return nn_model_to_bf16(m, out);
    struct nn_calibrator *c;
    NN_TRY(nn_calibrator_new(m, n, NN_CALIB_MSE, &c));
    enum nn_status st = nn_calibrator_add(c, images, n);
    if (st == NN_OK) st = nn_calibrator_finish(c, out);
    nn_calibrator_free(c);
    return st;
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "gemm")) return cmd_bench_gemm(argc, argv);
    if (argc < 2 || (strcmp(argv[1], "infer") && strcmp(argv[1], "train") && strcmp(argv[1], "heads")))
        return argc >= 2 && !strcmp(argv[1], "--help") ? (printf("%s", usage), 0) : cli_usage(usage, NULL);
    bool heads = !strcmp(argv[1], "heads"), train = heads || !strcmp(argv[1], "train"), profile = false;
    int batch = train ? 32 : 1, size = 299, threads = 0, runs = 5;
    const char *scopes_arg = NULL;
    enum nn_precision precision = NN_PRECISION_F32;
    for (int i = 2; i < argc; i++) {
        const char *v = "";
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!cli_int(v, 1, 4096, &batch)) return cli_usage(usage, "--batch must be 1..4096");
        } else if (cli_opt(argc, argv, &i, "--size", &v)) {
            if (!cli_int(v, 75, 2048, &size)) return cli_usage(usage, "--size must be 75..2048");
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int(v, 1, 256, &threads)) return cli_usage(usage, "--threads must be 1..256");
        } else if (cli_opt(argc, argv, &i, "--runs", &v)) {
            if (!cli_int(v, 1, 1000, &runs)) return cli_usage(usage, "--runs must be 1..1000");
        } else if (cli_opt(argc, argv, &i, "--trainable-scopes", &v)) scopes_arg = v;
        else if (cli_flag(argv, i, "--profile")) profile = true;
        else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (!v) break;
            if (!strcmp(v, "bf16")) precision = NN_PRECISION_BF16;
            else if (!strcmp(v, "int8")) precision = NN_PRECISION_INT8;
            else if (strcmp(v, "f32")) return cli_usage(usage, "--precision takes f32, bf16 or int8");
        } else return cli_usage(usage, "unknown argument %s", argv[i]);
        if (!v) return cli_usage(usage, "%s needs a value", argv[i]);
    }
    if (!train && scopes_arg) return cli_usage(usage, "--trainable-scopes is for train and heads");
    if (train && precision != NN_PRECISION_F32) return cli_usage(usage, "--precision is for infer");
    if (heads && !scopes_arg) scopes_arg = "fc,AuxLogits";
    cli_log_setup(false);
    nn_threads_set(threads);
    threads = nn_threads_get();

    struct nn_config cfg = nn_config_default(1000);
    cfg.image_size = size;
    cfg.aux_logits = train && size >= 299; /* as the PyTorch baseline does */
    struct nn_model *m = NULL;
    if (nn_model_new(&cfg, NULL, 1, &m) != NN_OK) return cli_fail();
    bool *trainable = NULL;
    struct nn_optimizer opt = {0};
    int rc = 1;
    float *images = nn_alloc((size_t)batch * size * size * 3 * sizeof(float));
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    double *times = malloc((size_t)runs * sizeof *times);
    struct nn_net net;
    bool have_net = false;
    if (!images || !labels || !times) goto oom;
    struct nn_rng rng;
    nn_rng_seed(&rng, 7, 1);
    for (size_t i = 0; i < (size_t)batch * size * size * 3; i++) images[i] = 2 * nn_rng_uniform(&rng) - 1;
    for (int i = 0; i < batch; i++) labels[i] = (int32_t)nn_rng_below(&rng, 1000);
    if (precision != NN_PRECISION_F32) {
        struct nn_model *low = NULL;
        if (to_precision(m, precision, images, batch, &low) != NN_OK) goto fail;
        nn_model_free(m);
        m = low;
        cfg = m->cfg;
    }
    if (train) {
        if (!(trainable = calloc((size_t)m->params.count, sizeof *trainable))) goto oom;
        if (!scopes_arg) memset(trainable, 1, (size_t)m->params.count * sizeof *trainable);
        else if (nn_params_select(&m->params, scopes_arg, trainable) != NN_OK) goto fail;
        struct nn_optimizer_options oo;
        nn_optimizer_options_default(&oo);
        if (heads) {
            rc = bench_heads(m, &cfg, trainable, batch, runs, images, labels, threads);
            goto out;
        }
        if (nn_optimizer_init(&opt, &oo, &m->params, trainable) != NN_OK) goto fail;
    }
    if (nn_net_init(&net, &cfg, &m->params, batch, trainable) != NN_OK) goto fail;
    have_net = true;
    nn_net_use_lowp(&net, m->lowp);

    for (int r = -1; r < runs; r++) {
        if (r == 0 && profile && nn_net_enable_profile(&net) != NN_OK) goto fail;
        double t0 = cli_now();
        if (train) {
            double loss;
            nn_net_zero_grads(&net);
            if (nn_net_forward(&net, images, batch, true, true) != NN_OK) goto fail;
            if (nn_net_backward(&net, labels, 0.0f, 0.4f, &loss) != NN_OK) goto fail;
            nn_optimizer_step(&opt, &m->params, net.grads, 0.01f);
        } else if (nn_net_forward(&net, images, batch, false, false) != NN_OK) {
            goto fail;
        }
        if (r >= 0) times[r] = cli_now() - t0;
    }
    double macs = nn_graph_macs_per_image(&net.g);
    double per_batch = median(times, runs);
    double ms = per_batch * 1e3 / batch;
    /* a training step is forward + two backward GEMMs per layer: about 3x the forward */
    double flops = 2 * macs * batch * (train ? 3 : 1);
    double gflops = flops / per_batch / 1e9;
    double peak = sgemm_peak(2048);
    printf("nn %s: batch %d, size %d, %d threads, simd %s, precision %s%s%s; %.2f G multiply-adds per image forward\n",
           argv[1], batch, size, threads, nn_simd_name(nn_simd_level()), nn_precision_name(precision),
           precision == NN_PRECISION_F32 ? "" : " with ",
           precision == NN_PRECISION_F32 ? "" : nn_gemm_lowp_kernel(precision == NN_PRECISION_INT8 ? NN_LOWP_INT8 : NN_LOWP_BF16),
           macs / 1e9);
    printf("  median of %d: %.2f ms per image (%.1f ms per batch); %.1f GFLOP/s = %.0f%% of sgemm peak %.1f GFLOP/s\n",
           runs, ms, per_batch * 1e3, gflops, 100 * gflops / peak, peak);
    printf("  planned memory %.0f MiB, peak resident %.0f MiB\n", nn_net_memory(&net) / 1048576.0, peak_rss_mib());
    printf("nn %s batch=%d size=%d threads=%d precision=%s ms_per_image=%.2f peak_rss_mib=%.0f gflops=%.1f "
           "sgemm_gflops=%.1f\n",
           train ? "train" : "infer", batch, size, threads, nn_precision_name(precision), ms, peak_rss_mib(), gflops,
           peak);
    if (profile) print_profile(&net, runs);
    rc = 0;
    goto out;
oom:
    nn_fail(NN_ERR_NOMEM, "out of memory");
fail:
    rc = cli_fail();
out:
    if (have_net) nn_net_free(&net);
    nn_optimizer_free(&opt);
    free(trainable);
    nn_free(images);
    free(labels);
    free(times);
    nn_model_free(m);
    return rc;
}
