/* The model commands end to end through the nn binary: import, info,
 * forward (eval and training step) against the golden files, predict on
 * real photos, and clear errors for damaged model files. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "io/npy.h"
#include "tests/testutil.h"

#define GOLDEN "golden/inception_v3/"

static char *dir;
static char model[4200];

static void import_golden(void)
{
    dir = make_temp_dir();
    snprintf(model, sizeof model, "%s/golden.nnm", dir);
    char cmd[9000], *out;
    snprintf(cmd, sizeof cmd, "%s import %s -o %s", nn_bin(), shared_path(GOLDEN "model.safetensors"), model);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "import failed: %s", out);
    free(out);
}

static void cleanup(void)
{
    rm_rf(dir);
    free(dir);
}

static void expect_close(const char *ours, const char *ref_file)
{
    struct nn_npy a, b;
    ck_assert_msg(nn_npy_read(ours, &a) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(nn_npy_read(shared_path(ref_file), &b), NN_OK);
    ck_assert_int_eq(a.count, b.count);
    double maxref = 1;
    for (int64_t i = 0; i < b.count; i++) maxref = fmax(maxref, fabs(((float *)b.data)[i]));
    double d = max_abs_diff(a.data, b.data, (size_t)a.count);
    ck_assert_msg(d <= 1e-4 * maxref, "%s: %g", ref_file, d);
    nn_npy_free(&a);
    nn_npy_free(&b);
}

START_TEST(cli_forward_matches_golden)
{
    if (!have_shared("cli_forward_matches_golden")) return;
    import_golden();
    char cmd[16384], *out, path[4300];
    snprintf(cmd, sizeof cmd, "%s forward %s --input %s --output %s/eval.npy", nn_bin(), model,
             shared_path(GOLDEN "input.npy"), dir);
    ck_assert_int_eq(run_command(cmd, NULL), 0);
    snprintf(path, sizeof path, "%s/eval.npy", dir);
    expect_close(path, GOLDEN "logits_eval.npy");

    char input[4200], labels[4200];
    snprintf(input, sizeof input, "%s", shared_path(GOLDEN "input.npy"));
    snprintf(labels, sizeof labels, "%s", shared_path(GOLDEN "labels.npy"));
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/grads && %s forward %s --input %s --train --labels %s --output %s/train.npy "
             "--aux %s/aux.npy --loss %s/loss.npy --grads %s/grads",
             dir, nn_bin(), model, input, labels, dir, dir, dir, dir);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/train.npy", dir);
    expect_close(path, GOLDEN "logits_train.npy");
    snprintf(path, sizeof path, "%s/aux.npy", dir);
    expect_close(path, GOLDEN "aux_logits_train.npy");
    snprintf(path, sizeof path, "%s/loss.npy", dir);
    expect_close(path, GOLDEN "loss_train.npy");
    /* one gradient file per learned parameter, in PyTorch's layout */
    snprintf(cmd, sizeof cmd, "test $(ls %s/grads | wc -l) -eq 292", dir);
    ck_assert_int_eq(run_command(cmd, NULL), 0);
    struct nn_npy g, ref;
    snprintf(path, sizeof path, "%s/grads/grad_Mixed_5b.branch_pool.conv.weight.npy", dir);
    ck_assert_int_eq(nn_npy_read(path, &g), NN_OK);
    ck_assert_int_eq(nn_npy_read(shared_path(GOLDEN "grad_Mixed_5b.branch_pool.conv.weight.npy"), &ref), NN_OK);
    ck_assert_int_eq(g.ndim, 4);
    for (int d = 0; d < 4; d++) ck_assert_int_eq(g.shape[d], ref.shape[d]);
    double num = 0, den = 0;
    for (int64_t i = 0; i < g.count; i++) {
        double e = ((float *)g.data)[i] - ((float *)ref.data)[i];
        num += e * e;
        den += (double)((float *)ref.data)[i] * ((float *)ref.data)[i];
    }
    ck_assert(sqrt(num / den) <= 1e-2);
    nn_npy_free(&g);
    nn_npy_free(&ref);
    cleanup();
}
END_TEST

