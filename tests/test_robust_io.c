/* Defects of issue 9 in what nn writes and parses, each with the case that
 * showed it: JSON output that was not JSON (NaN, names that are not
 * UTF-8), a class name refused only when saved, size arithmetic that
 * wraps (HTTP Content-Length, record index offsets), dataset.json numbers
 * cast without a check, duplicate JSON keys, and a class lookup that made
 * reading a large descriptor quadratic. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "io/json.h"
#include "nn/model.h"
#include "tests/testutil.h"
#include "tests/train_data.h"

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    ck_assert_ptr_nonnull(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* ---- JSON output ---- */

START_TEST(json_string_output_is_always_utf8)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    /* Latin-1 e-acute, a lone continuation byte, a cut-short sequence, an
     * overlong '/', then valid two- and four-byte sequences */
    nn_strbuf_json_string(&b, "caf\xe9 \x80 \xe2\x82 \xc0\xaf ok \xc3\xa9\xf0\x9f\x98\x80");
    ck_assert(!b.failed);
    ck_assert_str_eq(b.data, "\"caf\\ufffd \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd ok \xc3\xa9\xf0\x9f\x98\x80\"");
    ck_assert(nn_utf8_valid(b.data, b.len));
    struct nn_json *j;
    ck_assert_msg(nn_json_parse(b.data, b.len, &j) == NN_OK, "%s", nn_last_error());
    nn_json_free(j);
    nn_strbuf_free(&b);

    ck_assert(nn_utf8_valid("", 0));
    ck_assert(!nn_utf8_valid("\xed\xa0\x80", 3)); /* a surrogate */
    ck_assert(!nn_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
}
END_TEST

/* nn_model_new took a name that nn_model_save refused much later. */
START_TEST(model_refuses_non_utf8_class_names_at_once)
{
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    const char *bad[] = {"ants", "b\xe9" "es"};
    struct nn_model *m = (struct nn_model *)1;
    ck_assert_int_eq(nn_model_new(&cfg, bad, 1, &m), NN_ERR_ARG);
    ck_assert_msg(strstr(nn_last_error(), "class name 1") && strstr(nn_last_error(), "UTF-8"), "%s",
                  nn_last_error());
    const char *good[] = {"ants", "b\xc3\xa9\x65s"};
    ck_assert_int_eq(nn_model_new(&cfg, good, 1, &m), NN_OK);
    ck_assert_int_eq(nn_model_set_class_names(m, bad, 2), NN_ERR_ARG);
    ck_assert_str_eq(nn_model_class_name(m, 1), "b\xc3\xa9\x65s"); /* unchanged */
    nn_model_free(m);
}
END_TEST

/* nn predict --json printed "-nan" for a model of NaNs and a Latin-1 file
 * name raw: neither is JSON. */
START_TEST(predict_json_is_json_for_nan_and_latin1_names)
{
    char *dir = make_temp_dir();
    make_color_photos(dir, 1, 1, 0, 80, 21);
    char *from = path_in(dir, "train/class0/img000.jpg"), *to = path_in(dir, "caf\xe9.jpg");
    ck_assert_int_eq(rename(from, to), 0);
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 1, &m), NN_OK);
    int fc = nn_params_find(&m->params, "fc.weight");
    ck_assert_int_ge(fc, 0);
    for (size_t k = 0; k < m->params.items[fc].count; k++) nn_param_data(&m->params, fc)[k] = NAN;
    char *model = path_in(dir, "nan.nnm");
    ck_assert_int_eq(nn_model_save(m, model), NN_OK);
    nn_model_free(m);

    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' predict '%s' '%s' --json 2>/dev/null", nn_bin(), model, to);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_ptr_nonnull(out);
    struct nn_json *j;
    ck_assert_msg(nn_json_parse(out, strlen(out), &j) == NN_OK, "not JSON (%s): %s", nn_last_error(), out);
    ck_assert_ptr_nonnull(strstr(nn_json_string(nn_json_get(j, "image")), "caf\xef\xbf\xbd.jpg"));
    const struct nn_json *p = nn_json_get(j, "predictions");
    ck_assert_int_eq(nn_json_len(p), 2);
    ck_assert_int_eq(nn_json_type(nn_json_get(nn_json_at(p, 0), "probability")), NN_JSON_NULL);
    nn_json_free(j);
    free(out);
    free(model);
    free(from);
    free(to);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_robust_io(void)
{
    Suite *s = suite_create("robust_io");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, json_string_output_is_always_utf8);
    tcase_add_test(tc, model_refuses_non_utf8_class_names_at_once);
    tcase_add_test(tc, predict_json_is_json_for_nan_and_latin1_names);
    suite_add_tcase(s, tc);
    return s;
}
