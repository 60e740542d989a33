/* Defects of issue 9 in evaluation, the input pipeline and training, each
 * with the case that showed it: nn eval with a model of another class
 * count (a read of freed memory) or other class names (a warning); a
 * dataset whose every record is unreadable (an endless loop, now an error
 * and one warning per record); option ranges; a run whose weights become
 * non-finite (never saved). */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"

#include "base/log.h"
#include "io/dataset.h"
#include "nn/model.h"
#include "tests/testutil.h"
#include "tests/train_data.h"
#include "train/evaluate.h"
#include "train/pipeline.h"
#include "train/trainer.h"

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    ck_assert_ptr_nonnull(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* Warnings are counted and the last one kept. */
static _Atomic int warnings;   /* pipeline workers warn from their threads */
static char last_warning[1024];
static void count_warnings(enum nn_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level != NN_LOG_WARN) return;
    warnings++;
    snprintf(last_warning, sizeof last_warning, "%s", msg);
}

static void capture_warnings(void)
{
    warnings = 0;
    last_warning[0] = 0;
    nn_log_set(count_warnings, NULL, NN_LOG_WARN);
}

static struct nn_model *small_model(int classes, const char *const *names)
{
    struct nn_config cfg = nn_config_default(classes);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, names, 7, &m), NN_OK);
    return m;
}

/* ---- nn eval ---- */

/* The count in the message used to be read from the closed pipeline's
 * descriptor (freed memory: ASan reports it, a plain build prints garbage). */
START_TEST(eval_other_class_count_names_both_counts)
{
    capture_warnings();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 1, 2, 80, 11);
    struct nn_model *m = small_model(3, NULL);
    struct nn_eval e;
    ck_assert_int_eq(nn_eval_init(&e, 3), NN_OK);
    ck_assert_int_eq(nn_evaluate_model(m, data, NN_SPLIT_VALIDATION, 2, 1, NULL, NULL, &e), NN_ERR_ARG);
    ck_assert_msg(strstr(nn_last_error(), "has 2 classes, the model 3"), "%s", nn_last_error());
    nn_eval_free(&e);
    nn_model_free(m);
    free(data);
    rm_rf(dir);
    free(dir);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}
END_TEST

START_TEST(eval_warns_when_class_names_differ)
{
    capture_warnings();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 1, 1, 80, 12);
    struct nn_eval e;
    ck_assert_int_eq(nn_eval_init(&e, 2), NN_OK);

    /* the dataset's names: silent */
    const char *same[] = {"class0", "class1"};
    struct nn_model *m = small_model(2, same);
    ck_assert_msg(nn_evaluate_model(m, data, NN_SPLIT_VALIDATION, 2, 1, NULL, NULL, &e) == NN_OK, "%s",
                  nn_last_error());
    ck_assert_int_eq(warnings, 0);
    nn_model_free(m);

    /* swapped names: the labels would be read backwards */
    const char *swapped[] = {"class1", "class0"};
    m = small_model(2, swapped);
    nn_eval_reset(&e);
    ck_assert_msg(nn_evaluate_model(m, data, NN_SPLIT_VALIDATION, 2, 1, NULL, NULL, &e) == NN_OK, "%s",
                  nn_last_error());
    ck_assert_int_eq(warnings, 1);
    ck_assert_msg(strstr(last_warning, "class names differ") && strstr(last_warning, "class1"), "%s", last_warning);
    nn_model_free(m);

    nn_eval_free(&e);
    free(data);
    rm_rf(dir);
    free(dir);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}
END_TEST

/* ---- unreadable records ---- */

/* Flips a byte inside the payload of every record of dir's shards of
 * `split`, so that each fails its CRC. */
