/* nn quantize: post-training int8 quantisation calibrated on real photos. */
#include <stdio.h>
#include <string.h>

#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/quantize.h"

static const char usage[] =
    "usage: nn quantize MODEL --calibrate DATA -o INT8 [--images N] [--split train|validation]\n"
    "                   [--method mse|percentile|max] [--batch-size B] [--threads T] [-q]\n"
    "  Writes an int8 inference model: MODEL (float32) frozen, every conv's weights quantised to int8\n"
    "  per output channel (symmetric), and each conv's input to uint8 with a scale calibrated on N\n"
    "  photos of the converted dataset DATA (default: 500 of its training split, eval transform).\n"
    "  The first conv (on the image) stays bf16. nn predict, nn eval, nn serve and nn info take the\n"
    "  result as they take any model. --method: how each input's clipping range is chosen from its\n"
    "  histogram (mse: least expected squared error, the default; percentile: 99.99th; max: none).\n";

struct prog {
    struct cli_progress bar;
    bool quiet, started;
    long done;          /* images calibrated on */
};

static void on_progress(void *user, long done, long total)
{
    struct prog *p = user;
    p->done = done;
    if (p->quiet) return;
    if (!p->started) {
        cli_progress_start(&p->bar, "calibrating", "images");
        p->started = true;
    }
    if (done >= total) cli_progress_finish(&p->bar, done, total);
    else cli_progress_update(&p->bar, done, total);
}

int cmd_quantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *data = NULL, *v;
    struct nn_quantize_options opt;
    nn_quantize_options_default(&opt);
    struct prog prog = {0};
    for (int i = 1; i < argc; i++) {
        int n;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return printf("%s", usage), 0;
        else if (cli_flag(argv, i, "-q") || cli_flag(argv, i, "--quiet")) prog.quiet = true;
        else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return cli_usage(usage, "-o needs a file name");
            out = v;
        } else if (cli_opt(argc, argv, &i, "--calibrate", &v)) {
            if (!v) return cli_usage(usage, "--calibrate needs a dataset directory");
            data = v;
        } else if (cli_opt(argc, argv, &i, "--images", &v)) {
            if (!v || !cli_int(v, 1, 10000000, &n)) return cli_usage(usage, "--images takes a count >= 1");
            opt.images = n;
        } else if (cli_opt(argc, argv, &i, "--batch-size", &v) || cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!v || !cli_int(v, 1, 1024, &n)) return cli_usage(usage, "--batch-size takes 1 to 1024");
            opt.batch = n;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!v || !cli_int(v, 0, 1024, &n)) return cli_usage(usage, "--threads takes 0 to 1024");
            opt.threads = n;
        } else if (cli_opt(argc, argv, &i, "--split", &v)) {
            if (!v || nn_split_parse(v, &opt.split) != NN_OK) return cli_usage(usage, "--split takes train or validation");
        } else if (cli_opt(argc, argv, &i, "--method", &v)) {
            if (!v || !nn_calib_method_parse(v, &opt.method))
                return cli_usage(usage, "--method takes mse, percentile or max");
        } else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!in) in = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
    }
    if (!in || !out || !data) return cli_usage(usage, "need MODEL, --calibrate DATA and -o INT8");
    cli_log_setup(false);
    struct nn_model *m = NULL, *q = NULL;
    if (nn_model_load(in, &m) != NN_OK) return cli_fail();
    int rc = 0;
    double t0 = cli_now();
    if (nn_quantize_model(m, data, &opt, on_progress, &prog, &q) != NN_OK || nn_model_save(q, out) != NN_OK)
        rc = cli_fail();
    if (rc == 0 && !prog.quiet)
        printf("%s: int8, %d classes, calibrated (%s) on %ld images of %s in %.1f s; %.1f MB (from %.1f MB)\n", out,
               q->cfg.num_classes, nn_calib_method_name(opt.method),
               prog.done, data, cli_now() - t0, cli_file_size(out) / 1e6, cli_file_size(in) / 1e6);
    nn_model_free(q);
    nn_model_free(m);
    return rc;
}
