/* Optimizers and learning-rate schedules against their formulas, computed
 * here by hand in double precision. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/params.h"
#include "tests/testutil.h"
#include "train/optimizer.h"
#include "train/schedule.h"

/* A table of four parameters: a conv weight (decayed), a batch-norm gamma
 * (not decayed), a running mean (never learned) and an fc weight (decayed). */
static void make_table(struct nn_params *t)
{
    memset(t, 0, sizeof *t);
    int s4[4] = {1, 1, 2, 3}, s1[1] = {3}, s2[2] = {2, 2};
    ck_assert_int_ge(nn_params_add(t, "a.conv.weight", NN_PARAM_CONV_W, 4, s4), 0);
    ck_assert_int_ge(nn_params_add(t, "a.bn.weight", NN_PARAM_BN_GAMMA, 1, s1), 0);
    ck_assert_int_ge(nn_params_add(t, "a.bn.running_mean", NN_PARAM_BN_MEAN, 1, s1), 0);
    ck_assert_int_ge(nn_params_add(t, "fc.weight", NN_PARAM_FC_W, 2, s2), 0);
    ck_assert_int_eq(nn_params_alloc(t), NN_OK);
    for (size_t k = 0; k < t->total; k++) t->data[k] = 0.5f - 0.1f * (float)k;
}

static float *make_grads(const struct nn_params *t, unsigned seed)
{
    float *g = calloc(t->total, sizeof *g);
    fill_uniform(g, t->total, -2.0f, 2.0f, seed);
    return g;
}

enum { SGD, MOM, RMS, ADAM };

/* The reference: `steps` updates of every parameter marked in `tr` with the
 * given kind, in double precision, straight from the formulas. */
static void reference(int kind, const struct nn_params *t, const bool *tr, float *const *grads, int steps,
                      const float *lrs, const struct nn_optimizer_options *o, double *w)
{
    size_t n = t->total;
    double *s0 = calloc(n, sizeof *s0), *s1 = calloc(n, sizeof *s1);
    for (size_t k = 0; k < n; k++) {
        w[k] = t->data[k];
        s0[k] = kind == RMS ? 1.0 : 0.0; /* TF starts the mean square at one */
    }
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < t->count; i++) {
            const struct nn_param *p = &t->items[i];
            if (!tr[i] || !nn_param_learned(p)) continue;
            double wd = nn_param_decayed(p) ? o->weight_decay : 0.0;
            for (size_t k = p->offset; k < p->offset + p->count; k++) {
                double g = grads[s][k] + wd * w[k], lr = lrs[s];
                switch (kind) {
                case SGD: w[k] -= lr * g; break;
                case MOM:
                    s0[k] = o->momentum * s0[k] + g;
                    w[k] -= lr * s0[k];
                    break;
                case RMS:
                    s0[k] = o->rms_decay * s0[k] + (1 - o->rms_decay) * g * g;
                    s1[k] = o->momentum * s1[k] + lr * g / sqrt(s0[k] + o->epsilon);
                    w[k] -= s1[k];
                    break;
                case ADAM: {
                    double t1 = s + 1;
                    s0[k] = o->beta1 * s0[k] + (1 - o->beta1) * g;
                    s1[k] = o->beta2 * s1[k] + (1 - o->beta2) * g * g;
                    double lr_t = lr * sqrt(1 - pow(o->beta2, t1)) / (1 - pow(o->beta1, t1));
                    w[k] -= lr_t * s0[k] / (sqrt(s1[k]) + o->epsilon);
                    break;
                }
                }
            }
        }
    }
    free(s0);
    free(s1);
}

