/* The bottleneck-cache path: the heads run on trunk outputs computed by a
 * separate inference net must give what the whole training network gives,
 * step after step (logits, loss, gradients, updated weights and the aux
 * head's moving statistics). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "nn/model.h"
#include "nn/net.h"
#include "tests/testutil.h"
#include "train/heads.h"
#include "train/optimizer.h"

#define SIZE 75
#define BATCH 3
#define CLASSES 4

static bool *heads_only(const struct nn_model *m)
{
    bool *tr = calloc((size_t)m->params.count, sizeof *tr);
    for (int i = 0; i < m->params.count; i++) {
        const char *n = m->params.items[i].name;
        tr[i] = !strncmp(n, "fc.", 3) || !strncmp(n, "AuxLogits.", 10);
    }
    return tr;
}

static void check_same(const char *what, const float *a, const float *b, size_t n)
{
    double d = max_abs_diff(a, b, n);
    ck_assert_msg(d == 0.0, "%s: the cached path differs by %g", what, d);
}

static void run_equivalence(float aux_weight, float smoothing)
{
    struct nn_config cfg = nn_config_default(CLASSES);
    cfg.image_size = SIZE;
    struct nn_model *a, *b;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 7, &a), NN_OK);
    /* non-trivial moving statistics so inference-mode batch norm matters */
    for (int i = 0; i < a->params.count; i++) {
        struct nn_param *p = &a->params.items[i];
        float *d = nn_param_data(&a->params, i);
        if (p->kind == NN_PARAM_BN_MEAN) fill_uniform(d, p->count, -0.2f, 0.2f, 100 + i);
        if (p->kind == NN_PARAM_BN_VAR) fill_uniform(d, p->count, 0.5f, 2.0f, 200 + i);
    }
    ck_assert_int_eq(nn_model_clone(a, &b), NN_OK);
    bool *tr = heads_only(a);

    struct nn_net full, trunk;
    struct nn_heads h;
    ck_assert_int_eq(nn_net_init(&full, &a->cfg, &a->params, BATCH, tr), NN_OK);
    ck_assert_int_eq(nn_net_init(&trunk, &b->cfg, &b->params, BATCH, NULL), NN_OK);
    ck_assert_int_eq(nn_heads_init(&h, &b->cfg, &b->params, BATCH, tr), NN_OK);
    nn_rng_seed(&full.dropout_rng, 42, 3);
    nn_rng_seed(&h.dropout_rng, 42, 3);

    struct nn_optimizer_options oo;
    nn_optimizer_options_default(&oo);
    struct nn_optimizer oa, ob;
    ck_assert_int_eq(nn_optimizer_init(&oa, &oo, &a->params, tr), NN_OK);
    ck_assert_int_eq(nn_optimizer_init(&ob, &oo, &b->params, tr), NN_OK);

    size_t img = (size_t)SIZE * SIZE * 3;
    float *x = nn_alloc(BATCH * img * sizeof(float));
    float *pre = nn_alloc((size_t)BATCH * h.features * sizeof(float));
    float *aux = nn_alloc((size_t)BATCH * h.aux_floats * sizeof(float));
    int32_t labels[BATCH];
    for (int s = 0; s < 4; s++) {
        int n = s == 3 ? BATCH - 1 : BATCH; /* a short batch too */
        fill_uniform(x, n * img, -1.0f, 1.0f, 1000 + s);
        for (int i = 0; i < n; i++) labels[i] = (s + i) % CLASSES;
        ck_assert_int_eq(nn_net_forward(&full, x, n, true, true), NN_OK);
        nn_net_zero_grads(&full);
        double la, lb;
        ck_assert_int_eq(nn_net_backward(&full, labels, smoothing, aux_weight, &la), NN_OK);

        ck_assert_int_eq(nn_net_forward(&trunk, x, n, false, false), NN_OK);
        memcpy(pre, nn_net_pre_logits(&trunk), (size_t)n * h.features * sizeof(float));
        nn_heads_pool_aux(&h, nn_net_aux_input(&trunk), n, aux);
        ck_assert_int_eq(nn_heads_forward(&h, pre, aux, n, true, true), NN_OK);
        nn_heads_zero_grads(&h);
        ck_assert_int_eq(nn_heads_backward(&h, labels, smoothing, aux_weight, &lb), NN_OK);

        check_same("pre_logits", nn_net_pre_logits(&full), pre, (size_t)n * h.features);
        check_same("logits", nn_net_logits(&full), nn_heads_logits(&h), (size_t)n * CLASSES);
        check_same("aux logits", nn_net_aux_logits(&full), nn_heads_aux_logits(&h), (size_t)n * CLASSES);
        ck_assert_msg(la == lb, "loss %.17g vs %.17g", la, lb);
        for (int i = 0; i < a->params.count; i++)
            if (tr[i]) check_same(a->params.items[i].name, full.grads + a->params.items[i].offset,
                                  h.grads + b->params.items[i].offset, a->params.items[i].count);
        nn_optimizer_step(&oa, &a->params, full.grads, 0.01f);
        nn_optimizer_step(&ob, &b->params, h.grads, 0.01f);
        /* every parameter, moving statistics included */
        check_same("parameters", a->params.data, b->params.data, a->params.total);
    }
    /* inference mode too */
    ck_assert_int_eq(nn_net_forward(&full, x, BATCH, false, false), NN_OK);
    ck_assert_int_eq(nn_net_forward(&trunk, x, BATCH, false, false), NN_OK);
    nn_heads_pool_aux(&h, nn_net_aux_input(&trunk), BATCH, aux);
    ck_assert_int_eq(nn_heads_forward(&h, nn_net_pre_logits(&trunk), aux, BATCH, false, false), NN_OK);
    check_same("eval logits", nn_net_logits(&full), nn_heads_logits(&h), (size_t)BATCH * CLASSES);

    nn_free(x);
    nn_free(pre);
    nn_free(aux);
    nn_optimizer_free(&oa);
    nn_optimizer_free(&ob);
    nn_heads_free(&h);
    nn_net_free(&full);
    nn_net_free(&trunk);
    free(tr);
    nn_model_free(a);
    nn_model_free(b);
}