START_TEST(cli_predict_and_info)
{
    if (!have_shared("cli_predict_and_info")) return;
    import_golden();
    char cmd[16384], *out;
    snprintf(cmd, sizeof cmd, "%s info %s", nn_bin(), model);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "10 classes"));
    free(out);
    char img0[4200], img1[4200];
    snprintf(img0, sizeof img0, "%s", shared_path("data/hymenoptera/val/ants/10308379_1b6c72e180.jpg"));
    snprintf(img1, sizeof img1, "%s", shared_path("data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg"));
    snprintf(cmd, sizeof cmd, "%s predict %s %s %s --top 3 --batch 2", nn_bin(), model, img0, img1);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    /* two blocks of three lines; probabilities sorted */
    ck_assert_ptr_nonnull(strstr(out, "10308379_1b6c72e180.jpg\n  0."));
    ck_assert_ptr_nonnull(strstr(out, "1032546534_06907fe3b3.jpg\n  0."));
    free(out);
    /* an unreadable photo is reported by name and the exit status says so */
    char gif[4400];
    snprintf(gif, sizeof gif, "%s/not-a-photo.jpg", dir);
    FILE *fp = fopen(gif, "w");
    fputs("GIF89a not really", fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s predict %s %s %s", nn_bin(), model, gif, img0);
    ck_assert_int_eq(run_command(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "not-a-photo.jpg"));
    ck_assert_ptr_nonnull(strstr(out, "10308379_1b6c72e180.jpg\n"));
    free(out);
    cleanup();
}
END_TEST

/* Damages a copy of the model and checks `nn info` refuses it by name. */
static void expect_refused(const char *how, const char *expect)
{
    char cmd[16384], *out, bad[4300];
    snprintf(bad, sizeof bad, "%s/bad.nnm", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s && %s", model, bad, how);
    ck_assert_int_eq(run_command(cmd, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s info %s", nn_bin(), bad);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 1, "%s: exit %d: %s", how, rc, out);
    ck_assert_msg(strstr(out, "bad.nnm") && strstr(out, expect), "%s: message '%s' lacks '%s'", how, out, expect);
    free(out);
}

START_TEST(cli_damaged_model_files)
{
    if (!have_shared("cli_damaged_model_files")) return;
    import_golden();
    char how[9000];
    snprintf(how, sizeof how, "truncate -s 1000000 %s/bad.nnm", dir);
    expect_refused(how, "truncated");
    snprintf(how, sizeof how, "printf '\\377' | dd of=%s/bad.nnm bs=1 seek=30000000 conv=notrunc 2>/dev/null", dir);
    expect_refused(how, "CRC");
    snprintf(how, sizeof how, "printf 'XX' | dd of=%s/bad.nnm bs=1 seek=0 conv=notrunc 2>/dev/null", dir);
    expect_refused(how, "not an nn model file");
    char cmd[9000], *out;
    snprintf(cmd, sizeof cmd, "%s info %s", nn_bin(), shared_path(GOLDEN "model.safetensors"));
    ck_assert_int_eq(run_command(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "not an nn model file"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s info %s/missing.nnm", nn_bin(), dir);
    ck_assert_int_eq(run_command(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "missing.nnm"));
    free(out);
    /* a failed import leaves no output file behind */
    snprintf(cmd, sizeof cmd, "%s import %s -o %s/partial.nnm --num-classes 3; test ! -e %s/partial.nnm", nn_bin(),
             shared_path(GOLDEN "model.safetensors"), dir, dir);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "wrong shape: fc.weight"));
    free(out);
    cleanup();
}
END_TEST

Suite *suite_cli_model(void)
{
    Suite *s = suite_create("cli_model");
    TCase *tc = tcase_create("cli_model");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, cli_forward_matches_golden);
    tcase_add_test(tc, cli_predict_and_info);
    tcase_add_test(tc, cli_damaged_model_files);
    suite_add_tcase(s, tc);
    return s;
}
