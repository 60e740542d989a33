/* Training on real photos (../shared/data/hymenoptera, ants vs bees) from
 * the real ImageNet trunk in ../shared/weights, at a small size to stay
 * fast: the loss goes down and validation accuracy is far above chance;
 * nn eval reports exactly the trainer's numbers; the frozen export predicts
 * what the trained model predicts. And `nn finetune` end to end on a
 * folder of photos. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "io/dataset.h"
#include "io/json.h"
#include "nn/model.h"
#include "nn/net.h"
#include "tests/testutil.h"
#include "tests/train_data.h"
#include "train/pipeline.h"
#include "train/trainer.h"

#define SIZE 107

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* Mean "loss" of the first and last training lines of a run's metrics. */
static void first_last_loss(const char *run, double *first, double *last)
{
    char *p = path_in(run, "metrics.jsonl"), *text;
    size_t len;
    ck_assert(nn_read_file(p, &text, &len) == NN_OK);
    free(p);
    *first = *last = NAN;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        struct nn_json *j;
        ck_assert_msg(nn_json_parse(line, strlen(line), &j) == NN_OK, "bad metrics line %s", line);
        const struct nn_json *l = nn_json_get(j, "loss");
        if (l) {
            if (isnan(*first)) *first = nn_json_number(l);
            *last = nn_json_number(l);
        }
        nn_json_free(j);
    }
    free(text);
}

