/* Whole training runs on a small synthetic dataset (75x75, a handful of
 * images): kill -9 and resume reproduces the uninterrupted run exactly;
 * frozen scopes stay bit-identical; the bottleneck cache equals the
 * uncached path; resume refuses contradicting options; a diverging run
 * stops cleanly; evaluation metrics on a hand-checked case. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "io/json.h"
#include "nn/model.h"
#include "tests/testutil.h"
#include "tests/train_data.h"
#include "train/evaluate.h"
#include "train/trainer.h"

extern char **environ;

static void quiet_logs(void) { nn_log_set(NULL, NULL, NN_LOG_ERROR); }

static void small_options(struct nn_train_options *o, const char *data, const char *run)
{
    nn_train_options_default(o);
    o->data_dir = data;
    o->run_dir = run;
    o->batch_size = 2;
    o->image_size = 75;
    o->threads = 2;
    o->seed = 3;
    o->log_every = 1;
    o->learning_rate = 0.01;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static struct nn_model *load(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    struct nn_model *m;
    ck_assert_msg(nn_model_load(p, &m) == NN_OK, "%s", nn_last_error());
    free(p);
    return m;
}

/* The metrics log without the timing fields, for comparing runs. */
static char *metrics_without_timing(const char *run)
{
    char *p = path_in(run, "metrics.jsonl"), *text;
    size_t len;
    ck_assert_msg(nn_read_file(p, &text, &len) == NN_OK, "%s", nn_last_error());
    free(p);
    struct nn_strbuf out;
    nn_strbuf_init(&out);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *ips = strstr(line, "\"images_per_sec\":");
        if (ips) {
            char *end = strpbrk(ips, ",}");
            nn_strbuf_append(&out, line, (size_t)(ips - line));
            nn_strbuf_append(&out, end, strlen(end));
        } else {
            nn_strbuf_append(&out, line, strlen(line));
        }
        nn_strbuf_append(&out, "\n", 1);
    }
    free(text);
    return out.data;
}

static int count_lines_with(const char *run, const char *needle)
{
    char *p = path_in(run, "metrics.jsonl"), *text;
    size_t len;
    ck_assert(nn_read_file(p, &text, &len) == NN_OK);
    free(p);
    int n = 0;
    for (char *s = text; (s = strstr(s, needle)); s++) n++;
    free(text);
    return n;
}

/* ---- crash and resume ---- */

static pid_t spawn_train(const char *data, const char *run, const char *extra)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "exec '%s' train --data '%s' --out '%s' --image-size 75 --batch-size 2 --max-steps 14 --seed 5 "
             "--threads 2 --learning-rate 0.005 --checkpoint-every 2 --eval-every 5 --log-every 1 "
             "--bn-recalibrate 2 -q %s >/dev/null 2>&1",
             nn_bin(), data, run, extra);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ), 0);
    return pid;
}