static void damage_every_record(const char *dir, const char *split)
{
    const struct nn_dataset_desc *d;
    struct nn_dataset *ds;
    ck_assert_msg(nn_dataset_open(dir, &ds) == NN_OK, "%s", nn_last_error());
    d = nn_dataset_info(ds);
    enum nn_split sp = !strcmp(split, "train") ? NN_SPLIT_TRAIN : NN_SPLIT_VALIDATION;
    for (int sh = 0; sh < d->split[sp].num_shards; sh++) {
        char *rec = path_in(dir, d->split[sp].shards[sh].file);
        char *idx = strdup(rec);
        strcpy(idx + strlen(idx) - 3, "idx");
        char *data;
        size_t len;
        ck_assert_int_eq(nn_read_file(idx, &data, &len), NN_OK);
        FILE *fp = fopen(rec, "r+b");
        ck_assert_ptr_nonnull(fp);
        for (long r = 0; r < d->split[sp].shards[sh].count; r++) {
            long off = 0;
            for (int k = 7; k >= 0; k--) off = off * 256 + (unsigned char)data[32 + 8 * r + k];
            /* 12 bytes of frame header, then the payload */
            ck_assert_int_eq(fseek(fp, off + 12 + 40, SEEK_SET), 0);
            int c = fgetc(fp);
            ck_assert_int_eq(fseek(fp, off + 12 + 40, SEEK_SET), 0);
            fputc(c ^ 0x55, fp);
        }
        ck_assert_int_eq(fclose(fp), 0);
        free(data);
        free(idx);
        free(rec);
    }
    nn_dataset_close(ds);
}

/* An endless pipeline over records that all fail used to skip them
 * forever, warning each time: now one warning per record, then an error
 * after a whole epoch without one usable example. */
START_TEST(pipeline_every_record_bad_fails_once_warned)
{
    capture_warnings();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 2, 1, 80, 13);
    damage_every_record(data, "train");
    struct nn_pipeline_options o;
    nn_pipeline_options_default(&o);
    o.batch_size = 2;
    o.image_size = 75;
    o.threads = 1;
    o.epochs = 0; /* endless, as the trainer runs it */
    struct nn_pipeline *p;
    ck_assert_msg(nn_pipeline_open(data, NN_SPLIT_TRAIN, &o, &p) == NN_OK, "%s", nn_last_error());
    const struct nn_batch *b;
    ck_assert_int_eq(nn_pipeline_next(p, &b), NN_ERR_CORRUPT);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(nn_last_error(), data) && strstr(nn_last_error(), "CRC"), "%s", nn_last_error());
    ck_assert_int_eq(warnings, 4); /* each of the 4 records once */
    /* and it stays failed */
    ck_assert_int_eq(nn_pipeline_next(p, &b), NN_ERR_CORRUPT);
    nn_pipeline_close(p);
    ck_assert_int_eq(warnings, 4);
    free(data);
    rm_rf(dir);
    free(dir);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}
END_TEST

START_TEST(train_every_record_bad_fails)
{
    capture_warnings();
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 2, 1, 80, 14);
    damage_every_record(data, "train");
    char *run = path_in(dir, "run");
    struct nn_train_options o;
    nn_train_options_default(&o);
    o.data_dir = data;
    o.run_dir = run;
    o.batch_size = 2;
    o.image_size = 75;
    o.threads = 2;
    o.max_steps = 3;
    o.cache = 0; /* the uncached pipeline */
    struct nn_train_result r;
    ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_CORRUPT);
    ck_assert_msg(strstr(nn_last_error(), "could be read"), "%s", nn_last_error());
    ck_assert_int_eq(r.steps, 0);
    ck_assert_int_le(warnings, 4);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}
END_TEST

/* ---- option ranges and non-finite weights ---- */

static void tiny_options(struct nn_train_options *o, const char *data, const char *run)
{
    nn_train_options_default(o);
    o->data_dir = data;
    o->run_dir = run;
    o->batch_size = 2;
    o->image_size = 75;
    o->threads = 2;
    o->max_steps = 1;
}

