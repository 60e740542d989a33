#include "train/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "nn/net.h"
#include "train/pipeline.h"

enum nn_status nn_eval_init(struct nn_eval *e, int num_classes)
{
    memset(e, 0, sizeof *e);
    if (num_classes < 1) return nn_fail(NN_ERR_ARG, "evaluation needs at least one class");
    e->num_classes = num_classes;
    e->confusion = calloc((size_t)num_classes * num_classes, sizeof *e->confusion);
    if (!e->confusion) return nn_fail(NN_ERR_NOMEM, "out of memory for a %d-class confusion matrix", num_classes);
    return NN_OK;
}

void nn_eval_free(struct nn_eval *e)
{
    if (!e) return;
    free(e->confusion);
    memset(e, 0, sizeof *e);
}

void nn_eval_reset(struct nn_eval *e)
{
    e->count = e->top1 = e->top5 = 0;
    e->loss_sum = 0;
    memset(e->confusion, 0, (size_t)e->num_classes * e->num_classes * sizeof *e->confusion);
}

void nn_eval_add(struct nn_eval *e, const float *logits, const int32_t *labels, int n)
{
    const int K = e->num_classes;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * K;
        int label = labels[i];
        if (label < 0 || label >= K) continue;
        int best = 0, above = 0;
        float mx = row[0];
        for (int k = 0; k < K; k++) {
            if (row[k] > mx) {
                mx = row[k];
                best = k;
            }
            above += row[k] > row[label];
        }
        /* cross-entropy from a stable log-sum-exp */
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)row[k] - mx);
        e->loss_sum += log(sum) + mx - row[label];
        e->count++;
        e->top1 += best == label;
        e->top5 += above < 5;
        e->confusion[(size_t)label * K + best]++;
    }
}

double nn_eval_top1(const struct nn_eval *e) { return e->count ? (double)e->top1 / e->count : 0.0; }
double nn_eval_top5(const struct nn_eval *e) { return e->count ? (double)e->top5 / e->count : 0.0; }
double nn_eval_loss(const struct nn_eval *e) { return e->count ? e->loss_sum / e->count : 0.0; }

long nn_eval_support(const struct nn_eval *e, int c)
{
    long s = 0;
    for (int k = 0; k < e->num_classes; k++) s += e->confusion[(size_t)c * e->num_classes + k];
    return s;
}

double nn_eval_precision(const struct nn_eval *e, int c)
{
    long predicted = 0;
    for (int k = 0; k < e->num_classes; k++) predicted += e->confusion[(size_t)k * e->num_classes + c];
    return predicted ? (double)e->confusion[(size_t)c * e->num_classes + c] / predicted : 0.0;
}

double nn_eval_recall(const struct nn_eval *e, int c)
{
    long support = nn_eval_support(e, c);
    return support ? (double)e->confusion[(size_t)c * e->num_classes + c] / support : 0.0;
}

/* Same count, other names: the labels may mean other classes (another
 * dataset, or folders renamed), so the numbers may be meaningless. Said, not
 * refused: a model made with default names ("0", "1", ...) is still usable. */
static void warn_class_names(const struct nn_model *m, const struct nn_dataset_desc *d, const char *data_dir)
{
    int differ = 0, first = -1;
    for (int c = 0; c < d->num_classes; c++)
        if (strcmp(m->class_names[c], d->classes[c]) != 0) {
            if (first < 0) first = c;
            differ++;
        }
    if (differ)
        nn_warn("%s: %d of the %d class names differ from the model's (class %d is \"%s\" in the dataset, \"%s\" in "
                "the model): the labels may not mean what the model learned",
                data_dir, differ, d->num_classes, first, d->classes[first], m->class_names[first]);
}

enum nn_status nn_evaluate_model(const struct nn_model *m, const char *data_dir, enum nn_split split, int batch,
                                 int threads, nn_eval_progress_fn progress, void *user, struct nn_eval *e)
{
    if (!m || !data_dir || !e) return nn_fail(NN_ERR_ARG, "nn_evaluate_model: NULL argument");
    if (e->num_classes != m->cfg.num_classes)
        return nn_fail(NN_ERR_ARG, "evaluation set up for %d classes, the model has %d", e->num_classes,
                       m->cfg.num_classes);
    struct nn_pipeline_options po;
    nn_pipeline_options_eval(&po);
    po.batch_size = batch > 0 ? batch : 32;
    po.image_size = m->cfg.image_size;
    po.central_fraction = m->central_fraction;
    po.threads = threads;
    struct nn_pipeline *p;
    NN_TRY(nn_pipeline_open(data_dir, split, &po, &p));
    /* The descriptor belongs to the pipeline: read what the messages need
     * before closing it. */
    const struct nn_dataset_desc *d = nn_dataset_info(nn_pipeline_dataset(p));
    const int data_classes = d->num_classes;
    if (data_classes != m->cfg.num_classes) {
        nn_pipeline_close(p);
        return nn_fail(NN_ERR_ARG, "%s has %d classes, the model %d: this model was not trained on this dataset",
                       data_dir, data_classes, m->cfg.num_classes);
    }
    warn_class_names(m, d, data_dir);
    struct nn_net net;
    /* an inference net never writes to the parameters */
    enum nn_status st = nn_net_init(&net, &m->cfg, (struct nn_params *)&m->params, po.batch_size, NULL);
    if (st != NN_OK) {
        nn_pipeline_close(p);
        return st;
    }
    nn_net_use_lowp(&net, m->lowp);
    long total = nn_pipeline_batches_per_epoch(p), done = 0;
    for (;;) {
        const struct nn_batch *b;
        st = nn_pipeline_next(p, &b);
        if (st != NN_OK || !b) break;
        st = nn_net_forward(&net, b->images, b->n, false, false);
        if (st != NN_OK) break;
        nn_eval_add(e, nn_net_logits(&net), b->labels, b->n);
        if (progress) progress(user, ++done, total);
    }
    nn_net_free(&net);
    nn_pipeline_close(p);
    return st;
}