START_TEST(train_kill9_resume_bit_identical)
{
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 5, 2, 80, 1);
    char *ref = path_in(dir, "ref"), *run = path_in(dir, "run");

    /* the uninterrupted run */
    int status;
    pid_t pid = spawn_train(data, ref, "");
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reference run failed");

    /* the same run killed with SIGKILL as soon as its third checkpoint is
     * being written or done */
    pid = spawn_train(data, run, "");
    char *marker = path_in(run, "checkpoints/ckpt-6.nnm");
    /* kill as soon as checkpoint 6's model file is in place, before or while its .state is written */
    bool ended = false;
    for (int i = 0; i < 100000; i++) {
        if (access(marker, F_OK) == 0) break;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            ended = true;
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(!ended, "the run ended before it could be killed");
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    free(marker);

    /* resume through the CLI with no options: the run's own are used */
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' train --out '%s' --resume -q", nn_bin(), run);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "resume failed: %s", out ? out : "");
    ck_assert_ptr_nonnull(strstr(out, "resuming"));
    free(out);

    struct nn_model *a = load(ref, "final.nnm"), *b = load(run, "final.nnm");
    ck_assert_int_eq(a->params.total, b->params.total);
    ck_assert_msg(memcmp(a->params.data, b->params.data, a->params.total * sizeof(float)) == 0,
                  "resumed weights differ from the uninterrupted run's by %g",
                  max_abs_diff(a->params.data, b->params.data, a->params.total));
    char *ma = metrics_without_timing(ref), *mb = metrics_without_timing(run);
    ck_assert_str_eq(ma, mb);
    free(ma);
    free(mb);
    ck_assert_int_eq(count_lines_with(run, "\"val_top1\""), 3); /* steps 5, 10 and the end */
    ck_assert_int_eq(count_lines_with(run, "bn_recalibrate"), 3);

    /* resuming a finished run changes nothing; a contradicting option is refused */
    snprintf(cmd, sizeof cmd, "'%s' train --out '%s' --resume --learning-rate 0.5 -q", nn_bin(), run);
    rc = run_command(cmd, &out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "--learning-rate") && strstr(out, "0.005"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' train --out '%s' --resume --init-from '%s/final.nnm' -q", nn_bin(), run, ref);
    rc = run_command(cmd, &out);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "--init-from"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --out '%s' --image-size 75 -q", nn_bin(), data, run);
    rc = run_command(cmd, &out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "--resume"), "%s", out);
    free(out);

    nn_model_free(a);
    nn_model_free(b);
    free(ref);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- frozen scopes ---- */

START_TEST(train_scopes_freeze_the_rest)
{
    quiet_logs();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 3, 2, 1, 80, 2);
    char *init = path_in(dir, "init.nnm"), *run = path_in(dir, "run");
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = 75;
    struct nn_model *m0;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 9, &m0), NN_OK);
    ck_assert_int_eq(nn_model_save(m0, init), NN_OK);
    struct nn_train_options o;
    small_options(&o, data, run);
    o.init_from = init;
    o.trainable_scopes = "Mixed_7c,fc";
    o.max_steps = 3;
    o.eval_at_end = false;
    struct nn_train_result r;
    ck_assert_msg(nn_train(&o, NULL, NULL, &r) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(r.steps, 3);
    struct nn_model *m1 = load(run, "final.nnm");
    int changed_trainable = 0, changed_stats = 0;
    for (int i = 0; i < m0->params.count; i++) {
        const struct nn_param *p = &m0->params.items[i];
        bool mine = !strncmp(p->name, "Mixed_7c.", 9) || !strncmp(p->name, "fc.", 3);
        bool same = !memcmp(nn_param_data(&m0->params, i), nn_param_data(&m1->params, i), p->count * sizeof(float));
        if (!mine) ck_assert_msg(same, "frozen %s changed", p->name);
        else if (!same && nn_param_learned(p)) changed_trainable++;
        else if (!same) changed_stats++;
    }
    ck_assert_int_gt(changed_trainable, 20);
    ck_assert_int_gt(changed_stats, 10); /* Mixed_7c's batch norm ran on batch statistics */

    /* a scope that matches nothing is an error, not a silently frozen network */
    char *run2 = path_in(dir, "run2");
    o.run_dir = run2;
    o.trainable_scopes = "Mixed_9";
    ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "Mixed_9"));
    free(run2);

    nn_model_free(m0);
    nn_model_free(m1);
    free(init);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- the bottleneck cache ---- */

START_TEST(train_cache_equals_uncached)
{
    quiet_logs();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 4, 2, 80, 3);
    char *init = path_in(dir, "init.nnm");
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    struct nn_model *m0;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 4, &m0), NN_OK);
    ck_assert_int_eq(nn_model_save(m0, init), NN_OK);
    nn_model_free(m0);
    struct nn_model *fin[2];
    char *runs[2];
    for (int k = 0; k < 2; k++) {
        runs[k] = path_in(dir, k ? "cached" : "uncached");
        struct nn_train_options o;
        small_options(&o, data, runs[k]);
        o.init_from = init;
        o.trainable_scopes = "fc,AuxLogits";
        o.augment = false;
        o.cache = k;
        o.max_steps = 6;
        o.eval_every = 3;
        o.bn_recalibrate = 2;
        struct nn_train_result r;
        ck_assert_msg(nn_train(&o, NULL, NULL, &r) == NN_OK, "%s", nn_last_error());
        ck_assert_int_eq(r.cached, k == 1);
        ck_assert(r.evaluated && r.recalibrated);
        fin[k] = load(runs[k], "final.nnm");
    }
    ck_assert_msg(!memcmp(fin[0]->params.data, fin[1]->params.data, fin[0]->params.total * sizeof(float)),
                  "the cached run differs by %g", max_abs_diff(fin[0]->params.data, fin[1]->params.data,
                                                                fin[0]->params.total));
    char *a = metrics_without_timing(runs[0]), *b = metrics_without_timing(runs[1]);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    for (int k = 0; k < 2; k++) {
        nn_model_free(fin[k]);
        free(runs[k]);
    }
    free(init);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- divergence ---- */

START_TEST(train_stops_on_nan)
{
    quiet_logs();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 2, 1, 80, 4);
    char *run = path_in(dir, "run"), *init = path_in(dir, "init.nnm");
    /* a classifier whose logits overflow: the loss is not finite at once
     * (an absurd learning rate, the old way to get there, is refused now) */
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    struct nn_model *m0;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 4, &m0), NN_OK);
    int fc = nn_params_find(&m0->params, "fc.weight");
    for (size_t k = 0; k < m0->params.items[fc].count; k++) nn_param_data(&m0->params, fc)[k] = 3e38f;
    ck_assert_int_eq(nn_model_save(m0, init), NN_OK);
    nn_model_free(m0);
    struct nn_train_options o;
    small_options(&o, data, run);
    o.init_from = init;
    o.opt.kind = NN_OPT_SGD;
    o.trainable_scopes = "fc";
    o.augment = false;
    o.max_steps = 10;
    o.checkpoint_every = 1;
    struct nn_train_result r;
    ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_INTERNAL);
    ck_assert_msg(strstr(nn_last_error(), "diverged") && strstr(nn_last_error(), "checkpoint"), "%s",
                  nn_last_error());
    ck_assert_int_lt(r.steps, 10);
    char *final = path_in(run, "final.nnm");
    ck_assert_int_ne(access(final, F_OK), 0);
    free(final);
    free(init);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- evaluation metrics ---- */

