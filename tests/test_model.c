/* The model layer: import from safetensors (the real ImageNet trunk and
 * the golden checkpoint), save/load, freezing, small input sizes and the
 * thread-safety of shared models. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "nn/net.h"
#include "tests/testutil.h"

static const char *const trunk_missing[] = {"fc", "AuxLogits", "Mixed_7b.branch3x3dbl_2", "Mixed_7c.branch3x3dbl_2"};

static bool under(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(name, prefix, n) && (name[n] == '.' || name[n] == '\0');
}

START_TEST(import_real_trunk_reports_fresh_tensors)
{
    if (!have_shared("import_real_trunk_reports_fresh_tensors")) return;
    const char *path = shared_path("weights/inception_v3_imagenet2015.safetensors");
    struct nn_import_options opt = {.num_classes = 2, .aux_logits = true, .seed = 3,
                                    .exclude = trunk_missing, .nexclude = 4};
    struct nn_model *m;
    struct nn_import_report rep;
    ck_assert_msg(nn_model_import(path, &opt, &m, &rep) == NN_OK, "%s", nn_last_error());
    /* exactly the excluded tensors were initialised fresh */
    int expected = 0;
    for (int i = 0; i < m->params.count; i++) {
        const char *name = m->params.items[i].name;
        bool excl = false;
        for (int k = 0; k < 4; k++) excl |= under(name, trunk_missing[k]);
        expected += excl;
        bool reported = false;
        for (int k = 0; k < rep.nfresh; k++) reported |= !strcmp(rep.fresh[k], name);
        ck_assert_msg(reported == excl, "%s: reported fresh %d, excluded %d", name, reported, excl);
    }
    ck_assert_int_eq(rep.nfresh, expected);
    ck_assert_int_eq(rep.loaded + rep.nfresh, m->params.count);
    /* the loaded trunk holds the file's values, in nn's layout */
    struct nn_safetensors *st;
    ck_assert_int_eq(nn_safetensors_open(path, &st), NN_OK);
    int compared = 0;
    for (int i = 0; i < nn_safetensors_count(st); i++) {
        const struct nn_st_tensor *t = nn_safetensors_at(st, i);
        int p = nn_params_find(&m->params, t->name);
        ck_assert_msg(p >= 0, "%s not in the model", t->name);
        const struct nn_param *par = &m->params.items[p];
        float *raw = nn_alloc(par->count * sizeof(float)), *ours = nn_alloc(par->count * sizeof(float));
        nn_st_to_f32(t, raw);
        nn_param_to_torch(par, nn_param_data(&m->params, p), ours);
        ck_assert_msg(memcmp(raw, ours, par->count * sizeof(float)) == 0, "%s differs from the file", t->name);
        nn_free(raw);
        nn_free(ours);
        compared++;
    }
    ck_assert_int_eq(compared, rep.loaded);
    nn_safetensors_close(st);
    /* fresh batch-norm statistics are the identity, fresh heads are small */
    int v = nn_params_find(&m->params, "Mixed_7b.branch3x3dbl_2.bn.running_var");
    ck_assert_float_eq(nn_param_data(&m->params, v)[0], 1.0f);
    nn_import_report_free(&rep);
    nn_model_free(m);
}
END_TEST

START_TEST(import_without_exclude_lists_missing)
{
    if (!have_shared("import_without_exclude_lists_missing")) return;
    struct nn_import_options opt = {.num_classes = 2, .aux_logits = true};
    struct nn_model *m = NULL;
    struct nn_import_report rep;
    enum nn_status st = nn_model_import(shared_path("weights/inception_v3_imagenet2015.safetensors"), &opt, &m, &rep);
    ck_assert_int_eq(st, NN_ERR_FORMAT);
    ck_assert_ptr_null(m);
    const char *msg = nn_last_error();
    ck_assert_ptr_nonnull(strstr(msg, "inception_v3_imagenet2015.safetensors"));
    ck_assert_ptr_nonnull(strstr(msg, "missing: fc.weight"));
    ck_assert_ptr_nonnull(strstr(msg, "missing: AuxLogits.conv0.conv.weight"));
    ck_assert_ptr_nonnull(strstr(msg, "missing: Mixed_7b.branch3x3dbl_2.conv.weight"));
    ck_assert_ptr_null(strstr(msg, "missing: Mixed_7b.branch1x1.conv.weight"));
    /* a wrong class count is a shape error naming the tensor */
    struct nn_import_options opt2 = {.num_classes = 3, .aux_logits = true};
    st = nn_model_import(shared_path("golden/inception_v3/model.safetensors"), &opt2, &m, &rep);
    ck_assert_int_eq(st, NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "wrong shape: fc.weight is [10,2048], expected [3,2048]"));
}
END_TEST

