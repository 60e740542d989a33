/* The whole network against ../shared/golden/inception_v3: an independent
 * float64 implementation. Tolerances are the golden README's and are not to
 * be loosened. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "io/json.h"
#include "io/npy.h"
#include "nn/model.h"
#include "nn/net.h"
#include "tests/testutil.h"

#define GOLDEN "golden/inception_v3/"

static struct nn_model *load_golden_model(void)
{
    struct nn_import_options opt = {.num_classes = 10, .aux_logits = true, .seed = 1};
    struct nn_import_report rep;
    struct nn_model *m = NULL;
    enum nn_status st = nn_model_import(shared_path(GOLDEN "model.safetensors"), &opt, &m, &rep);
    ck_assert_msg(st == NN_OK, "import: %s", nn_last_error());
    ck_assert_int_eq(rep.nfresh, 0);
    ck_assert_int_eq(rep.loaded, m->params.count);
    nn_import_report_free(&rep);
    return m;
}

static float *golden_input_nhwc(int *n_out)
{
    struct nn_npy x;
    ck_assert_msg(nn_npy_read(shared_path(GOLDEN "input.npy"), &x) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(x.ndim, 4);
    int N = (int)x.shape[0], C = (int)x.shape[1], H = (int)x.shape[2], W = (int)x.shape[3];
    float *out = nn_alloc(x.count * sizeof(float));
    const float *src = x.data;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    out[(((size_t)n * H + h) * W + w) * C + c] = src[(((size_t)n * C + c) * H + h) * W + w];
    nn_npy_free(&x);
    *n_out = N;
    return out;
}

/* max |diff| <= 1e-4 * max(1, max |ref|) */
static void check_close(const char *file, const float *got, size_t count)
{
    struct nn_npy ref;
    ck_assert_msg(nn_npy_read(shared_path(file), &ref) == NN_OK, "%s", nn_last_error());
    ck_assert_uint_eq((size_t)ref.count, count);
    double maxref = 1;
    for (size_t i = 0; i < count; i++) maxref = fmax(maxref, fabs(((float *)ref.data)[i]));
    double diff = max_abs_diff(got, ref.data, count);
    ck_assert_msg(diff <= 1e-4 * maxref, "%s: max |diff| %.3g > %.3g", file, diff, 1e-4 * maxref);
    nn_npy_free(&ref);
}

START_TEST(golden_eval_logits)
{
    if (!have_shared("golden_eval_logits")) return;
    struct nn_model *m = load_golden_model();
    int n;
    float *x = golden_input_nhwc(&n);
    struct nn_net net;
    ck_assert_int_eq(nn_net_init(&net, &m->cfg, &m->params, n, NULL), NN_OK);
    ck_assert_int_eq(nn_net_forward(&net, x, n, false, false), NN_OK);
    check_close(GOLDEN "logits_eval.npy", nn_net_logits(&net), (size_t)n * 10);
    /* batch 1 through the same net gives the same rows */
    ck_assert_int_eq(nn_net_forward(&net, x + 299 * 299 * 3, 1, false, false), NN_OK);
    struct nn_npy ref;
    ck_assert_int_eq(nn_npy_read(shared_path(GOLDEN "logits_eval.npy"), &ref), NN_OK);
    ck_assert(max_abs_diff(nn_net_logits(&net), (float *)ref.data + 10, 10) <= 1e-4 * 10);
    nn_npy_free(&ref);
    nn_net_free(&net);
    nn_free(x);
    nn_model_free(m);
}
END_TEST