START_TEST(train_hymenoptera_heads)
{
    if (!have_shared("train_hymenoptera_heads")) return;
    nn_log_set(NULL, NULL, NN_LOG_ERROR);
    char *dir = make_temp_dir();
    char *data = path_in(dir, "data"), *init = path_in(dir, "init.nnm"), *run = path_in(dir, "run");
    struct nn_convert_options co;
    nn_convert_options_default(&co);
    co.threads = 2;
    struct nn_convert_summary sum;
    ck_assert_msg(nn_dataset_convert(shared_path("data/hymenoptera"), data, &co, &sum) == NN_OK, "%s",
                  nn_last_error());

    const char *exclude[] = {"fc", "AuxLogits", "Mixed_7b.branch3x3dbl_2", "Mixed_7c.branch3x3dbl_2"};
    struct nn_import_options io = {.num_classes = 2, .aux_logits = true, .image_size = SIZE, .exclude = exclude,
                                   .nexclude = 4, .seed = 1};
    struct nn_import_report rep;
    struct nn_model *m0;
    ck_assert_msg(nn_model_import(shared_path("weights/inception_v3_imagenet2015.safetensors"), &io, &m0, &rep) ==
                      NN_OK, "%s", nn_last_error());
    nn_import_report_free(&rep);
    ck_assert_int_eq(nn_model_save(m0, init), NN_OK);
    nn_model_free(m0);

    /* stage 1 of the recipe at a small size: heads only, cached */
    struct nn_train_options o;
    nn_train_options_default(&o);
    o.data_dir = data;
    o.run_dir = run;
    o.init_from = init;
    o.trainable_scopes = "fc,AuxLogits";
    o.augment = false;
    o.lr_schedule = NN_LR_FIXED;
    o.epochs = 5;
    o.threads = 2;
    o.log_every = 7;
    struct nn_train_result r;
    ck_assert_msg(nn_train(&o, NULL, NULL, &r) == NN_OK, "%s", nn_last_error());
    ck_assert(r.cached && r.evaluated);
    ck_assert_int_eq(r.eval_count, 153);
    double first, last;
    first_last_loss(run, &first, &last);
    ck_assert_msg(last < 0.6 * first, "the loss went from %.3f to %.3f only", first, last);
    ck_assert_msg(r.top1 >= 0.75, "validation top-1 %.3f at %dx%d", r.top1, SIZE, SIZE);

    /* nn eval on the final model: the same top-1, through the CLI */
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' eval '%s/final.nnm' --data '%s' --json -q", nn_bin(), run, data);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    struct nn_json *j;
    char *brace = strchr(out, '{');
    ck_assert_msg(brace && nn_json_parse(brace, strlen(brace), &j) == NN_OK, "%s", out);
    ck_assert_double_eq_tol(nn_json_number(nn_json_get(j, "top1")), r.top1, 1e-12);
    ck_assert(nn_json_number(nn_json_get(j, "count")) == 153);
    const struct nn_json *conf = nn_json_get(j, "confusion");
    ck_assert_int_eq(nn_json_len(conf), 2);
    double diag = nn_json_number(nn_json_at(nn_json_at(conf, 0), 0)) + nn_json_number(nn_json_at(nn_json_at(conf, 1), 1));
    ck_assert_double_eq_tol(diag / 153, r.top1, 1e-12);
    ck_assert_int_eq(nn_json_len(nn_json_get(j, "classes")), 2);
    nn_json_free(j);
    free(out);

    /* the frozen export predicts what the model predicts, on real photos */
    char *frozen = path_in(dir, "frozen.nnm");
    snprintf(cmd, sizeof cmd, "'%s' export '%s/final.nnm' -o '%s'", nn_bin(), run, frozen);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_msg(strstr(out, "2 classes"), "%s", out);
    free(out);
    struct nn_model *a, *b;
    char *final = path_in(run, "final.nnm");
    ck_assert_int_eq(nn_model_load(final, &a), NN_OK);
    ck_assert_int_eq(nn_model_load(frozen, &b), NN_OK);
    struct nn_pipeline_options po;
    nn_pipeline_options_eval(&po);
    po.image_size = SIZE;
    po.batch_size = 16;
    struct nn_pipeline *p;
    ck_assert_int_eq(nn_pipeline_open(data, NN_SPLIT_VALIDATION, &po, &p), NN_OK);
    const struct nn_batch *batch;
    ck_assert_int_eq(nn_pipeline_next(p, &batch), NN_OK);
    struct nn_net na, nb;
    ck_assert_int_eq(nn_net_init(&na, &a->cfg, &a->params, 16, NULL), NN_OK);
    ck_assert_int_eq(nn_net_init(&nb, &b->cfg, &b->params, 16, NULL), NN_OK);
    ck_assert_int_eq(nn_net_forward(&na, batch->images, batch->n, false, false), NN_OK);
    ck_assert_int_eq(nn_net_forward(&nb, batch->images, batch->n, false, false), NN_OK);
    double d = max_abs_diff(nn_net_logits(&na), nn_net_logits(&nb), (size_t)batch->n * 2);
    ck_assert_msg(d <= 1e-4, "the frozen export's logits differ by %g", d);
    nn_net_free(&na);
    nn_net_free(&nb);
    nn_pipeline_close(p);
    nn_model_free(a);
    nn_model_free(b);
    free(final);
    free(frozen);

    free(data);
    free(init);
    free(run);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(finetune_cli_end_to_end)
{
    char *dir = make_temp_dir();
    char *src = path_in(dir, "photos"), *init = path_in(dir, "init.nnm"), *run = path_in(dir, "run");
    make_color_photos(src, 2, 4, 2, 80, 7);
    struct nn_config cfg = nn_config_default(5);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 2, &m), NN_OK);
    ck_assert_int_eq(nn_model_save(m, init), NN_OK);
    nn_model_free(m);

    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "'%s' finetune '%s' --init-from '%s' --out '%s' --batch-size 4 --stage1-steps 4 --stage2-steps 2 "
             "--threads 2 -q",
             nn_bin(), src, init, run);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "%s", out);
    /* the 5-class start model's heads were replaced for the 2 classes, and said so */
    ck_assert_msg(strstr(out, "initialised fresh") && strstr(out, "5 classes"), "%s", out);
    ck_assert_msg(strstr(out, "frozen.nnm"), "%s", out);
    free(out);
    const char *files[] = {"data/dataset.json", "stage1/final.nnm", "stage1/metrics.jsonl", "stage2/final.nnm",
                           "stage2/options.json", "final.nnm", "frozen.nnm"};
    for (int i = 0; i < 7; i++) {
        char *p = path_in(run, files[i]);
        ck_assert_msg(access(p, F_OK) == 0, "%s is missing", files[i]);
        free(p);
    }
    /* stage 2 trained every layer from stage 1's model */
    char *opts = path_in(run, "stage2/options.json"), *text;
    size_t len;
    ck_assert(nn_read_file(opts, &text, &len) == NN_OK);
    ck_assert_msg(strstr(text, "\"trainable_scopes\":null") && strstr(text, "stage1/final.nnm"), "%s", text);
    free(text);
    free(opts);

    /* a second run over the same directory is refused; --resume finds everything done */
    rc = run_command(cmd, &out);
    ck_assert_int_ne(rc, 0);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' finetune '%s' --init-from '%s' --out '%s' --batch-size 4 --resume -q", nn_bin(),
             src, init, run);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0 && strstr(out, "already finished"), "%s", out);
    free(out);

    /* the picture of the run: both stages, loss and accuracy */
    char *svg = path_in(dir, "curves.svg");
    snprintf(cmd, sizeof cmd, "'%s' plot '%s' -o '%s'", nn_bin(), run, svg);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0 && strstr(out, "2 evaluations"), "%s", out);
    free(out);
    ck_assert(nn_read_file(svg, &text, &len) == NN_OK);
    ck_assert(strstr(text, "<svg") && strstr(text, "stage 2") && strstr(text, "<polyline"));
    free(text);
    free(svg);

    /* the exported model classifies a photo by the dataset's class names */
    snprintf(cmd, sizeof cmd, "'%s' predict '%s/frozen.nnm' '%s/train/class1/img000.jpg' --top 2", nn_bin(), run,
             src);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0 && strstr(out, "class0") && strstr(out, "class1"), "%s", out);
    free(out);

    free(src);
    free(init);
    free(run);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_train_real(void)
{
    Suite *s = suite_create("train_real");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_hymenoptera_heads);
    tcase_add_test(tc, finetune_cli_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}
