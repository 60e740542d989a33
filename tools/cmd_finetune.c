/* nn finetune: the two-stage transfer-learning recipe as one command.
 *
 *   (convert)  a folder of class folders becomes RUN_DIR/data
 *   stage 1    only the heads (fc, AuxLogits) train from --init-from: rmsprop,
 *              lr 0.01, fixed, no augmentation, so the frozen trunk's outputs
 *              are cached and each step costs almost nothing
 *   stage 2    every layer trains from stage 1's model: rmsprop, lr 1e-4,
 *              fixed, TF-slim's augmentation
 *   export     RUN_DIR/final.nnm (stage 2's model) and RUN_DIR/frozen.nnm
 *
 * Step counts scale with the dataset (see default_epochs), every stage is
 * evaluated at its end, and every option can be overridden. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/dataset.h"
#include "io/json.h"
#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/train_cli.h"
#include "train/checkpoint.h"

static const char usage_head[] =
    "usage: nn finetune SRC_OR_DATASET --init-from MODEL --out RUN_DIR [options]\n"
    "  SRC_OR_DATASET            a converted dataset, or a folder of class folders (converted into\n"
    "                            RUN_DIR/data first)\n"
    "  --init-from MODEL         the pretrained model (its heads are re-initialised for the dataset's classes)\n"
    "  --out RUN_DIR             RUN_DIR/stage1, RUN_DIR/stage2 (runs as nn train makes them),\n"
    "                            RUN_DIR/final.nnm and RUN_DIR/frozen.nnm\n"
    "  --resume                  continue an interrupted finetune (finished stages are kept)\n"
    "  --stage1-epochs E         head-only epochs (default 10; more for tiny datasets: at least 100 steps,\n"
    "                            at most 50 epochs)\n"
    "  --stage1-steps N          ... or a step count\n"
    "  --stage1-lr LR            (0.01)\n"
    "  --stage2-epochs E         all-layer epochs (default 4; 2 above 5000 training images, 1 above 20000)\n"
    "  --stage2-steps N          ... or a step count\n"
    "  --stage2-lr LR            (1e-4)\n"
    "  --no-stage2               stop after stage 1\n"
    "  --bn-mode train|frozen    batch norm of the layers stage 2 trains (frozen)\n"
    "  --bn-recalibrate N        recalibrate batch norm over N batches before each evaluation (default: on,\n"
    "                            min(10, batches per epoch), for a stage shorter than 1/(1 - bn-decay) steps)\n"
    "  -q                        no progress display\n"
    "  Options of nn train that apply to both stages (--learning-rate, --trainable-scopes, --epochs and\n"
    "  --max-steps are per stage here: see above):\n";

static int print_usage(FILE *fp)
{
    fprintf(fp, "%s%s", usage_head, train_cli_options_help);
    return fp == stdout ? 0 : 2;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

struct conv_progress {
    struct cli_progress bar;
    char stage[32];
    bool quiet;
};

static void on_convert(void *user, const char *stage, long done, long total)
{
    struct conv_progress *p = user;
    if (p->quiet) return;
    if (strcmp(p->stage, stage)) {
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        cli_progress_start(&p->bar, p->stage, "files");
    }
    if (done >= total) cli_progress_finish(&p->bar, done, total);
    else cli_progress_update(&p->bar, done, total);
}

/* The dataset to train on: SRC itself when converted, else RUN_DIR/data. */
static int prepare_data(const char *src, const char *run_dir, int threads, bool quiet, char **data_out)
{
    char *desc = join(src, "dataset.json");
    bool converted = desc && exists(desc);
    free(desc);
    if (converted) {
        *data_out = strdup(src);
        return *data_out ? 0 : cli_error("out of memory");
    }
    char *data = join(run_dir, "data");
    char *data_desc = data ? join(data, "dataset.json") : NULL;
    if (!data || !data_desc) return cli_error("out of memory");
    if (exists(data_desc)) {
        fprintf(stderr, "nn: using the dataset converted earlier in %s\n", data);
    } else {
        fprintf(stderr, "nn: converting %s into %s\n", src, data);
        struct nn_convert_options co;
        nn_convert_options_default(&co);
        co.threads = threads;
        struct conv_progress prog = {.quiet = quiet};
        co.progress = on_convert;
        co.progress_user = &prog;
        struct nn_convert_summary sum;
        if (nn_dataset_convert(src, data, &co, &sum) != NN_OK) {
            free(data);
            free(data_desc);
            return cli_fail();
        }
        fprintf(stderr, "nn: %d classes, %ld training + %ld validation images (%ld skipped) in %.1f s\n",
                sum.num_classes, sum.examples[NN_SPLIT_TRAIN], sum.examples[NN_SPLIT_VALIDATION], sum.skipped,
                sum.seconds);
    }
    free(data_desc);
    *data_out = data;
    return 0;
}

