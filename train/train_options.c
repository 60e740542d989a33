/* Defaults of nn_train and their JSON form (RUN_DIR/options.json and the
 * copy inside every checkpoint). */
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "train/trainer.h"

const char *nn_bn_mode_name(enum nn_bn_mode m) { return m == NN_BN_FROZEN ? "frozen" : "train"; }

enum nn_status nn_bn_mode_parse(const char *name, enum nn_bn_mode *out)
{
    if (name && !strcmp(name, "train")) *out = NN_BN_TRAIN;
    else if (name && !strcmp(name, "frozen")) *out = NN_BN_FROZEN;
    else return nn_fail(NN_ERR_ARG, "unknown batch-norm mode '%s' (train or frozen)", name ? name : "");
    return NN_OK;
}

void nn_train_options_default(struct nn_train_options *o)
{
    memset(o, 0, sizeof *o);
    nn_optimizer_options_default(&o->opt);
    o->lr_schedule = NN_LR_EXPONENTIAL;
    o->learning_rate = 0.01;
    o->lr_decay_factor = 0.94;
    o->lr_decay_epochs = 2.0;
    o->batch_size = 32;
    o->epochs = 1;
    o->bn_decay = 0.9997f;
    o->aux_weight = 0.4f;
    o->bn_mode = NN_BN_TRAIN;
    o->augment = true;
    o->cache = -1;
    o->seed = 1;
    o->eval_at_end = true;
    o->log_every = 10;
    o->checkpoint_every = 1000;
    o->checkpoint_seconds = 600;
    o->keep_checkpoints = 3;
}

static void put_str(struct nn_strbuf *b, const char *key, const char *v)
{
    nn_strbuf_printf(b, "\"%s\":", key);
    if (v) nn_strbuf_json_string(b, v);
    else nn_strbuf_append(b, "null", 4);
    nn_strbuf_append(b, ",", 1);
}

static void put_num(struct nn_strbuf *b, const char *key, double v)
{
    nn_strbuf_printf(b, "\"%s\":", key);
    nn_strbuf_json_number(b, v);
    nn_strbuf_append(b, ",", 1);
}

