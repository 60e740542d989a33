/* Checkpoints: a round trip restores model, optimizer state and trainer
 * state exactly; only the newest K are kept; a damaged newest checkpoint is
 * reported and the one before it used; optimizer state refuses to load
 * into a differently configured optimizer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "nn/model.h"
#include "tests/testutil.h"
#include "train/checkpoint.h"

static struct nn_model *small_model(void)
{
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 5, &m), NN_OK);
    return m;
}

/* Trains the heads (a few MB of optimizer state) with one random update. */
static void make_optimizer(const struct nn_model *m, enum nn_optimizer_kind kind, struct nn_optimizer *o)
{
    bool *tr = calloc((size_t)m->params.count, sizeof *tr);
    for (int i = 0; i < m->params.count; i++) tr[i] = !strncmp(m->params.items[i].name, "fc.", 3) ||
                                                      !strncmp(m->params.items[i].name, "Mixed_7c.branch1x1.", 19);
    struct nn_optimizer_options oo;
    nn_optimizer_options_default(&oo);
    oo.kind = kind;
    ck_assert_int_eq(nn_optimizer_init(o, &oo, &m->params, tr), NN_OK);
    free(tr);
}

static void step_once(struct nn_model *m, struct nn_optimizer *o, unsigned seed)
{
    float *g = malloc(m->params.total * sizeof *g);
    fill_uniform(g, m->params.total, -1, 1, seed);
    nn_optimizer_step(o, &m->params, g, 0.01f);
    free(g);
}

static int warnings;
static void count_warnings(enum nn_log_level level, const char *msg, void *user)
{
    (void)msg;
    (void)user;
    if (level == NN_LOG_WARN) warnings++;
}

START_TEST(checkpoint_round_trip)
{
    char *dir = make_temp_dir();
    struct nn_model *m = small_model();
    struct nn_optimizer o;
    make_optimizer(m, NN_OPT_RMSPROP, &o);
    step_once(m, &o, 1);
    step_once(m, &o, 2);
    ck_assert_int_eq(nn_checkpoint_save(dir, 17, m, &o, "{\"position\":{\"epoch\":3,\"batch\":1},\"x\":\"y\"}", 3),
                     NN_OK);
    struct nn_checkpoint c;
    ck_assert_int_eq(nn_checkpoint_load_latest(dir, &c), NN_OK);
    ck_assert_int_eq(c.step, 17);
    ck_assert_int_eq(memcmp(c.model->params.data, m->params.data, m->params.total * sizeof(float)), 0);
    int64_t e;
    ck_assert(nn_json_int(nn_json_get(nn_json_get(c.trainer, "position"), "epoch"), &e) && e == 3);
    ck_assert_str_eq(nn_json_string(nn_json_get(c.trainer, "x")), "y");

    struct nn_optimizer o2;
    make_optimizer(m, NN_OPT_RMSPROP, &o2);
    ck_assert_int_eq(nn_checkpoint_restore_optimizer(&c, &c.model->params, &o2), NN_OK);
    ck_assert_int_eq(o2.updates, 2);
    ck_assert_int_eq(memcmp(o2.state, o.state, (size_t)o.nslots * o.slot_floats * sizeof(float)), 0);

    /* continuing from the restored state equals continuing the original */
    step_once(m, &o, 3);
    step_once(c.model, &o2, 3);
    ck_assert_int_eq(memcmp(c.model->params.data, m->params.data, m->params.total * sizeof(float)), 0);

    /* another optimizer kind, or another trainable set, is refused */
    struct nn_optimizer o3;
    make_optimizer(m, NN_OPT_ADAM, &o3);
    ck_assert_int_eq(nn_checkpoint_restore_optimizer(&c, &c.model->params, &o3), NN_ERR_ARG);
    nn_optimizer_free(&o3);
    struct nn_optimizer_options oo;
    nn_optimizer_options_default(&oo);
    bool *all = calloc((size_t)m->params.count, sizeof *all);
    for (int i = 0; i < m->params.count; i++) all[i] = !strncmp(m->params.items[i].name, "fc.", 3);
    ck_assert_int_eq(nn_optimizer_init(&o3, &oo, &m->params, all), NN_OK);
    ck_assert_int_eq(nn_checkpoint_restore_optimizer(&c, &c.model->params, &o3), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "trainable"));
    nn_optimizer_free(&o3);
    free(all);

    nn_checkpoint_free(&c);
    nn_optimizer_free(&o);
    nn_optimizer_free(&o2);
    nn_model_free(m);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(checkpoint_keeps_last_and_skips_damaged)
{
    char *dir = make_temp_dir();
    struct nn_model *m = small_model();
    struct nn_optimizer o;
    make_optimizer(m, NN_OPT_MOMENTUM, &o);
    for (int s = 1; s <= 4; s++) {
        step_once(m, &o, 10 + s);
        ck_assert_int_eq(nn_checkpoint_save(dir, s * 10, m, &o, "{}", 2), NN_OK);
    }
    int64_t *steps;
    int n;
    ck_assert_int_eq(nn_checkpoint_list(dir, &steps, &n), NN_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(steps[0], 30);
    ck_assert_int_eq(steps[1], 40);
    free(steps);
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-20.nnm", dir);
    ck_assert_int_ne(access(path, F_OK), 0);

    /* cut the newest model file short: the one before it is used, with a warning */
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-40.nnm", dir);
    ck_assert_int_eq(truncate(path, 4096), 0);
    warnings = 0;
    nn_log_set(count_warnings, NULL, NN_LOG_WARN);
    struct nn_checkpoint c;
    ck_assert_int_eq(nn_checkpoint_load_latest(dir, &c), NN_OK);
    ck_assert_int_eq(c.step, 30);
    ck_assert_int_eq(warnings, 1);
    nn_checkpoint_free(&c);

    /* a flipped byte in the state file of 30 too: nothing usable is left */
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-30.state", dir);
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 200, SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, 200, SEEK_SET);
    fputc(ch ^ 0x40, fp);
    fclose(fp);
    ck_assert_int_eq(nn_checkpoint_load_latest(dir, &c), NN_ERR_NOT_FOUND);
    ck_assert_int_eq(warnings, 3);
    nn_log_set(NULL, NULL, NN_LOG_WARN);

    /* a model without its .state (a save killed in between) is not a checkpoint */
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-50.nnm", dir);
    ck_assert_int_eq(nn_model_save(m, path), NN_OK);
    ck_assert_int_eq(nn_checkpoint_list(dir, &steps, &n), NN_OK);
    ck_assert_int_eq(n, 2);
    free(steps);
    /* temporary files a killed writer left are cleaned */
    snprintf(path, sizeof path, "%s/checkpoints/ckpt-60.nnm.tmp.abcdef", dir);
    fp = fopen(path, "w");
    fclose(fp);
    nn_checkpoint_clean_temps(dir);
    ck_assert_int_ne(access(path, F_OK), 0);

    nn_optimizer_free(&o);
    nn_model_free(m);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_train_ckpt(void)
{
    Suite *s = suite_create("train_ckpt");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, checkpoint_round_trip);
    tcase_add_test(tc, checkpoint_keeps_last_and_skips_damaged);
    suite_add_tcase(s, tc);
    return s;
}