static struct nn_model *golden_model(void)
{
    struct nn_import_options opt = {.num_classes = 10, .aux_logits = true};
    struct nn_import_report rep;
    struct nn_model *m;
    ck_assert_msg(nn_model_import(shared_path("golden/inception_v3/model.safetensors"), &opt, &m, &rep) == NN_OK,
                  "%s", nn_last_error());
    nn_import_report_free(&rep);
    return m;
}

static float *random_images(int n, int size, unsigned seed)
{
    size_t count = (size_t)n * size * size * 3;
    float *x = nn_alloc(count * sizeof(float));
    fill_uniform(x, count, -1, 1, seed);
    return x;
}

START_TEST(save_load_roundtrip_and_freeze)
{
    if (!have_shared("save_load_roundtrip_and_freeze")) return;
    struct nn_model *m = golden_model();
    const char *names[10] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j\"quoted\""};
    ck_assert_int_eq(nn_model_set_class_names(m, names, 10), NN_OK);
    char *dir = make_temp_dir(), path[4096], frozen_path[4096];
    snprintf(path, sizeof path, "%s/m.nnm", dir);
    snprintf(frozen_path, sizeof frozen_path, "%s/frozen.nnm", dir);
    ck_assert_int_eq(nn_model_save(m, path), NN_OK);
    struct nn_model *back;
    ck_assert_msg(nn_model_load(path, &back) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(back->params.count, m->params.count);
    ck_assert(memcmp(back->params.data, m->params.data, m->params.total * sizeof(float)) == 0);
    ck_assert_str_eq(nn_model_class_name(back, 9), "j\"quoted\"");
    ck_assert(back->cfg.aux_logits && !back->cfg.folded && back->cfg.num_classes == 10);

    struct nn_model *frozen, *frozen_back;
    ck_assert_int_eq(nn_model_freeze(m, &frozen), NN_OK);
    ck_assert(frozen->cfg.folded && !frozen->cfg.aux_logits);
    ck_assert_int_eq(nn_model_save(frozen, frozen_path), NN_OK);
    ck_assert_int_eq(nn_model_load(frozen_path, &frozen_back), NN_OK);
    ck_assert(frozen_back->cfg.folded);
    /* the frozen model computes the same logits as the original in eval mode */
    float *x = random_images(2, 299, 5), a[20], b[20];
    struct nn_ctx *ca, *cb;
    ck_assert_int_eq(nn_ctx_new(back, 2, &ca), NN_OK);
    ck_assert_int_eq(nn_ctx_new(frozen_back, 2, &cb), NN_OK);
    ck_assert_int_eq(nn_infer(ca, x, 2, a), NN_OK);
    ck_assert_int_eq(nn_infer(cb, x, 2, b), NN_OK);
    ck_assert_msg(max_abs_diff(a, b, 20) <= 1e-4, "frozen differs by %g", max_abs_diff(a, b, 20));
    /* a frozen model cannot be trained */
    bool *trainable = calloc((size_t)frozen->params.count, 1);
    struct nn_net net;
    ck_assert_int_eq(nn_net_init(&net, &frozen->cfg, &frozen->params, 1, trainable), NN_ERR_UNSUPPORTED);
    free(trainable);
    nn_ctx_free(ca);
    nn_ctx_free(cb);
    nn_free(x);
    nn_model_free(frozen);
    nn_model_free(frozen_back);
    nn_model_free(back);
    nn_model_free(m);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(small_inputs_shrink_the_aux_head)
{
    /* 75 is the smallest input; the aux head's kernels shrink (TF-slim's rule) */
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_msg(nn_model_new(&cfg, NULL, 1, &m) == NN_OK, "%s", nn_last_error());
    int conv1 = nn_params_find(&m->params, "AuxLogits.conv1.conv.weight");
    ck_assert_int_eq(m->params.items[conv1].shape[0], 1);
    bool *trainable = malloc((size_t)m->params.count);
    memset(trainable, 1, (size_t)m->params.count);
    struct nn_net net;
    ck_assert_int_eq(nn_net_init(&net, &cfg, &m->params, 2, trainable), NN_OK);
    float *x = random_images(2, 75, 9);
    int32_t labels[2] = {0, 2};
    double loss;
    ck_assert_int_eq(nn_net_forward(&net, x, 2, true, true), NN_OK);
    ck_assert_int_eq(nn_net_backward(&net, labels, 0.1f, 0.4f, &loss), NN_OK);
    ck_assert(isfinite(loss) && loss > 0);
    nn_net_free(&net);
    cfg.image_size = 74;
    struct nn_model *bad = NULL;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 1, &bad), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "at least 75"));
    free(trainable);
    nn_free(x);
    nn_model_free(m);
}
END_TEST