char *nn_train_options_json(const struct nn_train_options *o)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{", 1);
    put_str(&b, "data", o->data_dir);
    put_str(&b, "init_from", o->init_from);
    put_str(&b, "trainable_scopes", o->trainable_scopes && *o->trainable_scopes ? o->trainable_scopes : NULL);
    put_str(&b, "optimizer", nn_optimizer_name(o->opt.kind));
    put_num(&b, "momentum", o->opt.momentum);
    put_num(&b, "rmsprop_decay", o->opt.rms_decay);
    put_num(&b, "epsilon", o->opt.epsilon);
    put_num(&b, "adam_beta1", o->opt.beta1);
    put_num(&b, "adam_beta2", o->opt.beta2);
    put_num(&b, "weight_decay", o->opt.weight_decay);
    put_str(&b, "lr_schedule", nn_lr_name(o->lr_schedule));
    put_num(&b, "learning_rate", o->learning_rate);
    put_num(&b, "lr_decay_factor", o->lr_decay_factor);
    put_num(&b, "lr_decay_epochs", o->lr_decay_epochs);
    put_num(&b, "warmup_epochs", o->warmup_epochs);
    put_num(&b, "label_smoothing", o->label_smoothing);
    put_num(&b, "batch_size", o->batch_size);
    put_num(&b, "epochs", o->epochs);
    put_num(&b, "max_steps", (double)o->max_steps);
    put_num(&b, "image_size", o->image_size);
    put_num(&b, "bn_decay", o->bn_decay);
    put_num(&b, "aux_weight", o->aux_weight);
    put_str(&b, "bn_mode", nn_bn_mode_name(o->bn_mode));
    nn_strbuf_printf(&b, "\"augment\":%s,", o->augment ? "true" : "false");
    put_num(&b, "cache", o->cache);
    /* a seed is 64 bits: a string keeps it exact */
    nn_strbuf_printf(&b, "\"seed\":\"%" PRIu64 "\",", o->seed);
    put_num(&b, "threads", o->threads);
    put_num(&b, "eval_every", (double)o->eval_every);
    nn_strbuf_printf(&b, "\"eval_at_end\":%s,", o->eval_at_end ? "true" : "false");
    put_num(&b, "eval_batch_size", o->eval_batch_size);
    put_num(&b, "bn_recalibrate", o->bn_recalibrate);
    put_num(&b, "log_every", (double)o->log_every);
    put_num(&b, "checkpoint_every", (double)o->checkpoint_every);
    put_num(&b, "checkpoint_seconds", o->checkpoint_seconds);
    put_num(&b, "keep_checkpoints", o->keep_checkpoints);
    put_str(&b, "stage", o->stage);
    if (!nn_strbuf_end_object(&b)) {
        nn_strbuf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Typed readers: absent keys leave the value alone; a key of the wrong type is an error. */
static enum nn_status get_num(const struct nn_json *j, const char *key, double *v)
{
    const struct nn_json *x = nn_json_get(j, key);
    if (!x || nn_json_type(x) == NN_JSON_NULL) return NN_OK;
    if (nn_json_type(x) != NN_JSON_NUMBER) return nn_fail(NN_ERR_FORMAT, "options: '%s' is not a number", key);
    *v = nn_json_number(x);
    return NN_OK;
}

/* Conversions from the file's numbers are checked first: a double outside
 * the target's range (1e300 as an int or a float) converts with undefined
 * behaviour, and an integer option written 2.5 is not an integer. */
static enum nn_status get_float(const struct nn_json *j, const char *key, float *v)
{
    double d = *v;
    NN_TRY(get_num(j, key, &d));
    if (!(fabs(d) <= FLT_MAX)) return nn_fail(NN_ERR_FORMAT, "options: '%s' (%g) is out of range", key, d);
    *v = (float)d;
    return NN_OK;
}

static enum nn_status get_integer(const struct nn_json *j, const char *key, long lo, long hi, long *v)
{
    const struct nn_json *x = nn_json_get(j, key);
    if (!x || nn_json_type(x) == NN_JSON_NULL) return NN_OK;
    int64_t i;
    if (!nn_json_int(x, &i) || i < lo || i > hi)
        return nn_fail(NN_ERR_FORMAT, "options: '%s' is not an integer in %ld..%ld", key, lo, hi);
    *v = (long)i;
    return NN_OK;
}

static enum nn_status get_int(const struct nn_json *j, const char *key, int *v)
{
    long l = *v;
    NN_TRY(get_integer(j, key, INT_MIN, INT_MAX, &l));
    *v = (int)l;
    return NN_OK;
}

static enum nn_status get_long(const struct nn_json *j, const char *key, long *v)
{
    return get_integer(j, key, LONG_MIN, LONG_MAX, v);
}

static enum nn_status get_bool(const struct nn_json *j, const char *key, bool *v)
{
    const struct nn_json *x = nn_json_get(j, key);
    if (!x) return NN_OK;
    if (nn_json_type(x) != NN_JSON_BOOL) return nn_fail(NN_ERR_FORMAT, "options: '%s' is not true or false", key);
    *v = nn_json_bool(x);
    return NN_OK;
}

static enum nn_status get_str(const struct nn_json *j, const char *key, const char **v)
{
    const struct nn_json *x = nn_json_get(j, key);
    if (!x) return NN_OK;
    if (nn_json_type(x) == NN_JSON_NULL) {
        *v = NULL;
        return NN_OK;
    }
    if (!nn_json_string(x)) return nn_fail(NN_ERR_FORMAT, "options: '%s' is not a string", key);
    *v = nn_json_string(x);
    return NN_OK;
}

enum nn_status nn_train_options_from_json(const struct nn_json *j, struct nn_train_options *o)
{
    if (!j || nn_json_type(j) != NN_JSON_OBJECT) return nn_fail(NN_ERR_FORMAT, "options: not a JSON object");
    const char *s = NULL;
    NN_TRY(get_str(j, "data", &o->data_dir));
    NN_TRY(get_str(j, "init_from", &o->init_from));
    NN_TRY(get_str(j, "trainable_scopes", &o->trainable_scopes));
    s = NULL;
    NN_TRY(get_str(j, "optimizer", &s));
    if (s) NN_TRY(nn_optimizer_parse(s, &o->opt.kind));
    NN_TRY(get_float(j, "momentum", &o->opt.momentum));
    NN_TRY(get_float(j, "rmsprop_decay", &o->opt.rms_decay));
    NN_TRY(get_float(j, "epsilon", &o->opt.epsilon));
    NN_TRY(get_float(j, "adam_beta1", &o->opt.beta1));
    NN_TRY(get_float(j, "adam_beta2", &o->opt.beta2));
    NN_TRY(get_float(j, "weight_decay", &o->opt.weight_decay));
    s = NULL;
    NN_TRY(get_str(j, "lr_schedule", &s));
    if (s) NN_TRY(nn_lr_parse(s, &o->lr_schedule));
    NN_TRY(get_num(j, "learning_rate", &o->learning_rate));
    NN_TRY(get_num(j, "lr_decay_factor", &o->lr_decay_factor));
    NN_TRY(get_num(j, "lr_decay_epochs", &o->lr_decay_epochs));
    NN_TRY(get_num(j, "warmup_epochs", &o->warmup_epochs));
    NN_TRY(get_float(j, "label_smoothing", &o->label_smoothing));
    NN_TRY(get_int(j, "batch_size", &o->batch_size));
    NN_TRY(get_num(j, "epochs", &o->epochs));
    NN_TRY(get_long(j, "max_steps", &o->max_steps));
    NN_TRY(get_int(j, "image_size", &o->image_size));
    NN_TRY(get_float(j, "bn_decay", &o->bn_decay));
    NN_TRY(get_float(j, "aux_weight", &o->aux_weight));
    s = NULL;
    NN_TRY(get_str(j, "bn_mode", &s));
    if (s) NN_TRY(nn_bn_mode_parse(s, &o->bn_mode));
    NN_TRY(get_bool(j, "augment", &o->augment));
    NN_TRY(get_int(j, "cache", &o->cache));
    s = NULL;
    NN_TRY(get_str(j, "seed", &s));
    if (s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end || !*s) return nn_fail(NN_ERR_FORMAT, "options: seed '%s' is not an integer", s);
        o->seed = v;
    }
    NN_TRY(get_int(j, "threads", &o->threads));
    NN_TRY(get_long(j, "eval_every", &o->eval_every));
    NN_TRY(get_bool(j, "eval_at_end", &o->eval_at_end));
    NN_TRY(get_int(j, "eval_batch_size", &o->eval_batch_size));
    NN_TRY(get_int(j, "bn_recalibrate", &o->bn_recalibrate));
    NN_TRY(get_long(j, "log_every", &o->log_every));
    NN_TRY(get_long(j, "checkpoint_every", &o->checkpoint_every));
    NN_TRY(get_num(j, "checkpoint_seconds", &o->checkpoint_seconds));
    NN_TRY(get_int(j, "keep_checkpoints", &o->keep_checkpoints));
    NN_TRY(get_str(j, "stage", &o->stage));
    return NN_OK;
}

enum nn_status nn_train_options_load(const char *run_dir, struct nn_train_options *o, struct nn_json **storage)
{
    *storage = NULL;
    size_t n = strlen(run_dir) + 32;
    char *path = malloc(n);
    if (!path) return nn_fail(NN_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s/options.json", run_dir);
    char *text;
    size_t len;
    enum nn_status st = nn_read_file(path, &text, &len);
    if (st == NN_OK) {
        st = nn_json_parse(text, len, storage);
        free(text);
        if (st == NN_OK) st = nn_train_options_from_json(*storage, o);
        if (st != NN_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", nn_last_error());
            st = nn_fail(st, "%s: %s", path, why);
            nn_json_free(*storage);
            *storage = NULL;
        }
    }
    free(path);
    return st;
}