/* --learning-rate inf (or 1e30) trained a model of NaNs and saved it. */
START_TEST(train_refuses_out_of_range_options)
{
    nn_log_set(NULL, NULL, NN_LOG_ERROR);
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 2, 1, 80, 15);
    char *run = path_in(dir, "run");
    struct nn_train_options o;
    struct nn_train_result r;
    const double lrs[] = {INFINITY, NAN, 1e30, -1, 0};
    for (size_t i = 0; i < sizeof lrs / sizeof lrs[0]; i++) {
        tiny_options(&o, data, run);
        o.learning_rate = lrs[i];
        ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_ARG);
        ck_assert_msg(strstr(nn_last_error(), "--learning-rate"), "%g: %s", lrs[i], nn_last_error());
        ck_assert_int_ne(access(run, F_OK), 0); /* refused before anything was made */
    }
    tiny_options(&o, data, run);
    o.label_smoothing = NAN;
    ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_ARG);
    ck_assert_msg(strstr(nn_last_error(), "--label-smoothing"), "%s", nn_last_error());
    tiny_options(&o, data, run);
    o.opt.momentum = INFINITY;
    ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_ARG);
    ck_assert_msg(strstr(nn_last_error(), "--momentum"), "%s", nn_last_error());

    /* the command line refuses them too, naming the option */
    char cmd[8192], *out = NULL;
    const char *bad[] = {"--learning-rate inf", "--learning-rate nan", "--learning-rate 1e30", "--momentum nan"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --out '%s' --image-size 75 --batch-size 2 --max-steps 1 %s -q",
                 nn_bin(), data, run, bad[i]);
        int rc = run_command(cmd, &out);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(bad[i], " "), bad[i]);
        ck_assert_msg(rc != 0 && out && strstr(out, name), "%s: rc %d: %s", bad[i], rc, out ? out : "");
        ck_assert_int_ne(access(run, F_OK), 0);
        free(out);
    }
    /* nn finetune's per-stage values too */
    const char *stage_bad[] = {"--stage1-lr inf", "--stage2-lr 1e30", "--stage1-epochs nan"};
    for (size_t i = 0; i < sizeof stage_bad / sizeof stage_bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s' finetune '%s' --init-from x.nnm --out '%s' %s -q", nn_bin(), data, run,
                 stage_bad[i]);
        int rc = run_command(cmd, &out);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(stage_bad[i], " "), stage_bad[i]);
        ck_assert_msg(rc == 2 && out && strstr(out, name), "%s: rc %d: %s", stage_bad[i], rc, out ? out : "");
        ck_assert_int_ne(access(run, F_OK), 0);
        free(out);
    }
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* A moving variance of NaN never reaches the training loss (trainable batch
 * norms use batch statistics), so the loss check passed and the model was
 * saved with exit 0. */
START_TEST(train_never_saves_nonfinite_weights)
{
    nn_log_set(NULL, NULL, NN_LOG_ERROR);
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 2, 1, 80, 16);
    char *init = path_in(dir, "init.nnm"), *run = path_in(dir, "run");
    struct nn_model *m = small_model(2, (const char *[]){"class0", "class1"});
    int i = nn_params_find(&m->params, "Mixed_6a.branch3x3.bn.running_var");
    ck_assert_int_ge(i, 0);
    nn_param_data(&m->params, i)[5] = NAN;
    ck_assert_int_eq(nn_model_save(m, init), NN_OK);
    nn_model_free(m);

    struct nn_train_options o;
    tiny_options(&o, data, run);
    o.init_from = init;
    o.eval_at_end = false;
    o.bn_recalibrate = 0;
    o.learning_rate = 0.001;
    struct nn_train_result r;
    ck_assert_int_eq(nn_train(&o, NULL, NULL, &r), NN_ERR_INTERNAL);
    ck_assert_msg(strstr(nn_last_error(), "Mixed_6a.branch3x3.bn.running_var") && strstr(nn_last_error(), "nan") &&
                      strstr(nn_last_error(), "diverged"),
                  "%s", nn_last_error());
    char *final = path_in(run, "final.nnm"), *ckpt = path_in(run, "checkpoints/ckpt-1.nnm");
    ck_assert_int_ne(access(final, F_OK), 0);
    ck_assert_int_ne(access(ckpt, F_OK), 0);
    free(final);
    free(ckpt);
    free(init);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* options.json (and every checkpoint) cast its numbers unchecked: a
 * batch size of 1e300 read as INT_MIN (undefined behaviour). */
