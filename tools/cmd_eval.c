/* nn eval: a model's accuracy on a split of a converted dataset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threads.h"
#include "io/json.h"
#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/evaluate.h"

static const char usage[] =
    "usage: nn eval MODEL --data DIR [--split validation|train] [--json] [--csv FILE] [--batch N] [--threads T] [-q]\n"
    "  Top-1, top-5, per-class precision and recall and the confusion matrix of MODEL on a split of a\n"
    "  converted dataset, with the model's eval transform (central crop, bilinear resize, [-1, 1]).\n"
    "  --json      print one JSON object instead of text\n"
    "  --csv FILE  also write the confusion matrix as CSV (rows: true class, columns: predicted; - for stdout)\n";

struct prog {
    struct cli_progress bar;
    bool quiet, started;
};

static void on_progress(void *user, long done, long total)
{
    struct prog *p = user;
    if (p->quiet) return;
    if (!p->started) {
        cli_progress_start(&p->bar, "evaluating", "batches");
        p->started = true;
    }
    if (done >= total) cli_progress_finish(&p->bar, done, total);
    else cli_progress_update(&p->bar, done, total);
}

static void print_text(const struct nn_model *m, const struct nn_eval *e, const char *split)
{
    int K = e->num_classes;
    printf("%s split: %ld images\ntop-1 %.4f\ntop-5 %.4f\n\n", split, e->count, nn_eval_top1(e), nn_eval_top5(e));
    int w = 5;
    for (int c = 0; c < K; c++) {
        int l = (int)strlen(nn_model_class_name(m, c));
        if (l > w) w = l;
    }
    if (w > 40) w = 40;
    printf("%-*s  precision  recall  support\n", w, "class");
    for (int c = 0; c < K; c++)
        printf("%-*.*s  %9.4f  %6.4f  %7ld\n", w, w, nn_model_class_name(m, c), nn_eval_precision(e, c),
               nn_eval_recall(e, c), nn_eval_support(e, c));
    if (K > 50) {
        printf("\n(confusion matrix of %d classes: use --csv or --json)\n", K);
        return;
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n%-*s", w, "");
    for (int c = 0; c < K; c++) printf(" %6d", c);
    printf("\n");
    for (int r = 0; r < K; r++) {
        printf("%-*.*s", w, w, nn_model_class_name(m, r));
        for (int c = 0; c < K; c++) printf(" %6ld", e->confusion[(size_t)r * K + c]);
        printf("\n");
    }
    printf("(columns are class ids:");
    for (int c = 0; c < K; c++) printf(" %d=%s", c, nn_model_class_name(m, c));
    printf(")\n");
}

static void print_json(const struct nn_model *m, const struct nn_eval *e, const char *split)
{
    int K = e->num_classes;
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{\"split\":", 9);
    nn_strbuf_json_string(&b, split);
    nn_strbuf_printf(&b, ",\"count\":%ld,\"top1\":", e->count);
    nn_strbuf_json_number(&b, nn_eval_top1(e));
    nn_strbuf_append(&b, ",\"top5\":", 8);
    nn_strbuf_json_number(&b, nn_eval_top5(e));
    nn_strbuf_append(&b, ",\"loss\":", 8);
    nn_strbuf_json_number(&b, nn_eval_loss(e));
    nn_strbuf_append(&b, ",\"classes\":[", 12);
    for (int c = 0; c < K; c++) {
        nn_strbuf_printf(&b, "%s{\"id\":%d,\"name\":", c ? "," : "", c);
        nn_strbuf_json_string(&b, nn_model_class_name(m, c));
        nn_strbuf_append(&b, ",\"precision\":", 13);
        nn_strbuf_json_number(&b, nn_eval_precision(e, c));
        nn_strbuf_append(&b, ",\"recall\":", 10);
        nn_strbuf_json_number(&b, nn_eval_recall(e, c));
        nn_strbuf_printf(&b, ",\"support\":%ld}", nn_eval_support(e, c));
    }
    nn_strbuf_append(&b, "],\"confusion\":[", 15);
    for (int r = 0; r < K; r++) {
        nn_strbuf_append(&b, r ? ",[" : "[", r ? 2 : 1);
        for (int c = 0; c < K; c++) nn_strbuf_printf(&b, "%s%ld", c ? "," : "", e->confusion[(size_t)r * K + c]);
        nn_strbuf_append(&b, "]", 1);
    }
    nn_strbuf_append(&b, "]}", 2);
    if (!b.failed) printf("%s\n", b.data);
    nn_strbuf_free(&b);
}

static void csv_field(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"') fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static int write_csv(const char *path, const struct nn_model *m, const struct nn_eval *e)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!fp) return cli_error("%s: cannot write the CSV file", path);
    int K = e->num_classes;
    fprintf(fp, "true\\predicted");
    for (int c = 0; c < K; c++) {
        fputc(',', fp);
        csv_field(fp, nn_model_class_name(m, c));
    }
    fputc('\n', fp);
    for (int r = 0; r < K; r++) {
        csv_field(fp, nn_model_class_name(m, r));
        for (int c = 0; c < K; c++) fprintf(fp, ",%ld", e->confusion[(size_t)r * K + c]);
        fputc('\n', fp);
    }
    bool ok = !ferror(fp);
    if (fp != stdout) ok = fclose(fp) == 0 && ok;
    return ok ? 0 : cli_error("%s: write failed", path);
}

int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL, *split_name = "validation", *csv = NULL, *v;
    bool json = false, quiet = false;
    int batch = 32, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return printf("%s", usage), 0;
        else if (cli_flag(argv, i, "--json")) json = true;
        else if (cli_flag(argv, i, "-q")) quiet = true;
        else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!v) return cli_usage(usage, "--data needs a directory");
            data = v;
        } else if (cli_opt(argc, argv, &i, "--split", &v)) {
            if (!v) return cli_usage(usage, "--split needs train or validation");
            split_name = v;
        } else if (cli_opt(argc, argv, &i, "--csv", &v)) {
            if (!v) return cli_usage(usage, "--csv needs a file name (or -)");
            csv = v;
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!cli_int(v, 1, 4096, &batch)) return cli_usage(usage, "--batch must be 1..4096");
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int(v, 1, 256, &threads)) return cli_usage(usage, "--threads must be 1..256");
        } else if (argv[i][0] == '-' && argv[i][1]) return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!model_path) model_path = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
    }
    if (!model_path || !data) return cli_usage(usage, "need MODEL and --data DIR");
    enum nn_split split;
    if (nn_split_parse(split_name, &split) != NN_OK) return cli_usage(usage, "--split: %s", nn_last_error());
    cli_log_setup(false);
    nn_threads_set(threads);
    struct nn_model *m;
    if (nn_model_load(model_path, &m) != NN_OK) return cli_fail();
    struct nn_eval e;
    int rc = 0;
    if (nn_eval_init(&e, m->cfg.num_classes) != NN_OK) {
        nn_model_free(m);
        return cli_fail();
    }
    struct prog prog = {.quiet = quiet || json};
    if (nn_evaluate_model(m, data, split, batch, threads, on_progress, &prog, &e) != NN_OK) rc = cli_fail();
    if (rc == 0) {
        if (json) print_json(m, &e, nn_split_name(split));
        else print_text(m, &e, nn_split_name(split));
        if (csv) rc = write_csv(csv, m, &e);
    }
    nn_eval_free(&e);
    nn_model_free(m);
    return rc;
}
