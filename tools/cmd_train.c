/* nn train: one training run on a converted dataset. */
#include <stdio.h>
#include <string.h>

#include "io/json.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/train_cli.h"

static const char usage_head[] =
    "usage: nn train --data DIR --out RUN_DIR [--init-from MODEL | --resume] [options]\n"
    "  --data DIR                a converted dataset (nn convert)\n"
    "  --out RUN_DIR             where checkpoints, metrics.jsonl and final.nnm go (docs/training.md)\n"
    "  --init-from MODEL         start weights; a head whose class count differs from the dataset's is\n"
    "                            initialised fresh (and the tool says so). Default: fresh weights\n"
    "  --resume                  continue RUN_DIR exactly from its newest usable checkpoint, with the run's\n"
    "                            own options (only the step budget, evaluation, checkpointing and threads\n"
    "                            may be changed)\n"
    "  -q                        no progress display\n";

static int print_usage(FILE *fp)
{
    fprintf(fp, "%s%s%s", usage_head, train_cli_run_options_help, train_cli_options_help);
    return fp == stdout ? 0 : 2;
}

int cmd_train(int argc, char **argv)
{
    const char *run_dir = NULL, *data = NULL, *init_from = NULL, *v = NULL;
    bool resume = false, quiet = false;
    /* pass 1: where the run is, and whether it is resumed */
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return print_usage(stdout);
        if (cli_opt(argc, argv, &i, "--out", &v)) run_dir = v;
        else if (cli_flag(argv, i, "--resume")) resume = true;
    }
    if (!run_dir) {
        fprintf(stderr, "nn: train needs --out RUN_DIR\n");
        return print_usage(stderr);
    }
    struct nn_train_options o;
    nn_train_options_default(&o);
    struct nn_json *saved = NULL;
    if (resume) {
        /* the run's own options are the base; flags given now override them
         * and the trainer refuses the ones that would change the run */
        if (nn_train_options_load(run_dir, &o, &saved) != NN_OK) return cli_fail();
        o.init_from = NULL;
    }
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        int r = train_cli_option(argc, argv, &i, &o);
        if (r < 0) rc = 2;
        if (r) continue;
        if (cli_opt(argc, argv, &i, "--out", &v)) continue;
        if (cli_flag(argv, i, "--resume")) continue;
        if (cli_flag(argv, i, "-q")) quiet = true;
        else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!v) rc = cli_usage(usage_head, "--data needs a directory");
            data = v;
        } else if (cli_opt(argc, argv, &i, "--init-from", &v)) {
            if (!v) rc = cli_usage(usage_head, "--init-from needs a model file");
            init_from = v;
        } else {
            rc = cli_usage(usage_head, "unknown argument %s", argv[i]);
        }
    }
    if (rc) {
        nn_json_free(saved);
        return rc;
    }
    if (data) o.data_dir = data;
    o.init_from = init_from;
    o.run_dir = run_dir;
    o.resume = resume;
    if (!o.data_dir) {
        nn_json_free(saved);
        return cli_usage(usage_head, "train needs --data DIR");
    }

    struct train_display disp;
    train_display_init(&disp, quiet, NULL);
    if (resume) fprintf(stderr, "nn: resuming %s\n", run_dir);
    else fprintf(stderr, "nn: new run in %s (%s)\n", run_dir, init_from ? init_from : "fresh weights");
    o.cancel = train_cli_catch_signals();
    struct nn_train_result res;
    enum nn_status st = nn_train(&o, train_display_progress, &disp, &res);
    train_display_done(&disp);
    nn_json_free(saved);
    if (st != NN_OK) return train_cli_fail(st);
    train_print_result(run_dir, &res);
    return 0;
}