START_TEST(golden_train_forward_backward)
{
    if (!have_shared("golden_train_forward_backward")) return;
    struct nn_model *m = load_golden_model();
    int n;
    float *x = golden_input_nhwc(&n);
    struct nn_npy labels;
    ck_assert_int_eq(nn_npy_read(shared_path(GOLDEN "labels.npy"), &labels), NN_OK);
    bool *trainable = malloc((size_t)m->params.count);
    memset(trainable, 1, (size_t)m->params.count);
    struct nn_net net;
    ck_assert_int_eq(nn_net_init(&net, &m->cfg, &m->params, n, trainable), NN_OK);
    nn_net_zero_grads(&net);
    ck_assert_int_eq(nn_net_forward(&net, x, n, true, false), NN_OK);
    check_close(GOLDEN "logits_train.npy", nn_net_logits(&net), (size_t)n * 10);
    check_close(GOLDEN "aux_logits_train.npy", nn_net_aux_logits(&net), (size_t)n * 10);
    double loss;
    ck_assert_int_eq(nn_net_backward(&net, labels.data, 0.0f, 0.4f, &loss), NN_OK);
    float lossf = (float)loss;
    check_close(GOLDEN "loss_train.npy", &lossf, 1);

    /* every gradient file: relative L2 error <= 1e-2, in PyTorch's layout */
    char *meta_text;
    size_t len;
    ck_assert_int_eq(nn_read_file(shared_path(GOLDEN "meta.json"), &meta_text, &len), NN_OK);
    struct nn_json *meta;
    ck_assert_int_eq(nn_json_parse(meta_text, len, &meta), NN_OK);
    const struct nn_json *grads = nn_json_get(meta, "grads");
    ck_assert_uint_eq(nn_json_len(grads), 12);
    for (size_t k = 0; k < nn_json_len(grads); k++) {
        const char *name = nn_json_string(nn_json_at(grads, k));
        int i = nn_params_find(&m->params, name);
        ck_assert_msg(i >= 0, "%s", name);
        const struct nn_param *p = &m->params.items[i];
        float *g = nn_alloc(p->count * sizeof(float));
        nn_param_to_torch(p, net.grads + p->offset, g);
        char file[256];
        snprintf(file, sizeof file, GOLDEN "grad_%s.npy", name);
        struct nn_npy ref;
        ck_assert_int_eq(nn_npy_read(shared_path(file), &ref), NN_OK);
        ck_assert_uint_eq((size_t)ref.count, p->count);
        double num = 0, den = 0;
        for (size_t j = 0; j < p->count; j++) {
            double d = (double)g[j] - ((float *)ref.data)[j];
            num += d * d;
            den += (double)((float *)ref.data)[j] * ((float *)ref.data)[j];
        }
        ck_assert_msg(sqrt(num) <= 1e-2 * sqrt(den), "%s: relative L2 error %.3g", name, sqrt(num / den));
        nn_npy_free(&ref);
        nn_free(g);
    }
    nn_json_free(meta);
    free(meta_text);

    /* every parameter's gradient norm: relative error <= 1e-2 */
    char *norms_text;
    ck_assert_int_eq(nn_read_file(shared_path(GOLDEN "grad_norms.json"), &norms_text, &len), NN_OK);
    struct nn_json *norms;
    ck_assert_int_eq(nn_json_parse(norms_text, len, &norms), NN_OK);
    int checked = 0;
    for (size_t k = 0; k < nn_json_len(norms); k++) {
        const char *name = nn_json_key(norms, k);
        double want = nn_json_number(nn_json_at(norms, k));
        int i = nn_params_find(&m->params, name);
        ck_assert_msg(i >= 0, "unknown parameter %s", name);
        const struct nn_param *p = &m->params.items[i];
        double sq = 0;
        for (size_t j = 0; j < p->count; j++) sq += (double)net.grads[p->offset + j] * net.grads[p->offset + j];
        ck_assert_msg(fabs(sqrt(sq) - want) <= 1e-2 * want, "%s: gradient norm %.6g, reference %.6g", name, sqrt(sq),
                      want);
        checked++;
    }
    ck_assert_int_eq(checked, 292);
    nn_json_free(norms);
    free(norms_text);
    nn_npy_free(&labels);
    nn_net_free(&net);
    free(trainable);
    nn_free(x);
    nn_model_free(m);
}
END_TEST

Suite *suite_golden(void)
{
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, golden_eval_logits);
    tcase_add_test(tc, golden_train_forward_backward);
    suite_add_tcase(s, tc);
    return s;
}