struct infer_job {
    const struct nn_model *m;
    const float *x;
    float logits[2 * 3];
    enum nn_status st;
};

static void *infer_thread(void *arg)
{
    struct infer_job *j = arg;
    struct nn_ctx *ctx;
    j->st = nn_ctx_new(j->m, 2, &ctx);
    for (int r = 0; r < 3 && j->st == NN_OK; r++) j->st = nn_infer(ctx, j->x, 2, j->logits);
    nn_ctx_free(ctx);
    return NULL;
}

START_TEST(one_model_many_threads)
{
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = 107;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 4, &m), NN_OK);
    float *x = random_images(2, 107, 11);
    float ref[6];
    struct nn_ctx *ctx;
    ck_assert_int_eq(nn_ctx_new(m, 2, &ctx), NN_OK);
    ck_assert_int_eq(nn_infer(ctx, x, 2, ref), NN_OK);
    /* batch 1 gives the same row */
    float one[3];
    ck_assert_int_eq(nn_infer(ctx, x, 1, one), NN_OK);
    ck_assert(max_abs_diff(one, ref, 3) <= 1e-5);
    ck_assert_int_eq(nn_infer(ctx, x, 3, one), NN_ERR_ARG);
    nn_ctx_free(ctx);
    pthread_t tids[3];
    struct infer_job jobs[3];
    for (int t = 0; t < 3; t++) {
        jobs[t] = (struct infer_job){.m = m, .x = x};
        pthread_create(&tids[t], NULL, infer_thread, &jobs[t]);
    }
    for (int t = 0; t < 3; t++) {
        pthread_join(tids[t], NULL);
        ck_assert_int_eq(jobs[t].st, NN_OK);
        ck_assert_msg(max_abs_diff(jobs[t].logits, ref, 6) <= 1e-5, "thread %d differs", t);
    }
    nn_free(x);
    nn_model_free(m);
}
END_TEST

/* Contexts created and used from 8 threads at once on one model, each with
 * its own batch size (so each plans its own buffers), against a run on one
 * thread. Planning once sorted through a global pointer that concurrent
 * nn_ctx_new calls overwrote for each other; ThreadSanitizer (make test
 * TSAN=1) reports any such sharing even when the answers happen to agree. */
struct ctx_job {
    const struct nn_model *m;
    const float *x;
    int max_batch;
    float logits[2 * 3];
    enum nn_status st;
    char error[256];
};

static void *ctx_thread(void *arg)
{
    struct ctx_job *j = arg;
    struct nn_ctx *ctx = NULL;
    j->st = nn_ctx_new(j->m, j->max_batch, &ctx);
    if (j->st == NN_OK) j->st = nn_infer(ctx, j->x, 2, j->logits);
    if (j->st != NN_OK) snprintf(j->error, sizeof j->error, "%s", nn_last_error());
    nn_ctx_free(ctx);
    return NULL;
}

START_TEST(contexts_from_eight_threads)
{
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_msg(nn_model_new(&cfg, NULL, 5, &m) == NN_OK, "%s", nn_last_error());
    float *x = random_images(2, 75, 12);
    float ref[6];
    struct nn_ctx *ctx;
    ck_assert_int_eq(nn_ctx_new(m, 2, &ctx), NN_OK);
    ck_assert_int_eq(nn_infer(ctx, x, 2, ref), NN_OK);
    nn_ctx_free(ctx);
    enum { T = 8 };
    pthread_t tids[T];
    struct ctx_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (struct ctx_job){.m = m, .x = x, .max_batch = 2 + t % 3};
        ck_assert_int_eq(pthread_create(&tids[t], NULL, ctx_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++) pthread_join(tids[t], NULL);
    for (int t = 0; t < T; t++) {
        ck_assert_msg(jobs[t].st == NN_OK, "thread %d: %s", t, jobs[t].error);
        ck_assert_msg(max_abs_diff(jobs[t].logits, ref, 6) <= 1e-5, "thread %d differs", t);
    }
    nn_free(x);
    nn_model_free(m);
}
END_TEST

Suite *suite_model(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, import_real_trunk_reports_fresh_tensors);
    tcase_add_test(tc, import_without_exclude_lists_missing);
    tcase_add_test(tc, save_load_roundtrip_and_freeze);
    tcase_add_test(tc, small_inputs_shrink_the_aux_head);
    tcase_add_test(tc, one_model_many_threads);
    suite_add_tcase(s, tc);
    /* The concurrency tests, also run under ThreadSanitizer (CK_RUN_CASE=concurrency). */
    TCase *conc = tcase_create("concurrency");
    tcase_set_timeout(conc, 600);
    tcase_add_test(conc, contexts_from_eight_threads);
    suite_add_tcase(s, conc);
    return s;
}