START_TEST(eval_metrics_by_hand)
{
    struct nn_eval e;
    ck_assert_int_eq(nn_eval_init(&e, 3), NN_OK);
    /* labels 0, 1, 2, 2; predictions (arg-max) 0, 2, 2, 1 */
    const float logits[] = {3, 1, 2, /**/ 0, 1, 5, /**/ 1, 0, 4, /**/ 2, 9, 3};
    const int32_t labels[] = {0, 1, 2, 2};
    nn_eval_add(&e, logits, labels, 4);
    ck_assert_int_eq(e.count, 4);
    ck_assert_double_eq_tol(nn_eval_top1(&e), 0.5, 1e-12);
    ck_assert_double_eq_tol(nn_eval_top5(&e), 1.0, 1e-12); /* 3 classes: top-5 always */
    ck_assert_int_eq(e.confusion[0 * 3 + 0], 1);
    ck_assert_int_eq(e.confusion[1 * 3 + 2], 1);
    ck_assert_int_eq(e.confusion[2 * 3 + 2], 1);
    ck_assert_int_eq(e.confusion[2 * 3 + 1], 1);
    ck_assert_double_eq_tol(nn_eval_precision(&e, 2), 0.5, 1e-12); /* predicted 2 twice, right once */
    ck_assert_double_eq_tol(nn_eval_recall(&e, 2), 0.5, 1e-12);
    ck_assert_double_eq_tol(nn_eval_recall(&e, 1), 0.0, 1e-12);
    ck_assert_double_eq_tol(nn_eval_precision(&e, 1), 0.0, 1e-12);
    ck_assert_double_eq_tol(nn_eval_precision(&e, 0), 1.0, 1e-12);
    double want_loss = (log(exp(3) + exp(1) + exp(2)) - 3 + log(exp(0) + exp(1) + exp(5)) - 1 +
                        log(exp(1) + exp(0) + exp(4)) - 4 + log(exp(2) + exp(9) + exp(3)) - 3) / 4;
    ck_assert_double_eq_tol(nn_eval_loss(&e), want_loss, 1e-6);
    nn_eval_free(&e);

    /* top-5 of 7 classes: the label must have fewer than 5 strictly above it */
    ck_assert_int_eq(nn_eval_init(&e, 7), NN_OK);
    const float l7[] = {7, 6, 5, 4, 3, 2, 1, /**/ 7, 6, 5, 4, 3, 2, 1, /**/ 1, 1, 1, 1, 1, 1, 1};
    const int32_t y7[] = {4, 5, 6}; /* rank 5 (in), rank 6 (out), all tied (in, and top-1 by the first max: no) */
    nn_eval_add(&e, l7, y7, 3);
    ck_assert_int_eq(e.top5, 2);
    ck_assert_int_eq(e.top1, 0);
    nn_eval_free(&e);
}
END_TEST

/* ---- learning from scratch ---- */

START_TEST(train_learns_from_random_init)
{
    quiet_logs();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 8, 4, 80, 5);
    char *run = path_in(dir, "run");
    struct nn_train_options o;
    small_options(&o, data, run);
    /* Adam with a small epsilon, on unaugmented images: the colour classes
     * are learnt in a few steps from random weights, through all 94 convs */
    o.batch_size = 8;
    o.max_steps = 20;
    o.augment = false;
    o.opt.kind = NN_OPT_ADAM;
    o.opt.epsilon = 1e-6f;
    o.learning_rate = 0.001;
    o.lr_schedule = NN_LR_FIXED;
    o.bn_recalibrate = 2;
    o.log_every = 4;
    struct nn_train_result r;
    ck_assert_msg(nn_train(&o, NULL, NULL, &r) == NN_OK, "%s", nn_last_error());
    ck_assert(r.evaluated);
    ck_assert_msg(r.top1 >= 0.99, "validation top-1 %.3f after training from scratch", r.top1);
    ck_assert_msg(r.last_loss < 0.4, "the loss is still %.3f after 20 steps", r.last_loss);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_train_run(void)
{
    Suite *s = suite_create("train_run");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, eval_metrics_by_hand);
    tcase_add_test(tc, train_kill9_resume_bit_identical);
    tcase_add_test(tc, train_scopes_freeze_the_rest);
    tcase_add_test(tc, train_cache_equals_uncached);
    tcase_add_test(tc, train_stops_on_nan);
    tcase_add_test(tc, train_learns_from_random_init);
    suite_add_tcase(s, tc);
    return s;
}
