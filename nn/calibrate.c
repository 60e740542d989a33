/* int8 calibration (nn/calibrate.h). */
#include "nn/calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "nn/net.h"

#define BINS 2048
#define PERCENTILE 0.9999

struct histogram {
    double bins[BINS];
    double range;       /* bins cover [0, range); 0 until a positive value arrives */
    double max;
};

struct nn_calibrator {
    struct nn_model *frozen;
    struct nn_net net;
    bool have_net;
    enum nn_calib_method method;
    struct histogram *hist;     /* per graph node (convs only are filled) */
    long images;
};

const char *nn_calib_method_name(enum nn_calib_method m)
{
    switch (m) {
    case NN_CALIB_MSE: return "mse";
    case NN_CALIB_PERCENTILE: return "percentile";
    case NN_CALIB_MAX: return "max";
    }
    return "?";
}

bool nn_calib_method_parse(const char *s, enum nn_calib_method *out)
{
    for (int m = NN_CALIB_MSE; m <= NN_CALIB_MAX; m++)
        if (s && !strcmp(s, nn_calib_method_name((enum nn_calib_method)m))) {
            *out = (enum nn_calib_method)m;
            return true;
        }
    return false;
}

/* Doubles the range until it covers v: bin pairs merge. */
static void grow(struct histogram *h, double v)
{
    if (h->range == 0.0) {
        h->range = v * 1.0000001;
        return;
    }
    while (h->range <= v) {
        for (int i = 0; i < BINS / 2; i++) h->bins[i] = h->bins[2 * i] + h->bins[2 * i + 1];
        memset(h->bins + BINS / 2, 0, sizeof(double) * (BINS / 2));
        h->range *= 2.0;
    }
}

static void observe(void *user, int node, const float *x, size_t count)
{
    struct nn_calibrator *c = user;
    if (c->net.g.nodes[node].inputs[0] == c->net.g.input) return; /* the image: bf16 */
    struct histogram *h = &c->hist[node];
    float mx = 0.0f;
    for (size_t i = 0; i < count; i++) mx = x[i] > mx ? x[i] : mx; /* NaN never wins */
    if (mx <= 0.0f) return;
    if (mx > h->max) h->max = mx;
    if (h->range <= mx) grow(h, mx);
    const double per_bin = BINS / h->range;
    for (size_t i = 0; i < count; i++) {
        if (!(x[i] > 0.0f)) continue; /* exact zeros quantise exactly */
        int b = (int)(x[i] * per_bin);
        h->bins[b < BINS ? b : BINS - 1] += 1.0;
    }
}

double nn_calib_threshold(enum nn_calib_method method, const double *bins, int nbins, double range, double max)
{
    if (!(max > 0.0) || !(range > 0.0)) return 0.0;
    if (method == NN_CALIB_MAX) return max;
    const double width = range / nbins;
    double total = 0.0;
    for (int i = 0; i < nbins; i++) total += bins[i];
    if (total == 0.0) return max;
    if (method == NN_CALIB_PERCENTILE) {
        double seen = 0.0;
        for (int i = 0; i < nbins; i++) {
            seen += bins[i];
            if (seen >= PERCENTILE * total) {
                double t = (i + 1) * width;
                return t < max ? t : max;
            }
        }
        return max;
    }
    /* Suffix sums of count, count * centre, count * centre^2 give the
     * clipping error above every candidate threshold in O(1). */
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, below = total;
    double best = max, best_err = INFINITY;
    double *err = malloc(sizeof(double) * (size_t)nbins);
    if (!err) return max;
    for (int t = nbins; t >= 1; t--) {
        double c = (t - 0.5) * width;
        s0 += bins[t - 1];
        s1 += bins[t - 1] * c;
        s2 += bins[t - 1] * c * c;
        below -= bins[t - 1];
        /* threshold at the lower edge of bin t-1: bins t-1.. clip */
        double T = (t - 1) * width;
        if (T <= 0.0) break;
        double step = T / 255.0;
        err[t - 1] = below * step * step / 12.0 + (s2 - 2.0 * T * s1 + T * T * s0);
    }
    for (int t = 1; t < nbins; t++) {
        double T = t * width;
        if (T > max) break;
        if (err[t] < best_err) {
            best_err = err[t];
            best = T;
        }
    }
    /* Not clipping at all: every value on the grid of max / 255. */
    double step = max / 255.0;
    if (total * step * step / 12.0 <= best_err) best = max;
    free(err);
    return best;
}

enum nn_status nn_calibrator_new(const struct nn_model *model, int batch, enum nn_calib_method method,
                                 struct nn_calibrator **out)
{
    if (!model || !out || batch < 1) return nn_fail(NN_ERR_ARG, "nn_calibrator_new: bad argument");
    *out = NULL;
    if (model->cfg.precision != NN_PRECISION_F32)
        return nn_fail(NN_ERR_ARG, "calibrate from the float32 model, not a %s one",
                       nn_precision_name(model->cfg.precision));
    struct nn_calibrator *c = calloc(1, sizeof *c);
    if (!c) return nn_fail(NN_ERR_NOMEM, "out of memory");
    c->method = method;
    enum nn_status st = nn_model_freeze(model, &c->frozen);
    if (st == NN_OK) st = nn_net_init(&c->net, &c->frozen->cfg, &c->frozen->params, batch, NULL);
    c->have_net = st == NN_OK;
    if (st == NN_OK && !(c->hist = calloc((size_t)c->net.g.nnodes, sizeof *c->hist)))
        st = nn_fail(NN_ERR_NOMEM, "out of memory for calibration histograms");
    if (st != NN_OK) {
        nn_calibrator_free(c);
        return st;
    }
    c->net.observe = observe;
    c->net.observe_user = c;
    *out = c;
    return NN_OK;
}

enum nn_status nn_calibrator_add(struct nn_calibrator *c, const float *images, int n)
{
    if (!c || !images) return nn_fail(NN_ERR_ARG, "nn_calibrator_add: NULL argument");
    NN_TRY(nn_net_forward(&c->net, images, n, false, false));
    c->images += n;
    return NN_OK;
}

long nn_calibrator_images(const struct nn_calibrator *c) { return c ? c->images : 0; }

enum nn_status nn_calibrator_finish(struct nn_calibrator *c, struct nn_model **out)
{
    if (!c || !out) return nn_fail(NN_ERR_ARG, "nn_calibrator_finish: NULL argument");
    *out = NULL;
    if (c->images < 1) return nn_fail(NN_ERR_ARG, "calibration needs at least one image");
    float *scales = calloc((size_t)c->frozen->params.count, sizeof(float));
    if (!scales) return nn_fail(NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->net.g.nnodes; i++) {
        const struct nn_node *n = &c->net.g.nodes[i];
        if (n->kind != NN_NODE_CONV || n->inputs[0] == c->net.g.input) continue;
        const struct histogram *h = &c->hist[i];
        double T = nn_calib_threshold(c->method, h->bins, BINS, h->range, h->max);
        /* An input that was never positive: any scale quantises it exactly. */
        scales[n->w] = T > 0.0 ? (float)(T / 255.0) : 1.0f;
    }
    enum nn_status st = nn_model_to_int8(c->frozen, scales, out);
    free(scales);
    return st;
}

void nn_calibrator_free(struct nn_calibrator *c)
{
    if (!c) return;
    if (c->have_net) nn_net_free(&c->net);
    nn_model_free(c->frozen);
    free(c->hist);
    free(c);
}