START_TEST(options_json_numbers_are_range_checked)
{
    const char *bad[] = {"{\"batch_size\": 1e300}", "{\"batch_size\": 2.5}", "{\"max_steps\": -1e300}",
                         "{\"label_smoothing\": 1e300}", "{\"threads\": 4294967296}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct nn_json *j;
        ck_assert_int_eq(nn_json_parse(bad[i], strlen(bad[i]), &j), NN_OK);
        struct nn_train_options o;
        nn_train_options_default(&o);
        ck_assert_msg(nn_train_options_from_json(j, &o) == NN_ERR_FORMAT, "%s accepted", bad[i]);
        ck_assert_msg(strstr(nn_last_error(), "options: '"), "%s", nn_last_error());
        nn_json_free(j);
    }
    /* what the writer writes reads back */
    struct nn_train_options o, back;
    nn_train_options_default(&o);
    o.batch_size = 7;
    o.max_steps = 123456789012L;
    char *text = nn_train_options_json(&o);
    struct nn_json *j;
    ck_assert_int_eq(nn_json_parse(text, strlen(text), &j), NN_OK);
    nn_train_options_default(&back);
    ck_assert_msg(nn_train_options_from_json(j, &back) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(back.batch_size, 7);
    ck_assert_int_eq(back.max_steps, 123456789012L);
    nn_json_free(j);
    free(text);
}
END_TEST

/* ---- interrupts ---- */

extern char **environ;

struct cancel_after {
    volatile sig_atomic_t flag;
    long steps;
};

static void cancel_progress(void *user, const struct nn_train_progress *p)
{
    struct cancel_after *c = user;
    if (!strcmp(p->phase, "training") && p->done >= c->steps) c->flag = 1;
}

/* Ctrl-C lost every step since the last checkpoint. The library now takes
 * a cancellation flag: the run stops after the current step with a
 * checkpoint, and --resume finishes it. */
START_TEST(train_cancel_checkpoints_and_resumes)
{
    nn_log_set(NULL, NULL, NN_LOG_ERROR);
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 3, 1, 80, 17);
    char *run = path_in(dir, "run");
    struct nn_train_options o;
    tiny_options(&o, data, run);
    o.max_steps = 6;
    o.checkpoint_every = 0;
    o.checkpoint_seconds = 0;
    o.eval_at_end = false;
    struct cancel_after c = {0, 2};
    o.cancel = &c.flag;
    struct nn_train_result r;
    ck_assert_int_eq(nn_train(&o, cancel_progress, &c, &r), NN_ERR_CANCELLED);
    ck_assert_msg(strstr(nn_last_error(), "step 2 of 6") && strstr(nn_last_error(), "--resume"), "%s",
                  nn_last_error());
    ck_assert_int_eq(r.steps, 2);
    char *ck = path_in(run, "checkpoints/ckpt-2.nnm"), *final = path_in(run, "final.nnm");
    ck_assert_int_eq(access(ck, F_OK), 0);
    ck_assert_int_ne(access(final, F_OK), 0);

    /* a kill during the final model's write left this; --resume removes it */
    char *stale = path_in(run, "final.nnm.tmp.Ab12Cd");
    FILE *fp = fopen(stale, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    o.cancel = NULL;
    o.resume = true;
    ck_assert_msg(nn_train(&o, NULL, NULL, &r) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(r.steps, 6);
    ck_assert_int_eq(access(final, F_OK), 0);
    ck_assert_int_ne(access(stale, F_OK), 0);
    free(stale);
    free(ck);
    free(final);
    free(run);
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* The same through the command: SIGTERM (and Ctrl-C) stop nn train with a
 * checkpoint and exit 128 + the signal. */
START_TEST(train_cli_sigterm_exits_143_with_checkpoint)
{
    char *dir = make_temp_dir();
    char *data = make_color_dataset(dir, 2, 3, 1, 80, 18);
    const int sigs[] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        char name[16], cmd[8192];
        snprintf(name, sizeof name, "run%d", k);
        char *run = path_in(dir, name), *log = path_in(run, "metrics.jsonl");
        snprintf(name, sizeof name, "err%d", k);
        char *err = path_in(dir, name);
        snprintf(cmd, sizeof cmd,
                 "exec '%s' train --data '%s' --out '%s' --image-size 75 --batch-size 2 --max-steps 100000 "
                 "--threads 2 --log-every 1 --checkpoint-every 0 --checkpoint-seconds 0 -q 2>'%s'",
                 nn_bin(), data, run, err);
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        pid_t pid;
        ck_assert_int_eq(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ), 0);
        /* wait for the first logged step */
        int status;
        bool ended = false;
        for (int i = 0; i < 120000; i++) {
            char *text;
            size_t len;
            if (nn_read_file(log, &text, &len) == NN_OK) {
                bool stepped = strstr(text, "\"loss\"") != NULL;
                free(text);
                if (stepped) break;
            }
            if (waitpid(pid, &status, WNOHANG) == pid) {
                ended = true;
                break;
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        ck_assert_msg(!ended, "the run ended before it could be interrupted");
        ck_assert_int_eq(kill(pid, sigs[k]), 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        char *msg = NULL;
        size_t len;
        ck_assert_int_eq(nn_read_file(err, &msg, &len), NN_OK);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 128 + sigs[k], "status %d: %s", status, msg);
        ck_assert_msg(strstr(msg, "interrupted by") && strstr(msg, "--resume"), "%s", msg);
        free(msg);
        char *ckdir = path_in(run, "checkpoints");
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -q 'ckpt-[0-9]*\\.nnm$'", ckdir);
        ck_assert_int_eq(run_command(cmd, NULL), 0);
        free(ckdir);
        free(err);
        free(log);
        free(run);
    }
    free(data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* A run that fails before it writes anything leaves no empty directory. */
START_TEST(failed_runs_leave_no_empty_run_dir)
{
    nn_log_set(NULL, NULL, NN_LOG_ERROR);
    char *dir = make_temp_dir();
    char *run = path_in(dir, "run"), *missing = path_in(dir, "no-such-dataset");
    struct nn_train_options o;
    tiny_options(&o, missing, run);
    struct nn_train_result r;
    ck_assert_int_ne(nn_train(&o, NULL, NULL, &r), NN_OK);
    ck_assert_int_ne(access(run, F_OK), 0);

    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --out '%s' --max-steps 1 -q 2>/dev/null", nn_bin(), missing,
             run);
    ck_assert_int_ne(run_command(cmd, NULL), 0);
    ck_assert_int_ne(access(run, F_OK), 0);
    snprintf(cmd, sizeof cmd, "'%s' finetune '%s' --init-from '%s/x.nnm' --out '%s' -q 2>/dev/null", nn_bin(), missing,
             dir, run);
    ck_assert_int_ne(run_command(cmd, NULL), 0);
    ck_assert_int_ne(access(run, F_OK), 0);

    /* a directory that was there before is left alone */
    ck_assert_int_eq(mkdir(run, 0777), 0);
    ck_assert_int_ne(nn_train(&o, NULL, NULL, &r), NN_OK);
    ck_assert_int_eq(access(run, F_OK), 0);
    free(run);
    free(missing);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_robust_train(void)
{
    Suite *s = suite_create("robust_train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, eval_other_class_count_names_both_counts);
    tcase_add_test(tc, eval_warns_when_class_names_differ);
    tcase_add_test(tc, pipeline_every_record_bad_fails_once_warned);
    tcase_add_test(tc, train_every_record_bad_fails);
    tcase_add_test(tc, train_refuses_out_of_range_options);
    tcase_add_test(tc, train_never_saves_nonfinite_weights);
    tcase_add_test(tc, options_json_numbers_are_range_checked);
    tcase_add_test(tc, train_cancel_checkpoints_and_resumes);
    tcase_add_test(tc, train_cli_sigterm_exits_143_with_checkpoint);
    tcase_add_test(tc, failed_runs_leave_no_empty_run_dir);
    suite_add_tcase(s, tc);
    return s;
}