/* Stage 1: 10 epochs, as TF-slim's flowers example (1000 steps of 32 on
 * 3320 photos) and most transfer-learning recipes; at least 100 steps for
 * tiny datasets, at most 50 epochs. Stage 2 costs a full forward and
 * backward per image: 4 epochs (the reference recipe), fewer for large
 * datasets. */
static double default_epochs(int stage, long n_train, int batch)
{
    double bpe = (double)(n_train / batch);
    if (bpe < 1) bpe = 1;
    if (stage == 1) {
        double e = ceil(100.0 / bpe);
        return e < 10 ? 10 : e > 50 ? 50 : e;
    }
    return n_train > 20000 ? 1 : n_train > 5000 ? 2 : 4;
}

struct stage_plan {
    double epochs;      /* 0: default */
    long steps;
    double lr;
    int recalibrate;    /* -1: default */
};

/* Runs (or resumes, or skips when finished) one stage. */
static int run_stage(int stage, const char *run_dir, const struct nn_train_options *base, const char *init_from,
                     const struct stage_plan *plan, long n_train, bool resume, bool quiet, double *seconds,
                     struct nn_train_result *res)
{
    char name[16];
    snprintf(name, sizeof name, "stage%d", stage);
    char *dir = join(run_dir, name), *final = dir ? join(dir, "final.nnm") : NULL;
    if (!dir || !final) return cli_error("out of memory");
    memset(res, 0, sizeof *res);
    *seconds = 0;
    if (exists(final)) {
        if (!resume) {
            cli_error("%s already holds a finished stage %d: pass --resume to continue this finetune, or choose "
                      "another --out", dir, stage);
            free(dir);
            free(final);
            return 1;
        }
        fprintf(stderr, "nn: stage %d already finished (%s)\n", stage, final);
        free(dir);
        free(final);
        return 0;
    }
    struct nn_train_options o = *base;
    struct nn_json *saved = NULL;
    int64_t *steps = NULL;
    int nckpt = 0;
    if (resume && nn_checkpoint_list(dir, &steps, &nckpt) == NN_OK && nckpt > 0) {
        /* the stage's own options, so that it continues exactly; only the thread count follows this call */
        struct nn_train_options s = o;
        if (nn_train_options_load(dir, &s, &saved) != NN_OK) {
            free(steps);
            free(dir);
            free(final);
            return cli_fail();
        }
        s.threads = o.threads;
        o = s;
        o.resume = true;
        o.init_from = NULL;
    } else {
        o.init_from = init_from;
        o.resume = false;
        o.stage = stage == 1 ? "stage1" : "stage2";
        if (stage == 1) {
            o.trainable_scopes = "fc,AuxLogits";
            o.augment = false;
            o.bn_mode = NN_BN_TRAIN; /* only the aux head has batch norm among the heads */
        } else {
            o.trainable_scopes = NULL;
        }
        o.learning_rate = plan->lr;
        o.max_steps = plan->steps;
        o.epochs = plan->epochs > 0 ? plan->epochs : default_epochs(stage, n_train, o.batch_size);
        long total = o.max_steps > 0 ? o.max_steps : (long)ceil(o.epochs * (double)(n_train / o.batch_size));
        if (plan->recalibrate >= 0) {
            o.bn_recalibrate = plan->recalibrate;
        } else {
            long bpe = n_train / o.batch_size;
            bool short_run = o.bn_decay > 0 && total < 1.0 / (1.0 - o.bn_decay);
            o.bn_recalibrate = short_run ? (int)(bpe < 10 ? bpe : 10) : 0;
        }
    }
    free(steps);
    o.run_dir = dir;
    fprintf(stderr, "nn: stage %d: %s, %s lr %g, %s\n", stage,
            o.trainable_scopes ? "heads only (fc, AuxLogits)" : "all layers", nn_optimizer_name(o.opt.kind),
            o.learning_rate, o.resume ? "resuming" : "starting");
    struct train_display disp;
    train_display_init(&disp, quiet, stage == 1 ? "stage 1" : "stage 2");
    double t0 = cli_now();
    o.cancel = train_cli_catch_signals();
    enum nn_status st = nn_train(&o, train_display_progress, &disp, res);
    train_display_done(&disp);
    *seconds = cli_now() - t0;
    nn_json_free(saved);
    int rc = st == NN_OK ? 0 : train_cli_fail(st);
    if (rc == 0) train_print_result(dir, res);
    free(dir);
    free(final);
    return rc;
}