static void check_kind(int kind, float epsilon)
{
    struct nn_params t;
    make_table(&t);
    struct nn_optimizer_options o;
    nn_optimizer_options_default(&o);
    o.kind = (enum nn_optimizer_kind)kind;
    o.weight_decay = 0.01f; /* large enough to show in the result */
    o.epsilon = epsilon;
    bool tr[4] = {true, true, true, false}; /* the fc weight is frozen */
    float *before = malloc(t.total * sizeof(float));
    memcpy(before, t.data, t.total * sizeof(float));
    float *grads[3];
    float lrs[3] = {0.1f, 0.05f, 0.02f};
    for (int s = 0; s < 3; s++) grads[s] = make_grads(&t, 10 + s);
    double *want = calloc(t.total, sizeof *want);
    reference(kind, &t, tr, grads, 3, lrs, &o, want);

    struct nn_optimizer opt;
    ck_assert_int_eq(nn_optimizer_init(&opt, &o, &t, tr), NN_OK);
    for (int s = 0; s < 3; s++) nn_optimizer_step(&opt, &t, grads[s], lrs[s]);
    for (size_t k = 0; k < t.total; k++)
        ck_assert_msg(fabs(t.data[k] - want[k]) <= 2e-6 * fmax(1.0, fabs(want[k])), "%s: value %zu is %.9g, want %.9g",
                      nn_optimizer_name(o.kind), k, t.data[k], want[k]);
    /* untouched: the running mean (not learned) and the frozen fc weight, bit for bit */
    for (int i = 2; i < 4; i++) {
        const struct nn_param *p = &t.items[i];
        ck_assert_int_eq(memcmp(t.data + p->offset, before + p->offset, p->count * sizeof(float)), 0);
        ck_assert_ptr_null(nn_optimizer_slot(&opt, 0, i));
    }
    /* the decayed conv weight moved differently from an undecayed run */
    ck_assert_int_eq(opt.updates, 3);
    nn_optimizer_free(&opt);
    for (int s = 0; s < 3; s++) free(grads[s]);
    free(want);
    free(before);
    nn_params_free(&t);
}

START_TEST(optimizer_sgd) { check_kind(SGD, 1.0f); }
END_TEST
START_TEST(optimizer_momentum) { check_kind(MOM, 1.0f); }
END_TEST
START_TEST(optimizer_rmsprop) { check_kind(RMS, 1.0f); }
END_TEST
START_TEST(optimizer_rmsprop_small_epsilon) { check_kind(RMS, 1e-3f); }
END_TEST
START_TEST(optimizer_adam) { check_kind(ADAM, 1e-3f); }
END_TEST

/* One RMSProp step worked out on paper: ms0 = 1, g = 2, w = 1, lr = 0.1,
 * no decay: ms = 0.9 + 0.1 * 4 = 1.3; mom = 0.1 * 2 / sqrt(1.3 + 1) =
 * 0.13187609; w = 0.86812391. */
START_TEST(optimizer_rmsprop_by_hand)
{
    struct nn_params t;
    memset(&t, 0, sizeof t);
    int s1[1] = {1};
    nn_params_add(&t, "x.bn.bias", NN_PARAM_BN_BETA, 1, s1);
    ck_assert_int_eq(nn_params_alloc(&t), NN_OK);
    t.data[0] = 1.0f;
    struct nn_optimizer_options o;
    nn_optimizer_options_default(&o);
    struct nn_optimizer opt;
    ck_assert_int_eq(nn_optimizer_init(&opt, &o, &t, NULL), NN_OK);
    float g = 2.0f;
    nn_optimizer_step(&opt, &t, &g, 0.1f);
    ck_assert_double_eq_tol(t.data[0], 0.86812391, 1e-6);
    ck_assert_double_eq_tol(nn_optimizer_slot(&opt, 0, 0)[0], 1.3, 1e-6);
    ck_assert_double_eq_tol(nn_optimizer_slot(&opt, 1, 0)[0], 0.13187609, 1e-6);
    ck_assert_str_eq(nn_optimizer_slot_name(&opt, 0), "rms");
    nn_optimizer_free(&opt);
    nn_params_free(&t);
}
END_TEST

