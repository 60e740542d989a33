/* The training loop. One step: a batch (from the input pipeline, or from
 * the bottleneck cache when only the heads train on unaugmented images),
 * forward, backward, one optimizer update. Around it: metrics lines,
 * evaluation, batch-norm recalibration and checkpoints. */
#include "train/trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/threads.h"
#include "nn/net.h"
#include "train/bottleneck.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/heads.h"
#include "train/pipeline.h"
#include "train/train_internal.h"

/* Independent generator streams of one seed. */
#define STREAM_DROPOUT 0x64726f70u
#define SEED_RECALIBRATE 0x726563616c6962ULL

struct trainer {
    struct nn_train_options o;
    nn_train_progress_fn progress;
    void *user;
    struct nn_dataset_desc desc;
    bool desc_ok;
    struct nn_model *model;
    bool *trainable;
    struct nn_optimizer opt;
    struct nn_lr_schedule sched;
    bool cached;
    struct nn_net net;
    bool net_ok;
    struct nn_heads heads;
    bool heads_ok;
    struct nn_rng *dropout_rng;
    struct nn_bottleneck train_cache, val_cache;
    struct nn_pipeline *pipe;
    long *order;            /* cached mode: the visiting order of order_epoch */
    long order_epoch;
    float *bpre, *baux;     /* cached mode: the current batch */
    int32_t *blabels;
    struct nn_pipeline_position pos;    /* the next batch */
    long n_train, n_val, bpe;
    long step, total;
    long first_step;        /* where this call started */
    FILE *metrics;
    char *metrics_path;
    double loss_sum;        /* since the last metrics line */
    long loss_count, interval_images;
    double interval_t0, t0, elapsed0;
    double last_ckpt_t;
    long last_ckpt_step;
    double last_loss, last_lr;
    double phase_t0;
    bool finished;
    char *options_json;
    char *data_abs, *init_abs;  /* the paths made absolute, as options.json records them */
    struct nn_eval eval;
    bool eval_ok;
    bool made_run_dir;      /* this call created o.run_dir */
    struct nn_train_result *res;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void report(struct trainer *t, const char *phase, long done, long total, double t_start)
{
    if (!t->progress) return;
    struct nn_train_progress p = {.phase = phase, .done = done, .total = total, .seconds = now_s() - t_start};
    p.eta = done > 0 && p.seconds > 0 ? (double)(total - done) * p.seconds / done : -1;
    if (!strcmp(phase, "training")) {
        p.epoch = (double)t->step / (double)t->bpe;
        p.loss = t->last_loss;
        p.lr = t->last_lr;
        long steps = t->step - t->first_step; /* a resumed run's rate counts from where it resumed */
        p.images_per_sec = p.seconds > 0 ? (double)steps * t->o.batch_size / p.seconds : 0;
        p.eta = steps > 0 ? (double)(total - done) * p.seconds / steps : -1;
    }
    t->progress(t->user, &p);
}

/* ---- metrics.jsonl ---- */

static void metrics_begin(struct trainer *t, struct nn_strbuf *b)
{
    nn_strbuf_init(b);
    nn_strbuf_printf(b, "{\"step\":%ld,", t->step);
    if (t->o.stage) {
        nn_strbuf_append(b, "\"stage\":", 8);
        nn_strbuf_json_string(b, t->o.stage);
        nn_strbuf_append(b, ",", 1);
    }
}

static void metrics_num(struct nn_strbuf *b, const char *key, double v)
{
    nn_strbuf_printf(b, "\"%s\":", key);
    nn_strbuf_json_number(b, v);
    nn_strbuf_append(b, ",", 1);
}

static enum nn_status metrics_end(struct trainer *t, struct nn_strbuf *b)
{
    enum nn_status st = NN_OK;
    if (!nn_strbuf_end_object(b)) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    else if (fprintf(t->metrics, "%s\n", b->data) < 0 || fflush(t->metrics) != 0)
        st = nn_fail(NN_ERR_IO, "%s: cannot write: %s", t->metrics_path, strerror(errno));
    nn_strbuf_free(b);
    return st;
}

/* A resumed run replays the steps after its checkpoint: lines the killed
 * run wrote for them are dropped, so the log reads as one run. */
static enum nn_status truncate_metrics(const char *path, long step)
{
    char *text;
    size_t len;
    if (access(path, F_OK) != 0) return NN_OK;
    NN_TRY(nn_read_file(path, &text, &len));
    struct nn_atomic_file af;
    enum nn_status st = nn_atomic_open(&af, path);
    long dropped = 0;
    for (char *line = text; st == NN_OK && line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = end ? (size_t)(end - line) : (size_t)(text + len - line);
        struct nn_json *j = NULL;
        int64_t s = -1;
        bool keep = n > 0 && nn_json_parse(line, n, &j) == NN_OK && nn_json_int(nn_json_get(j, "step"), &s) &&
                    s <= step && end;
        nn_json_free(j);
        if (keep) {
            st = nn_write_all(&af, line, n + 1);
        } else if (n > 0) {
            dropped++;
        }
        line += n + 1;
    }
    free(text);
    if (st != NN_OK) {
        nn_atomic_abort(&af);
        return st;
    }
    if (dropped) nn_info("%s: dropped %ld lines written after step %ld by the interrupted run", path, dropped, step);
    return nn_atomic_commit(&af);
}

/* ---- batches ---- */

static enum nn_status next_batch(struct trainer *t, const float **images, const int32_t **labels, int *n)
{
    if (!t->cached) {
        const struct nn_batch *b;
        NN_TRY(nn_pipeline_next(t->pipe, &b));
        if (!b) return nn_fail(NN_ERR_INTERNAL, "the input pipeline ended early");
        t->pos = nn_pipeline_position(t->pipe);
        *images = b->images;
        *labels = b->labels;
        *n = b->n;
        return NN_OK;
    }
    /* The batches nn_pipeline would give with the same seed: batch b of
     * epoch e is positions b*B.. of that epoch's order, records that failed
     * left out, a batch of nothing but failures skipped. */
    const int B = t->o.batch_size;
    const struct nn_bottleneck *c = &t->train_cache;
    for (;;) {
        if (t->order_epoch != t->pos.epoch) {
            nn_pipeline_epoch_order(t->o.seed, t->pos.epoch, true, t->n_train, t->order);
            t->order_epoch = t->pos.epoch;
        }
        int k = 0;
        for (long i = t->pos.batch * B; i < (t->pos.batch + 1) * B && i < t->n_train; i++) {
            long e = t->order[i];
            if (!c->ok[e]) continue;
            memcpy(t->bpre + (size_t)k * c->features, c->pre + (size_t)e * c->features, c->features * sizeof(float));
            if (c->aux_floats)
                memcpy(t->baux + (size_t)k * c->aux_floats, c->aux + (size_t)e * c->aux_floats,
                       c->aux_floats * sizeof(float));
            t->blabels[k++] = c->labels[e];
        }
        if (++t->pos.batch == t->bpe) {
            t->pos.batch = 0;
            t->pos.epoch++;
        }
        if (k > 0) {
            *images = NULL;
            *labels = t->blabels;
            *n = k;
            return NN_OK;
        }
    }
}

static bool any_trainable_bn(const struct trainer *t)
{
    for (int i = 0; i < t->model->params.count; i++) {
        enum nn_param_kind k = t->model->params.items[i].kind;
        if (t->trainable[i] && (k == NN_PARAM_BN_GAMMA || k == NN_PARAM_BN_BETA)) return true;
    }
    return false;
}

/* ---- batch-norm recalibration ---- */

/* Recomputes the moving statistics of every trainable batch norm as the
 * plain mean over `count` training batches with the eval transform: batch k
 * (from 1) is folded in with decay 1 - 1/k. */
static enum nn_status recalibrate(struct trainer *t, int count, bool *ran)
{
    *ran = false;
    if (!any_trainable_bn(t)) {
        nn_info("step %ld: no trainable batch norm, nothing to recalibrate", t->step);
        return NN_OK;
    }
    double t_start = now_s();
    const int B = t->o.batch_size;
    enum nn_status st = NN_OK;
    int done = 0;
    if (t->cached) {
        /* the cache holds exactly the eval transform's trunk outputs */
        const struct nn_bottleneck *c = &t->train_cache;
        long *order = malloc((size_t)t->n_train * sizeof *order);
        if (!order) return nn_fail(NN_ERR_NOMEM, "out of memory");
        float saved = t->heads.cfg.bn_decay;
        long epoch = 0, i = 0;
        nn_pipeline_epoch_order(t->o.seed ^ SEED_RECALIBRATE, epoch, true, t->n_train, order);
        while (st == NN_OK && done < count) {
            int k = 0;
            while (k < B) {
                if (i == t->n_train) {
                    nn_pipeline_epoch_order(t->o.seed ^ SEED_RECALIBRATE, ++epoch, true, t->n_train, order);
                    i = 0;
                }
                long e = order[i++];
                if (!c->ok[e]) continue;
                memcpy(t->bpre + (size_t)k * c->features, c->pre + (size_t)e * c->features,
                       c->features * sizeof(float));
                if (c->aux_floats)
                    memcpy(t->baux + (size_t)k * c->aux_floats, c->aux + (size_t)e * c->aux_floats,
                           c->aux_floats * sizeof(float));
                k++;
            }
            t->heads.cfg.bn_decay = 1.0f - 1.0f / (float)(done + 1);
            st = nn_heads_forward(&t->heads, t->bpre, t->baux, k, true, false);
            done++;
            report(t, "recalibrating", done, count, t_start);
        }
        t->heads.cfg.bn_decay = saved;
        free(order);
    } else {
        struct nn_pipeline_options po;
        nn_pipeline_options_default(&po);
        po.batch_size = B;
        po.image_size = t->model->cfg.image_size;
        po.central_fraction = t->model->central_fraction;
        po.train_transform = false;
        po.seed = t->o.seed ^ SEED_RECALIBRATE;
        po.threads = t->o.threads;
        struct nn_pipeline *p;
        NN_TRY(nn_pipeline_open(t->o.data_dir, NN_SPLIT_TRAIN, &po, &p));
        float saved = t->net.cfg.bn_decay;
        while (st == NN_OK && done < count) {
            const struct nn_batch *b;
            st = nn_pipeline_next(p, &b);
            if (st != NN_OK || !b) break;
            t->net.cfg.bn_decay = 1.0f - 1.0f / (float)(done + 1);
            st = nn_net_forward(&t->net, b->images, b->n, true, false);
            done++;
            report(t, "recalibrating", done, count, t_start);
        }
        t->net.cfg.bn_decay = saved;
        nn_pipeline_close(p);
    }
    if (st != NN_OK) return st;
    *ran = true;
    nn_info("step %ld: batch norm statistics recalibrated over %d batches of %d training images (eval transform)",
            t->step, done, B);
    struct nn_strbuf b;
    metrics_begin(t, &b);
    nn_strbuf_printf(&b, "\"event\":\"bn_recalibrate\",\"batches\":%d,", done);
    return metrics_end(t, &b);
}

/* ---- evaluation ---- */

static enum nn_status evaluate(struct trainer *t)
{
    nn_eval_reset(&t->eval);
    double t_start = now_s();
    const int B = t->o.batch_size;
    enum nn_status st = NN_OK;
    if (t->cached) {
        /* The main head in inference mode is fc on the pooled features. */
        const struct nn_bottleneck *c = &t->val_cache;
        long total = (c->n + B - 1) / B, done = 0;
        for (long i = 0; st == NN_OK && i < c->n;) {
            int k = 0;
            for (; i < c->n && k < B; i++) {
                if (!c->ok[i]) continue;
                memcpy(t->bpre + (size_t)k * c->features, c->pre + (size_t)i * c->features, c->features * sizeof(float));
                if (c->aux_floats)
                    memcpy(t->baux + (size_t)k * c->aux_floats, c->aux + (size_t)i * c->aux_floats,
                           c->aux_floats * sizeof(float));
                t->blabels[k++] = c->labels[i];
            }
            if (!k) break;
            st = nn_heads_forward(&t->heads, t->bpre, t->baux, k, false, false);
            if (st == NN_OK) nn_eval_add(&t->eval, nn_heads_logits(&t->heads), t->blabels, k);
            report(t, "evaluating", ++done, total, t_start);
        }
    } else {
        struct nn_pipeline_options po;
        nn_pipeline_options_eval(&po);
        po.batch_size = B;
        po.image_size = t->model->cfg.image_size;
        po.central_fraction = t->model->central_fraction;
        po.threads = t->o.threads;
        struct nn_pipeline *p;
        NN_TRY(nn_pipeline_open(t->o.data_dir, NN_SPLIT_VALIDATION, &po, &p));
        long total = nn_pipeline_batches_per_epoch(p), done = 0;
        while (st == NN_OK) {
            const struct nn_batch *b;
            st = nn_pipeline_next(p, &b);
            if (st != NN_OK || !b) break;
            st = nn_net_forward(&t->net, b->images, b->n, false, false);
            if (st == NN_OK) nn_eval_add(&t->eval, nn_net_logits(&t->net), b->labels, b->n);
            report(t, "evaluating", ++done, total, t_start);
        }
        nn_pipeline_close(p);
    }
    if (st != NN_OK) return st;
    nn_info("step %ld: validation top-1 %.4f, top-5 %.4f on %ld images (%.1f s)", t->step, nn_eval_top1(&t->eval),
            nn_eval_top5(&t->eval), t->eval.count, now_s() - t_start);
    struct nn_strbuf b;
    metrics_begin(t, &b);
    metrics_num(&b, "epoch", (double)t->step / (double)t->bpe);
    metrics_num(&b, "val_top1", nn_eval_top1(&t->eval));
    metrics_num(&b, "val_top5", nn_eval_top5(&t->eval));
    metrics_num(&b, "val_loss", nn_eval_loss(&t->eval));
    metrics_num(&b, "val_count", (double)t->eval.count);
    return metrics_end(t, &b);
}

/* Recalibrates first when asked: evaluation reads the moving statistics. */
static enum nn_status validate(struct trainer *t)
{
    if (t->n_val == 0) return NN_OK;
    bool ran;
    if (t->o.bn_recalibrate > 0) NN_TRY(recalibrate(t, t->o.bn_recalibrate, &ran));
    return evaluate(t);
}

/* ---- checkpoints ---- */

static char *trainer_json(const struct trainer *t)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    const struct nn_rng *r = t->dropout_rng;
    nn_strbuf_printf(&b, "{\"step\":%ld,\"position\":{\"epoch\":%ld,\"batch\":%ld},", t->step, t->pos.epoch,
                     t->pos.batch);
    nn_strbuf_printf(&b, "\"dropout_rng\":[\"%016" PRIx64 "\",\"%016" PRIx64 "\"],", r->state, r->inc);
    nn_strbuf_append(&b, "\"elapsed\":", 10);
    nn_strbuf_json_number(&b, t->elapsed0 + (now_s() - t->t0));
    nn_strbuf_append(&b, ",\"loss_sum\":", 12);
    nn_strbuf_json_number(&b, t->loss_sum);
    nn_strbuf_printf(&b, ",\"loss_count\":%ld,\"finished\":%s,\"options\":", t->loss_count,
                     t->finished ? "true" : "false");
    nn_strbuf_append(&b, t->options_json, strlen(t->options_json));
    nn_strbuf_append(&b, "}", 1);
    if (b.failed) {
        nn_strbuf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ---- divergence ---- */

/* Stops the run: an event in the log, and an error that says where the
 * last good state is. `what` says what was found ("the loss is nan"). */
static enum nn_status diverged(struct trainer *t, long at_step, const char *what)
{
    struct nn_strbuf b;
    metrics_begin(t, &b);
    nn_strbuf_append(&b, "\"event\":\"diverged\",", 19);
    metrics_end(t, &b);
    if (t->last_ckpt_step >= 0)
        return nn_fail(NN_ERR_INTERNAL,
                       "%s at step %ld: training diverged (a lower --learning-rate may help). The run stopped; its "
                       "last good checkpoint is %s/checkpoints/ckpt-%ld",
                       what, at_step, t->o.run_dir, t->last_ckpt_step);
    return nn_fail(NN_ERR_INTERNAL,
                   "%s at step %ld: training diverged (a lower --learning-rate may help). The run stopped before its "
                   "first checkpoint",
                   what, at_step);
}

/* A finite loss does not make finite weights: an update can overflow, and
 * a batch norm's moving statistics never reach the training loss. So the
 * weights themselves are checked every WEIGHT_CHECK_EVERY steps and before
 * anything is saved: a model with a NaN or an infinity is never written. */
#define WEIGHT_CHECK_EVERY 10

static enum nn_status check_weights(struct trainer *t)
{
    float v = 0;
    int i = nn_params_first_nonfinite(&t->model->params, &v);
    if (i < 0) return NN_OK;
    char what[NN_PARAM_NAME_MAX + 64];
    snprintf(what, sizeof what, "parameter %s holds %g", t->model->params.items[i].name, (double)v);
    return diverged(t, t->step, what);
}

static enum nn_status checkpoint(struct trainer *t)
{
    NN_TRY(check_weights(t));
    char *tj = trainer_json(t);
    if (!tj) return nn_fail(NN_ERR_NOMEM, "out of memory");
    enum nn_status st =
        nn_checkpoint_save(t->o.run_dir, t->step, t->model, &t->opt, tj, t->o.keep_checkpoints);
    free(tj);
    if (st == NN_OK) {
        t->last_ckpt_t = now_s();
        t->last_ckpt_step = t->step;
        nn_debug("checkpoint %ld written", t->step);
    }
    return st;
}

static enum nn_status restore(struct trainer *t, const struct nn_checkpoint *c)
{
    const struct nn_json *j = c->trainer, *pos = nn_json_get(j, "position"), *rng = nn_json_get(j, "dropout_rng");
    int64_t pe = -1, pb = -1, lc = 0;
    bool ok = pos && nn_json_int(nn_json_get(pos, "epoch"), &pe) && nn_json_int(nn_json_get(pos, "batch"), &pb) &&
              pe >= 0 && pb >= 0 && rng && nn_json_len(rng) == 2 && nn_json_string(nn_json_at(rng, 0)) &&
              nn_json_string(nn_json_at(rng, 1)) && nn_json_int(nn_json_get(j, "loss_count"), &lc);
    if (!ok) return nn_fail(NN_ERR_FORMAT, "checkpoint %" PRId64 ": incomplete trainer state", c->step);
    t->pos.epoch = (long)pe;
    t->pos.batch = (long)pb;
    t->dropout_rng->state = strtoull(nn_json_string(nn_json_at(rng, 0)), NULL, 16);
    t->dropout_rng->inc = strtoull(nn_json_string(nn_json_at(rng, 1)), NULL, 16);
    t->loss_count = (long)lc;
    t->loss_sum = nn_json_number(nn_json_get(j, "loss_sum"));
    t->elapsed0 = nn_json_number(nn_json_get(j, "elapsed"));
    if (!isfinite(t->elapsed0)) t->elapsed0 = 0;
    const struct nn_json *fin = nn_json_get(j, "finished");
    t->finished = fin && nn_json_type(fin) == NN_JSON_BOOL && nn_json_bool(fin);
    t->step = (long)c->step;
    return NN_OK;
}

/* ---- one step ---- */

static enum nn_status log_interval(struct trainer *t)
{
    double dt = now_s() - t->interval_t0;
    struct nn_strbuf b;
    metrics_begin(t, &b);
    metrics_num(&b, "epoch", (double)t->step / (double)t->bpe);
    metrics_num(&b, "loss", t->loss_count ? t->loss_sum / t->loss_count : NAN);
    metrics_num(&b, "reg_loss", nn_optimizer_decay_loss(&t->opt, &t->model->params));
    metrics_num(&b, "lr", t->last_lr);
    metrics_num(&b, "images_per_sec", dt > 0 ? t->interval_images / dt : 0);
    t->last_loss = t->loss_count ? t->loss_sum / t->loss_count : t->last_loss;
    t->loss_sum = 0;
    t->loss_count = 0;
    t->interval_images = 0;
    t->interval_t0 = now_s();
    return metrics_end(t, &b);
}

static enum nn_status step(struct trainer *t)
{
    const float *images = NULL;
    const int32_t *labels = NULL;
    int n = 0;
    NN_TRY(next_batch(t, &images, &labels, &n));
    double lr = nn_lr_at(&t->sched, t->step), loss = 0;
    const float *grads;
    if (t->cached) {
        NN_TRY(nn_heads_forward(&t->heads, t->bpre, t->baux, n, true, true));
        nn_heads_zero_grads(&t->heads);
        NN_TRY(nn_heads_backward(&t->heads, labels, t->o.label_smoothing, t->o.aux_weight, &loss));
        grads = t->heads.grads;
    } else {
        NN_TRY(nn_net_forward(&t->net, images, n, true, true));
        nn_net_zero_grads(&t->net);
        NN_TRY(nn_net_backward(&t->net, labels, t->o.label_smoothing, t->o.aux_weight, &loss));
        grads = t->net.grads;
    }
    if (!isfinite(loss)) {
        char what[64];
        snprintf(what, sizeof what, "the loss is %g", loss);
        return diverged(t, t->step + 1, what);
    }
    nn_optimizer_step(&t->opt, &t->model->params, grads, (float)lr);
    t->step++;
    t->loss_sum += loss;
    t->loss_count++;
    t->interval_images += n;
    t->last_lr = lr;
    if (t->loss_count == 1 && t->last_loss == 0) t->last_loss = loss;
    return NN_OK;
}

/* ---- setup ---- */

static void trainer_free(struct trainer *t)
{
    if (t->pipe) nn_pipeline_close(t->pipe);
    if (t->net_ok) nn_net_free(&t->net);
    if (t->heads_ok) nn_heads_free(&t->heads);
    nn_bottleneck_free(&t->train_cache);
    nn_bottleneck_free(&t->val_cache);
    nn_optimizer_free(&t->opt);
    nn_model_free(t->model);
    free(t->trainable);
    if (t->desc_ok) nn_dataset_desc_free(&t->desc);
    if (t->metrics) fclose(t->metrics);
    free(t->metrics_path);
    free(t->order);
    nn_free(t->bpre);
    nn_free(t->baux);
    free(t->blabels);
    free(t->options_json);
    free(t->data_abs);
    free(t->init_abs);
    if (t->eval_ok) nn_eval_free(&t->eval);
}

static void cache_progress(void *user, long done, long total)
{
    struct trainer *t = user;
    if (done == 1) t->phase_t0 = now_s();
    report(t, "caching", done, total, t->phase_t0);
}

static enum nn_status make_dir(const char *path, bool *made)
{
    *made = false;
    if (mkdir(path, 0777) == 0) {
        *made = true;
        return NN_OK;
    }
    if (errno == EEXIST) return NN_OK;
    return nn_fail(NN_ERR_IO, "%s: cannot create the run directory: %s", path, strerror(errno));
}

static enum nn_status check_options(const struct nn_train_options *o)
{
    if (!o->data_dir || !*o->data_dir) return nn_fail(NN_ERR_ARG, "no dataset given (--data DIR)");
    if (!o->run_dir || !*o->run_dir) return nn_fail(NN_ERR_ARG, "no run directory given (--out RUN_DIR)");
    if (o->resume && o->init_from)
        return nn_fail(NN_ERR_ARG, "--resume continues a run from its own checkpoints; it cannot be combined with "
                       "--init-from");
    if (o->batch_size < 1 || o->batch_size > 4096) return nn_fail(NN_ERR_ARG, "batch size %d is out of range", o->batch_size);
    if (o->max_steps < 0 || (o->max_steps == 0 && !(o->epochs > 0)))
        return nn_fail(NN_ERR_ARG, "give a positive --epochs or --max-steps");
    /* Every real-valued option is checked against its range with the test
     * written so that NaN fails it too (!(lo <= x && x <= hi)): a NaN or
     * infinite learning rate used to train a model of NaNs and save it. */
    struct range {
        const char *name;
        double v, lo, hi;
        bool lo_open, hi_open;
    } r[] = {
        {"the learning rate (--learning-rate)", o->learning_rate, 0, NN_TRAIN_MAX_LR, true, false},
        {"the learning-rate decay factor (--lr-decay-factor)", o->lr_decay_factor, 0, 1, true, false},
        {"the epochs per learning-rate decay (--lr-decay-epochs)", o->lr_decay_epochs, 0, 1e6, true, false},
        {"the warm-up epochs (--warmup-epochs)", o->warmup_epochs, 0, 1e6, false, false},
        {"the epoch count (--epochs)", o->max_steps ? 1 : o->epochs, 0, 1e6, true, false},
        {"label smoothing (--label-smoothing)", o->label_smoothing, 0, 1, false, true},
        {"the batch-norm decay (--bn-decay)", o->bn_decay, 0, 1, false, true},
        {"the auxiliary loss weight (--aux-weight)", o->aux_weight, 0, 100, false, false},
        {"the checkpoint interval in seconds (--checkpoint-seconds)", o->checkpoint_seconds, 0, 1e9, false, false},
        {"the momentum (--momentum)", o->opt.momentum, 0, 1, false, true},
        {"the RMSProp decay (--rmsprop-decay)", o->opt.rms_decay, 0, 1, false, true},
        {"the optimizer epsilon (--epsilon)", o->opt.epsilon, 0, 1e3, true, false},
        {"Adam's beta1 (--adam-beta1)", o->opt.beta1, 0, 1, false, true},
        {"Adam's beta2 (--adam-beta2)", o->opt.beta2, 0, 1, false, true},
        {"the weight decay (--weight-decay)", o->opt.weight_decay, 0, 1, false, false},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        bool ok = (r[i].lo_open ? r[i].v > r[i].lo : r[i].v >= r[i].lo) &&
                  (r[i].hi_open ? r[i].v < r[i].hi : r[i].v <= r[i].hi);
        if (!ok)
            return nn_fail(NN_ERR_ARG, "%s is %g, not in %c%g, %g%c", r[i].name, r[i].v, r[i].lo_open ? '(' : '[',
                           r[i].lo, r[i].hi, r[i].hi_open ? ')' : ']');
    }
    if (o->image_size != 0 && (o->image_size < 75 || o->image_size > 4096))
        return nn_fail(NN_ERR_ARG, "image size %d is not in 75..4096", o->image_size);
    if (o->bn_recalibrate < 0 || o->eval_every < 0 || o->checkpoint_every < 0 || o->threads < 0 ||
        o->keep_checkpoints < 0 || o->eval_batch_size < 0)
        return nn_fail(NN_ERR_ARG, "negative count in the options");
    return NN_OK;
}

static enum nn_status setup(struct trainer *t, const struct nn_train_options *given)
{
    NN_TRY(check_options(given));
    t->o = *given;
    /* absolute paths, so that the run can be resumed from another directory */
    if ((t->data_abs = realpath(t->o.data_dir, NULL))) t->o.data_dir = t->data_abs;
    if (t->o.init_from && (t->init_abs = realpath(t->o.init_from, NULL))) t->o.init_from = t->init_abs;
    if (t->o.log_every < 1) t->o.log_every = 10;
    NN_TRY(nn_threads_set(t->o.threads));
    NN_TRY(make_dir(t->o.run_dir, &t->made_run_dir));
    nn_checkpoint_clean_temps(t->o.run_dir);

    int64_t *steps;
    int nckpt;
    NN_TRY(nn_checkpoint_list(t->o.run_dir, &steps, &nckpt));
    free(steps);
    if (nckpt && !t->o.resume)
        return nn_fail(NN_ERR_ARG, "%s already holds a run's checkpoints: pass --resume to continue it, or choose "
                       "another --out", t->o.run_dir);
    if (!nckpt && t->o.resume)
        return nn_fail(NN_ERR_NOT_FOUND, "%s: nothing to resume (no checkpoint); start the run without --resume",
                       t->o.run_dir);

    NN_TRY(nn_dataset_desc_read(t->o.data_dir, &t->desc));
    t->desc_ok = true;
    t->n_train = t->desc.split[NN_SPLIT_TRAIN].count;
    t->n_val = t->desc.split[NN_SPLIT_VALIDATION].count;
    if (t->n_train < t->o.batch_size)
        return nn_fail(NN_ERR_ARG, "%s: %ld training examples, fewer than one batch of %d: lower --batch-size",
                       t->o.data_dir, t->n_train, t->o.batch_size);

    struct nn_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    if (t->o.resume) {
        NN_TRY(nn_checkpoint_load_latest(t->o.run_dir, &ck));
        t->model = ck.model;
        ck.model = NULL;
        if (!t->o.image_size) t->o.image_size = t->model->cfg.image_size;
        enum nn_status st = nn_trainer_check_resume(nn_json_get(ck.trainer, "options"), &t->o);
        if (st == NN_OK && t->model->cfg.num_classes != t->desc.num_classes)
            st = nn_fail(NN_ERR_ARG, "%s has %d classes, the run's model %d", t->o.data_dir, t->desc.num_classes,
                         t->model->cfg.num_classes);
        if (st != NN_OK) {
            nn_checkpoint_free(&ck);
            return st;
        }
        nn_info("resuming %s from checkpoint %" PRId64, t->o.run_dir, ck.step);
    } else {
        NN_TRY(nn_trainer_make_model(&t->o, &t->desc, &t->model));
        t->o.image_size = t->model->cfg.image_size;
    }
    t->model->cfg.bn_decay = t->o.bn_decay;

    enum nn_status st = nn_trainer_trainable(t->model, t->o.trainable_scopes, t->o.bn_mode, &t->trainable);
    if (st == NN_OK) st = nn_optimizer_init(&t->opt, &t->o.opt, &t->model->params, t->trainable);
    if (st == NN_OK && t->o.resume) st = nn_checkpoint_restore_optimizer(&ck, &t->model->params, &t->opt);
    t->options_json = nn_train_options_json(&t->o);
    if (st == NN_OK && !t->options_json) st = nn_fail(NN_ERR_NOMEM, "out of memory");

    const int B = t->o.batch_size;
    t->bpe = t->n_train / B;
    t->total = t->o.max_steps > 0 ? t->o.max_steps : (long)ceil(t->o.epochs * (double)t->bpe - 1e-9);
    if (t->total < 1) t->total = 1;
    t->sched = (struct nn_lr_schedule){.kind = t->o.lr_schedule,
                                       .lr = t->o.learning_rate,
                                       .steps_per_epoch = (double)t->n_train / B,
                                       .decay_factor = t->o.lr_decay_factor,
                                       .decay_epochs = t->o.lr_decay_epochs,
                                       .warmup_epochs = t->o.warmup_epochs,
                                       .total_steps = t->total};

    bool can_cache = nn_heads_cover(&t->model->params, t->trainable) && !t->o.augment;
    if (st == NN_OK && t->o.cache == 1 && !can_cache)
        st = nn_fail(NN_ERR_ARG, "the bottleneck cache needs only head parameters trainable (fc, AuxLogits) and "
                     "augmentation off");
    t->cached = can_cache && t->o.cache != 0;
    if (st == NN_OK) {
        if (t->cached) {
            st = nn_heads_init(&t->heads, &t->model->cfg, &t->model->params, B, t->trainable);
            t->heads_ok = st == NN_OK;
            t->dropout_rng = &t->heads.dropout_rng;
        } else {
            st = nn_net_init(&t->net, &t->model->cfg, &t->model->params, B, t->trainable);
            t->net_ok = st == NN_OK;
            t->dropout_rng = &t->net.dropout_rng;
        }
    }
    if (st == NN_OK) {
        nn_rng_seed(t->dropout_rng, t->o.seed, STREAM_DROPOUT);
        t->last_ckpt_step = -1;
        if (t->o.resume) {
            st = restore(t, &ck);
            t->last_ckpt_step = t->step;
            /* a finished run given more steps goes on */
            if (t->step < t->total) t->finished = false;
        }
    }
    nn_checkpoint_free(&ck);
    if (st == NN_OK) st = nn_eval_init(&t->eval, t->model->cfg.num_classes);
    t->eval_ok = st == NN_OK;
    if (st != NN_OK) return st;

    /* the log and the options file */
    t->metrics_path = join(t->o.run_dir, "metrics.jsonl");
    char *opath = join(t->o.run_dir, "options.json");
    if (!t->metrics_path || !opath) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    if (st == NN_OK) st = t->o.resume ? truncate_metrics(t->metrics_path, t->step) : NN_OK;
    if (st == NN_OK && !t->o.resume) {
        struct nn_atomic_file af;
        st = nn_atomic_open(&af, opath);
        if (st == NN_OK) st = nn_write_all(&af, t->options_json, strlen(t->options_json));
        if (st == NN_OK) st = nn_write_all(&af, "\n", 1);
        if (st == NN_OK) st = nn_atomic_commit(&af);
        else nn_atomic_abort(&af);
    }
    free(opath);
    if (st == NN_OK && !(t->metrics = fopen(t->metrics_path, t->o.resume ? "a" : "w")))
        st = nn_fail(NN_ERR_IO, "%s: %s", t->metrics_path, strerror(errno));
    if (st != NN_OK) return st;

    /* the data */
    if (t->cached) {
        size_t feat = (size_t)t->heads.features, aux = t->heads.aux_floats;
        t->order = malloc((size_t)t->n_train * sizeof *t->order);
        t->bpre = nn_alloc((size_t)B * feat * sizeof(float));
        t->baux = aux ? nn_alloc((size_t)B * aux * sizeof(float)) : NULL;
        t->blabels = calloc((size_t)B, sizeof *t->blabels);
        if (!t->order || !t->bpre || (aux && !t->baux) || !t->blabels) return nn_fail(NN_ERR_NOMEM, "out of memory");
        t->order_epoch = -1;
        nn_info("only the heads train and images are not augmented: caching the trunk's outputs once per image");
        double c0 = now_s();
        NN_TRY(nn_bottleneck_build(t->model, &t->heads, t->o.data_dir, NN_SPLIT_TRAIN, B, t->o.threads,
                                   cache_progress, t, &t->train_cache));
        long usable = 0;
        for (long i = 0; i < t->n_train; i++) usable += t->train_cache.ok[i];
        if (!usable) return nn_fail(NN_ERR_CORRUPT, "%s: no training image could be read", t->o.data_dir);
        bool evals = t->n_val > 0 && (t->o.eval_at_end || t->o.eval_every > 0);
        if (evals)
            NN_TRY(nn_bottleneck_build(t->model, &t->heads, t->o.data_dir, NN_SPLIT_VALIDATION, B, t->o.threads,
                                       cache_progress, t, &t->val_cache));
        nn_info("cached %ld + %ld images in %.1f s", t->n_train, evals ? t->n_val : 0, now_s() - c0);
    } else {
        struct nn_pipeline_options po;
        nn_pipeline_options_default(&po);
        po.batch_size = B;
        po.image_size = t->model->cfg.image_size;
        po.central_fraction = t->model->central_fraction;
        po.seed = t->o.seed;
        po.train_transform = t->o.augment;
        po.threads = t->o.threads;
        po.start_epoch = t->pos.epoch;
        po.start_batch = t->pos.batch;
        NN_TRY(nn_pipeline_open(t->o.data_dir, NN_SPLIT_TRAIN, &po, &t->pipe));
    }
    return NN_OK;
}

/* ---- cancellation ---- */

static bool cancel_requested(const struct trainer *t) { return t->o.cancel && *t->o.cancel; }

/* Stops a run its caller asked to stop: the steps done since the last
 * checkpoint are kept in a new one, so that --resume loses nothing. */
static enum nn_status stop_cancelled(struct trainer *t)
{
    if (t->step == 0)
        return nn_fail(NN_ERR_CANCELLED, "stopped before the first training step: nothing to save");
    if (t->step != t->last_ckpt_step) {
        struct nn_strbuf b;
        metrics_begin(t, &b);
        nn_strbuf_append(&b, "\"event\":\"interrupted\",", 22);
        NN_TRY(metrics_end(t, &b));
        NN_TRY(checkpoint(t));
    }
    return nn_fail(NN_ERR_CANCELLED,
                   "stopped at step %ld of %ld; checkpoint %s/checkpoints/ckpt-%ld holds it: continue with --resume",
                   t->step, t->total, t->o.run_dir, t->last_ckpt_step);
}

static enum nn_status finish(struct trainer *t)
{
    if (t->o.bn_recalibrate > 0) NN_TRY(recalibrate(t, t->o.bn_recalibrate, &t->res->recalibrated));
    if (t->o.eval_at_end && t->n_val > 0) {
        NN_TRY(evaluate(t));
        t->res->evaluated = true;
        t->res->top1 = nn_eval_top1(&t->eval);
        t->res->top5 = nn_eval_top5(&t->eval);
        t->res->eval_count = t->eval.count;
    }
    t->finished = true;
    return checkpoint(t);
}

/* A failed run leaves no empty run directory behind (nor an empty
 * checkpoints/ in it); rmdir removes only what is empty, so nothing a run
 * wrote is lost. */
static void remove_if_empty(const char *run_dir)
{
    char *ck = join(run_dir, "checkpoints");
    if (ck) rmdir(ck);
    free(ck);
    if (rmdir(run_dir) == 0) nn_debug("%s: removed, the failed run left nothing in it", run_dir);
}

enum nn_status nn_train(const struct nn_train_options *opt, nn_train_progress_fn progress, void *user,
                        struct nn_train_result *result)
{
    struct nn_train_result dummy;
    if (!result) result = &dummy;
    memset(result, 0, sizeof *result);
    if (!opt) return nn_fail(NN_ERR_ARG, "nn_train: NULL options");
    struct trainer t;
    memset(&t, 0, sizeof t);
    t.progress = progress;
    t.user = user;
    t.res = result;
    t.t0 = now_s();
    const double call_t0 = t.t0;
    enum nn_status st = setup(&t, opt);
    /* the caching phase can take minutes: a request that came during it is
     * seen before the first step */
    if (st == NN_OK && cancel_requested(&t)) st = stop_cancelled(&t);
    if (st == NN_OK) {
        result->cached = t.cached;
        result->total_steps = t.total;
        t.first_step = t.step;
        t.t0 = t.interval_t0 = t.last_ckpt_t = now_s();
        if (t.step < t.total)
            nn_info("training steps %ld..%ld (%.2f epochs of %ld batches of %d), %s, learning rate %g (%s)",
                    t.step + 1, t.total, (double)t.total / t.bpe, t.bpe, t.o.batch_size,
                    nn_optimizer_name(t.o.opt.kind), t.o.learning_rate, nn_lr_name(t.o.lr_schedule));
    }
    while (st == NN_OK && t.step < t.total) {
        st = step(&t);
        if (st != NN_OK) break;
        if (t.step % WEIGHT_CHECK_EVERY == 0) st = check_weights(&t);
        if (st != NN_OK) break;
        bool last = t.step == t.total;
        if (t.step % t.o.log_every == 0 || last) st = log_interval(&t);
        report(&t, "training", t.step, t.total, t.t0);
        if (st == NN_OK && !last && t.o.eval_every > 0 && t.step % t.o.eval_every == 0) st = validate(&t);
        /* the final checkpoint comes after the final evaluation (finish) */
        bool due = (t.o.checkpoint_every > 0 && t.step % t.o.checkpoint_every == 0) ||
                   (t.o.checkpoint_seconds > 0 && now_s() - t.last_ckpt_t >= t.o.checkpoint_seconds);
        if (st == NN_OK && !last && due) st = checkpoint(&t);
        if (st == NN_OK && cancel_requested(&t)) st = stop_cancelled(&t);
    }
    if (st == NN_OK && !t.finished) st = finish(&t);
    if (st == NN_OK) st = check_weights(&t);
    if (st == NN_OK) {
        char *final_path = join(t.o.run_dir, "final.nnm");
        st = final_path ? nn_model_save(t.model, final_path) : nn_fail(NN_ERR_NOMEM, "out of memory");
        if (st == NN_OK) nn_info("model written to %s", final_path);
        free(final_path);
    }
    result->steps = t.step;
    result->last_loss = t.last_loss;
    result->seconds = now_s() - call_t0;
    bool made = t.made_run_dir;
    trainer_free(&t);
    if (st != NN_OK && made) remove_if_empty(opt->run_dir);
    return st;
}