int cmd_finetune(int argc, char **argv)
{
    const char *src = NULL, *init_from = NULL, *run_dir = NULL, *v;
    bool resume = false, quiet = false, stage2 = true;
    struct stage_plan plan[3] = {{0}, {0, 0, 0.01, -1}, {0, 0, 1e-4, -1}};
    struct nn_train_options base;
    nn_train_options_default(&base);
    base.lr_schedule = NN_LR_FIXED;
    base.bn_mode = NN_BN_FROZEN;
    base.eval_at_end = true;
    int recal = -1;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return print_usage(stdout);
        const char *a = argv[i];
        if (!strcmp(a, "--learning-rate") || !strcmp(a, "--trainable-scopes") || !strcmp(a, "--epochs") ||
            !strcmp(a, "--max-steps"))
            return cli_usage(usage_head, "%s is per stage in finetune: use --stage1-* / --stage2-*", a);
        int r = train_cli_option(argc, argv, &i, &base);
        if (r < 0) return 2;
        if (r) {
            if (!strncmp(a, "--bn-recalibrate", 16)) recal = base.bn_recalibrate;
            continue;
        }
        double d;
        long l;
        char *end;
        if (cli_flag(argv, i, "--resume")) resume = true;
        else if (cli_flag(argv, i, "-q")) quiet = true;
        else if (cli_flag(argv, i, "--no-stage2")) stage2 = false;
        else if (cli_opt(argc, argv, &i, "--init-from", &v)) init_from = v;
        else if (cli_opt(argc, argv, &i, "--out", &v)) run_dir = v;
        else if (!strncmp(a, "--stage1-", 9) || !strncmp(a, "--stage2-", 9)) {
            int s = a[7] - '0';
            char key[32];
            snprintf(key, sizeof key, "%s", a);
            char *eq = strchr(key, '=');
            if (eq) *eq = '\0';
            if (!cli_opt(argc, argv, &i, key, &v) || !v) return cli_usage(usage_head, "%s needs a value", key);
            errno = 0;
            if (!strcmp(key + 9, "epochs")) {
                d = strtod(v, &end);
                if (errno || *end || !(d > 0 && d <= 1e6)) return cli_usage(usage_head, "%s needs a number in (0, 1e6]", key);
                plan[s].epochs = d;
            } else if (!strcmp(key + 9, "steps")) {
                l = strtol(v, &end, 10);
                if (errno || *end || l < 1) return cli_usage(usage_head, "%s needs a positive integer", key);
                plan[s].steps = l;
            } else if (!strcmp(key + 9, "lr")) {
                d = strtod(v, &end);
                if (errno || *end || !(d > 0 && d <= NN_TRAIN_MAX_LR))
                    return cli_usage(usage_head, "%s needs a number in (0, %g]", key, NN_TRAIN_MAX_LR);
                plan[s].lr = d;
            } else {
                return cli_usage(usage_head, "unknown option %s", key);
            }
        } else if (a[0] == '-') return cli_usage(usage_head, "unknown option %s", a);
        else if (!src) src = a;
        else return cli_usage(usage_head, "unexpected argument %s", a);
    }
    if (!src || !init_from || !run_dir) return cli_usage(usage_head, "need SRC_OR_DATASET, --init-from MODEL and --out RUN_DIR");
    plan[1].recalibrate = plan[2].recalibrate = recal;

    double t_start = cli_now();
    cli_log_setup(false);
    bool made = mkdir(run_dir, 0777) == 0;
    if (!made && errno != EEXIST) return cli_error("%s: cannot create: %s", run_dir, strerror(errno));
    char *data = NULL;
    int rc = prepare_data(src, run_dir, base.threads, quiet, &data);
    if (rc) {
        /* a failure before anything was made leaves no empty run directory
         * (rmdir removes only an empty one) */
        if (made) {
            char *d = join(run_dir, "data");
            if (d) rmdir(d);
            free(d);
            rmdir(run_dir);
        }
        return rc;
    }
    base.data_dir = data;
    struct nn_dataset_desc desc;
    if (nn_dataset_desc_read(data, &desc) != NN_OK) {
        free(data);
        return cli_fail();
    }
    long n_train = desc.split[NN_SPLIT_TRAIN].count;
    nn_dataset_desc_free(&desc);

    struct nn_train_result r1, r2;
    double s1 = 0, s2 = 0;
    char *final1 = join(run_dir, "stage1/final.nnm"), *final2 = join(run_dir, "stage2/final.nnm");
    char *final = join(run_dir, "final.nnm"), *frozen_path = join(run_dir, "frozen.nnm");
    if (!final1 || !final2 || !final || !frozen_path) rc = cli_error("out of memory");
    if (rc == 0) rc = run_stage(1, run_dir, &base, init_from, &plan[1], n_train, resume, quiet, &s1, &r1);
    if (rc == 0 && stage2) rc = run_stage(2, run_dir, &base, final1, &plan[2], n_train, resume, quiet, &s2, &r2);
    struct nn_model *m = NULL, *fz = NULL;
    if (rc == 0) {
        fprintf(stderr, "nn: exporting\n");
        if (nn_model_load(stage2 ? final2 : final1, &m) != NN_OK || nn_model_save(m, final) != NN_OK ||
            nn_model_freeze(m, &fz) != NN_OK || nn_model_save(fz, frozen_path) != NN_OK)
            rc = cli_fail();
    }
    if (rc == 0) {
        printf("\nfinetune finished in %.1f s\n", cli_now() - t_start);
        if (s1 > 0)
            printf("  stage 1 (heads):      %.1f s, %ld steps, validation top-1 %.4f\n", s1, r1.steps,
                   r1.evaluated ? r1.top1 : NAN);
        if (stage2 && s2 > 0)
            printf("  stage 2 (all layers): %.1f s, %ld steps, validation top-1 %.4f\n", s2, r2.steps,
                   r2.evaluated ? r2.top1 : NAN);
        printf("  dataset:      %s\n  runs:         %s/stage1%s\n  model:        %s\n  frozen model: %s\n", data,
               run_dir, stage2 ? ", stage2" : "", final, frozen_path);
    }
    nn_model_free(m);
    nn_model_free(fz);
    free(final1);
    free(final2);
    free(final);
    free(frozen_path);
    free(data);
    return rc;
}