START_TEST(heads_equal_whole_network) { run_equivalence(0.4f, 0.0f); }
END_TEST

START_TEST(heads_equal_without_aux_loss) { run_equivalence(0.0f, 0.1f); }
END_TEST

START_TEST(heads_refuse_trainable_trunk)
{
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = SIZE;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 1, &m), NN_OK);
    bool *tr = heads_only(m);
    ck_assert(nn_heads_cover(&m->params, tr));
    tr[nn_params_find(&m->params, "Mixed_7c.branch1x1.conv.weight")] = true;
    ck_assert(!nn_heads_cover(&m->params, tr));
    struct nn_heads h;
    ck_assert_int_eq(nn_heads_init(&h, &m->cfg, &m->params, 2, tr), NN_ERR_ARG);
    free(tr);
    nn_model_free(m);
}
END_TEST

/* Label smoothing enters the loss and the gradients as specified: targets
 * (1 - s) one-hot + s/K; the loss is the batch mean of -sum t log p, and
 * the fc bias gradient the batch mean of p - t. */
START_TEST(heads_label_smoothing_by_formula)
{
    struct nn_config cfg = nn_config_default(CLASSES);
    cfg.image_size = SIZE;
    cfg.aux_logits = false;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 3, &m), NN_OK);
    fill_uniform(nn_param_data(&m->params, nn_params_find(&m->params, "fc.weight")), 2048 * CLASSES, -0.05f, 0.05f, 9);
    bool *tr = heads_only(m);
    struct nn_heads h;
    ck_assert_int_eq(nn_heads_init(&h, &m->cfg, &m->params, BATCH, tr), NN_OK);
    float *pre = nn_alloc((size_t)BATCH * h.features * sizeof(float));
    fill_uniform(pre, (size_t)BATCH * h.features, 0, 2, 5);
    const int32_t labels[BATCH] = {1, 3, 0};
    const float s = 0.2f;
    ck_assert_int_eq(nn_heads_forward(&h, pre, NULL, BATCH, true, false), NN_OK);
    nn_heads_zero_grads(&h);
    double loss;
    ck_assert_int_eq(nn_heads_backward(&h, labels, s, 0.4f, &loss), NN_OK);
    const float *z = nn_heads_logits(&h);
    const float *db = h.grads + m->params.items[nn_params_find(&m->params, "fc.bias")].offset;
    double want = 0, dbias[CLASSES] = {0};
    for (int n = 0; n < BATCH; n++) {
        double mx = z[n * CLASSES], sum = 0;
        for (int k = 1; k < CLASSES; k++) mx = fmax(mx, z[n * CLASSES + k]);
        for (int k = 0; k < CLASSES; k++) sum += exp(z[n * CLASSES + k] - mx);
        for (int k = 0; k < CLASSES; k++) {
            double t = s / CLASSES + (k == labels[n] ? 1 - s : 0), p = exp(z[n * CLASSES + k] - mx) / sum;
            want -= t * log(p) / BATCH;
            dbias[k] += (p - t) / BATCH;
        }
    }
    ck_assert_double_eq_tol(loss, want, 1e-6);
    for (int k = 0; k < CLASSES; k++) ck_assert_double_eq_tol(db[k], dbias[k], 1e-6);
    nn_free(pre);
    nn_heads_free(&h);
    free(tr);
    nn_model_free(m);
}
END_TEST

Suite *suite_train_heads(void)
{
    Suite *s = suite_create("train_heads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, heads_equal_whole_network);
    tcase_add_test(tc, heads_equal_without_aux_loss);
    tcase_add_test(tc, heads_refuse_trainable_trunk);
    tcase_add_test(tc, heads_label_smoothing_by_formula);
    suite_add_tcase(s, tc);
    return s;
}