START_TEST(optimizer_decay_loss)
{
    struct nn_params t;
    make_table(&t);
    struct nn_optimizer_options o;
    nn_optimizer_options_default(&o);
    o.weight_decay = 0.5f;
    bool tr[4] = {true, true, true, true};
    struct nn_optimizer opt;
    ck_assert_int_eq(nn_optimizer_init(&opt, &o, &t, tr), NN_OK);
    /* 0.5/2 * sum of squares of the conv and fc weights only */
    double want = 0;
    for (int i = 0; i < 4; i++)
        if (nn_param_decayed(&t.items[i]))
            for (size_t k = 0; k < t.items[i].count; k++) want += (double)t.data[t.items[i].offset + k] * t.data[t.items[i].offset + k];
    ck_assert_double_eq_tol(nn_optimizer_decay_loss(&opt, &t), 0.25 * want, 1e-9);
    nn_optimizer_free(&opt);
    nn_params_free(&t);
}
END_TEST

START_TEST(optimizer_parse)
{
    enum nn_optimizer_kind k;
    ck_assert_int_eq(nn_optimizer_parse("adam", &k), NN_OK);
    ck_assert_int_eq(k, NN_OPT_ADAM);
    ck_assert_int_ne(nn_optimizer_parse("adagrad", &k), NN_OK);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "adagrad"));
}
END_TEST

START_TEST(schedule_values)
{
    struct nn_lr_schedule s;
    nn_lr_schedule_default(&s);
    s.steps_per_epoch = 10; /* decay every 20 steps */
    ck_assert_double_eq_tol(nn_lr_at(&s, 0), 0.01, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 19), 0.01, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 20), 0.0094, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 45), 0.01 * 0.94 * 0.94, 1e-15);
    /* TF-slim truncates the decay steps: 7.6 steps/epoch * 2 -> every 15 */
    s.steps_per_epoch = 7.625;
    ck_assert_double_eq_tol(nn_lr_at(&s, 14), 0.01, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 15), 0.0094, 1e-15);

    s.kind = NN_LR_FIXED;
    ck_assert_double_eq_tol(nn_lr_at(&s, 1000), 0.01, 1e-15);

    s.kind = NN_LR_COSINE;
    s.steps_per_epoch = 10;
    s.total_steps = 100;
    ck_assert_double_eq_tol(nn_lr_at(&s, 0), 0.01, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 50), 0.005, 1e-12);
    ck_assert_double_eq_tol(nn_lr_at(&s, 100), 0.0, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 25), 0.01 * 0.5 * (1 + cos(M_PI / 4)), 1e-12);

    /* warmup over 2 epochs = 20 steps, then the cosine over the 80 left */
    s.warmup_epochs = 2;
    ck_assert_int_eq(nn_lr_warmup_steps(&s), 20);
    ck_assert_double_eq_tol(nn_lr_at(&s, 0), 0.01 / 20, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 9), 0.01 * 10 / 20, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 19), 0.01, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 60), 0.005, 1e-12);

    s.kind = NN_LR_FIXED;
    ck_assert_double_eq_tol(nn_lr_at(&s, 4), 0.01 * 5 / 20, 1e-15);
    ck_assert_double_eq_tol(nn_lr_at(&s, 20), 0.01, 1e-15);

    enum nn_lr_kind k;
    ck_assert_int_eq(nn_lr_parse("cosine", &k), NN_OK);
    ck_assert_int_eq(k, NN_LR_COSINE);
    ck_assert_int_ne(nn_lr_parse("step", &k), NN_OK);
}
END_TEST

Suite *suite_train_optim(void)
{
    Suite *s = suite_create("train_optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, optimizer_sgd);
    tcase_add_test(tc, optimizer_momentum);
    tcase_add_test(tc, optimizer_rmsprop);
    tcase_add_test(tc, optimizer_rmsprop_small_epsilon);
    tcase_add_test(tc, optimizer_adam);
    tcase_add_test(tc, optimizer_rmsprop_by_hand);
    tcase_add_test(tc, optimizer_decay_loss);
    tcase_add_test(tc, optimizer_parse);
    tcase_add_test(tc, schedule_values);
    suite_add_tcase(s, tc);
    return s;
}
