/* io/synth.h: the synthetic photo set converts like a user's folders would,
 * and a seed fixes its bytes. Also the `nn synth` and `nn init` commands. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "io/dataset.h"
#include "io/synth.h"
#include "nn/nn.h"
#include "tests/testutil.h"

static bool same_file(const char *a, const char *b)
{
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    ck_assert_msg(nn_read_file(a, &da, &la) == NN_OK, "%s", nn_last_error());
    ck_assert_msg(nn_read_file(b, &db, &lb) == NN_OK, "%s", nn_last_error());
    bool same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

START_TEST(synth_converts_with_expected_counts)
{
    char *dir = make_temp_dir();
    char src[4096], out[4096];
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(out, sizeof out, "%s/data", dir);
    ck_assert_msg(nn_synth_photos(src, 3, 4, 2, 40, 9) == NN_OK, "%s", nn_last_error());
    struct nn_convert_options co;
    nn_convert_options_default(&co);
    co.threads = 2;
    struct nn_convert_summary sum;
    ck_assert_msg(nn_dataset_convert(src, out, &co, &sum) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(sum.num_classes, 3);
    ck_assert_int_eq(sum.examples[NN_SPLIT_TRAIN], 12);
    ck_assert_int_eq(sum.examples[NN_SPLIT_VALIDATION], 6);
    ck_assert_int_eq(sum.skipped, 0);
    struct nn_dataset_desc d;
    ck_assert_msg(nn_dataset_desc_read(out, &d) == NN_OK, "%s", nn_last_error());
    ck_assert_str_eq(d.split_mode, "folders");
    for (int c = 0; c < 3; c++) {
        char name[16];
        snprintf(name, sizeof name, "class%d", c);
        ck_assert_str_eq(d.classes[c], name);
        ck_assert_int_eq(d.split[NN_SPLIT_TRAIN].per_class[c], 4);
        ck_assert_int_eq(d.split[NN_SPLIT_VALIDATION].per_class[c], 2);
    }
    ck_assert_int_eq(d.min_width, 40);
    ck_assert_int_eq(d.max_height, 40);
    nn_dataset_desc_free(&d);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(synth_is_deterministic_for_a_seed)
{
    char *dir = make_temp_dir();
    char a[4096], b[4096], c[4096], fa[4200], fb[4200], fc[4200];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    ck_assert(nn_synth_photos(a, 2, 3, 1, 32, 5) == NN_OK);
    ck_assert(nn_synth_photos(b, 2, 3, 1, 32, 5) == NN_OK);
    ck_assert(nn_synth_photos(c, 2, 3, 1, 32, 6) == NN_OK);
    const char *files[] = {"train/class0/img000.jpg", "train/class1/img002.jpg", "validation/class1/img000.jpg"};
    for (int i = 0; i < 3; i++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
        snprintf(fc, sizeof fc, "%s/%s", c, files[i]);
        ck_assert_msg(same_file(fa, fb), "%s differs between two runs with one seed", files[i]);
        ck_assert_msg(!same_file(fa, fc), "%s is the same for seeds 5 and 6", files[i]);
    }
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(synth_rejects_bad_arguments)
{
    char *dir = make_temp_dir();
    char src[4096];
    snprintf(src, sizeof src, "%s/src", dir);
    ck_assert_int_eq(nn_synth_photos(src, 2, 1, 1, 4, 1), NN_ERR_ARG);
    ck_assert_int_eq(nn_synth_photos(src, 0, 1, 1, 32, 1), NN_ERR_ARG);
    ck_assert_int_eq(nn_synth_photos(src, 2, 0, 1, 32, 1), NN_ERR_ARG);
    ck_assert(nn_synth_photos(src, 1, 1, 0, 16, 1) == NN_OK);
    /* A second set over the first would mix photos of two seeds. */
    ck_assert_int_eq(nn_synth_photos(src, 1, 1, 0, 16, 1), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "already exists"));
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(cli_synth_and_init)
{
    char *dir = make_temp_dir();
    char cmd[8192], path[4200];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' synth '%s/photos' --classes 2 --train 3 --val 1 --size 24 --seed 4", nn_bin(), dir);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "%s", out ? out : "");
    free(out);
    snprintf(path, sizeof path, "%s/photos/validation/class1/img000.jpg", dir);
    ck_assert_msg(access(path, F_OK) == 0, "%s missing", path);

    snprintf(cmd, sizeof cmd, "'%s' init -o '%s/m.nnm' --num-classes 3 --image-size 80 --no-aux --seed 2", nn_bin(),
             dir);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "%s", out ? out : "");
    free(out);
    snprintf(path, sizeof path, "%s/m.nnm", dir);
    struct nn_model *m = NULL;
    ck_assert_msg(nn_model_load(path, &m) == NN_OK, "%s", nn_last_error());
    const struct nn_config *cfg = nn_model_config(m);
    ck_assert_int_eq(cfg->num_classes, 3);
    ck_assert_int_eq(cfg->image_size, 80);
    ck_assert(!cfg->aux_logits);
    nn_model_free(m);

    /* Bad usage is exit status 2, not a crash or a silent default. */
    snprintf(cmd, sizeof cmd, "'%s' init -o '%s/x.nnm' --num-classes 0", nn_bin(), dir);
    ck_assert_int_eq(run_command(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' synth '%s/p2' --size 3", nn_bin(), dir);
    ck_assert_int_eq(run_command(cmd, &out), 2);
    free(out);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_synth(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, synth_converts_with_expected_counts);
    tcase_add_test(tc, synth_is_deterministic_for_a_seed);
    tcase_add_test(tc, synth_rejects_bad_arguments);
    tcase_add_test(tc, cli_synth_and_init);
    suite_add_tcase(s, tc);
    return s;
}
