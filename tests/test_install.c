/* `make install` into a temporary prefix, then the example program built
 * against the installed copy with pkg-config alone, classifying a real photo
 * the same way the library does in this process. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "tests/testutil.h"

START_TEST(installed_example_classifies)
{
    if (!have_shared("installed_example_classifies")) return;
    const char *build = getenv("NN_BUILD"), *san = getenv("NN_SAN");
    /* The library's compiler (make test CC=...): a sanitized library needs
     * that compiler's sanitizer runtime in the program. */
    const char *cc = getenv("NN_CC") && *getenv("NN_CC") ? getenv("NN_CC") : "cc";
    bool sanitized = san && !strcmp(san, "1");
    char *dir = make_temp_dir(), cmd[16384], *out = NULL, model[4200], photo[4200];
    snprintf(cmd, sizeof cmd, "make -s install PREFIX=%s BUILD=%s SAN=%s >/dev/null", dir, build ? build : "build",
             sanitized ? "1" : "0");
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "make install failed: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "PKG_CONFIG_PATH=%s/lib/pkgconfig %s -std=c11 -Wall -Wextra -Werror %s/share/nn/examples/classify.c "
             "$(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --cflags --libs nn) %s -o %s/classify",
             dir, cc, dir, dir, sanitized ? "-fsanitize=address,undefined" : "", dir);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "building the example failed: %s", out);
    free(out);

    /* a small model (fast under sanitizers) and a real photo */
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = 75;
    const char *names[] = {"ants", "bees", "wasps"};
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, names, 5, &m), NN_OK);
    snprintf(model, sizeof model, "%s/m.nnm", dir);
    ck_assert_int_eq(nn_model_save(m, model), NN_OK);
    snprintf(photo, sizeof photo, "%s", shared_path("data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg"));
    struct nn_ctx *ctx;
    struct nn_class_score want[3];
    ck_assert_int_eq(nn_ctx_new(m, 1, &ctx), NN_OK);
    ck_assert_int_eq(nn_classify_file(ctx, photo, 3, want), NN_OK);
    ck_assert(want[0].probability >= want[1].probability && want[1].probability >= want[2].probability);
    ck_assert(fabsf(want[0].probability + want[1].probability + want[2].probability - 1.0f) < 1e-5f);

    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/lib %s/classify %s %s", dir, dir, model, photo);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "example failed: %s", out);
    char expect[4400];
    snprintf(expect, sizeof expect, "%s: %s %.4f", photo, names[want[0].id], want[0].probability);
    ck_assert_msg(strstr(out, expect), "output '%s' lacks '%s'", out, expect);
    free(out);
    /* a missing photo is reported, with a failing exit status */
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/lib %s/classify %s %s/missing.jpg", dir, dir, model, dir);
    ck_assert_int_eq(run_command(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "missing.jpg"));
    free(out);
    nn_ctx_free(ctx);
    nn_model_free(m);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(classify_api_checks_arguments)
{
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 1, &m), NN_OK);
    struct nn_ctx *ctx;
    ck_assert_int_eq(nn_ctx_new(m, 1, &ctx), NN_OK);
    struct nn_class_score s[2];
    uint8_t rgb[4 * 3 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 20);
    ck_assert_int_eq(nn_classify_rgb8(ctx, rgb, 4, 3, 2, s), NN_OK);
    ck_assert(s[0].probability >= s[1].probability);
    ck_assert_int_eq(nn_classify_rgb8(ctx, rgb, 4, 3, 3, s), NN_ERR_ARG);
    ck_assert_int_eq(nn_classify_rgb8(ctx, rgb, 0, 3, 1, s), NN_ERR_ARG);
    ck_assert_int_eq(nn_classify_rgb8(ctx, NULL, 4, 3, 1, s), NN_ERR_ARG);
    ck_assert_int_eq(nn_classify_encoded(ctx, "not an image", 12, 1, s), NN_ERR_FORMAT);
    ck_assert_int_eq(nn_classify_file(NULL, "x.jpg", 1, s), NN_ERR_ARG);
    nn_ctx_free(ctx);
    nn_model_free(m);
}
END_TEST

Suite *suite_install(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, classify_api_checks_arguments);
    tcase_add_test(tc, installed_example_classifies);
    suite_add_tcase(s, tc);
    return s;
}
