#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

#define STATE_FORMAT "nn-train-state"

static char *ckpt_path(const char *run_dir, int64_t step, const char *ext)
{
    size_t n = strlen(run_dir) + 64;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/checkpoints/ckpt-%" PRId64 ".%s", run_dir, step, ext);
    return p;
}

static enum nn_status make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return NN_OK;
        return nn_fail(NN_ERR_IO, "%s: exists and is not a directory", path);
    }
    return nn_fail(NN_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
}

/* "ckpt-<digits>.<ext>" -> step; -1 if the name is not of that form. */
static int64_t parse_name(const char *name, const char *ext)
{
    if (strncmp(name, "ckpt-", 5)) return -1;
    const char *s = name + 5;
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '.' || strcmp(end + 1, ext)) return -1;
    return (int64_t)v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

enum nn_status nn_checkpoint_list(const char *run_dir, int64_t **steps, int *count)
{
    *steps = NULL;
    *count = 0;
    size_t n = strlen(run_dir) + 16;
    char *dir = malloc(n);
    if (!dir) return nn_fail(NN_ERR_NOMEM, "out of memory");
    snprintf(dir, n, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d) {
        enum nn_status st = errno == ENOENT ? NN_OK : nn_fail(NN_ERR_IO, "%s: %s", dir, strerror(errno));
        free(dir);
        return st;
    }
    int cap = 0, k = 0;
    int64_t *v = NULL;
    enum nn_status st = NN_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = parse_name(e->d_name, "state");
        if (s < 0) continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                st = nn_fail(NN_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        v[k++] = s;
    }
    closedir(d);
    free(dir);
    if (st != NN_OK) {
        free(v);
        return st;
    }
    qsort(v, (size_t)k, sizeof *v, cmp_i64);
    *steps = v;
    *count = k;
    return NN_OK;
}

static char *state_meta(int64_t step, const struct nn_optimizer *o, const char *trainer_json)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    const struct nn_optimizer_options *p = &o->opt;
    nn_strbuf_printf(&b, "{\"format\":\"" STATE_FORMAT "\",\"version\":%d,\"step\":%" PRId64 ",", NN_TRAIN_STATE_VERSION,
                     step);
    nn_strbuf_printf(&b, "\"optimizer\":{\"kind\":\"%s\",\"updates\":%" PRId64 ",\"slots\":[", nn_optimizer_name(p->kind),
                     o->updates);
    for (int s = 0; s < o->nslots; s++) {
        if (s) nn_strbuf_append(&b, ",", 1);
        nn_strbuf_json_string(&b, nn_optimizer_slot_name(o, s));
    }
    nn_strbuf_append(&b, "]},\"trainer\":", 13);
    nn_strbuf_append(&b, trainer_json ? trainer_json : "{}", strlen(trainer_json ? trainer_json : "{}"));
    nn_strbuf_append(&b, "}", 1);
    if (b.failed) {
        nn_strbuf_free(&b);
        return NULL;
    }
    return b.data;
}

static enum nn_status write_state(const char *path, int64_t step, const struct nn_model *m,
                                  const struct nn_optimizer *o, const char *trainer_json)
{
    int ntrain = 0;
    for (int i = 0; i < o->count; i++) ntrain += o->trainable[i];
    int count = ntrain * o->nslots;
    struct nn_mf_tensor *ts = calloc((size_t)count + 1, sizeof *ts);
    char *names = calloc((size_t)count + 1, 2 * NN_PARAM_NAME_MAX);
    char *meta = state_meta(step, o, trainer_json);
    if (!ts || !names || !meta) {
        free(ts);
        free(names);
        free(meta);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    }
    int k = 0;
    for (int s = 0; s < o->nslots; s++)
        for (int i = 0; i < o->count; i++) {
            if (!o->trainable[i]) continue;
            const struct nn_param *p = &m->params.items[i];
            char *name = names + (size_t)k * 2 * NN_PARAM_NAME_MAX;
            snprintf(name, 2 * NN_PARAM_NAME_MAX, "%s/%s", nn_optimizer_slot_name(o, s), p->name);
            ts[k].name = name;
            ts[k].ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++) ts[k].shape[d] = p->shape[d];
            ts[k].data = nn_optimizer_slot(o, s, i);
            k++;
        }
    enum nn_status st = nn_modelfile_write(path, meta, ts, count);
    free(ts);
    free(names);
    free(meta);
    return st;
}

static void remove_checkpoint(const char *run_dir, int64_t step)
{
    /* the .state first: without it the rest is not a checkpoint */
    const char *exts[] = {"state", "nnm"};
    for (int k = 0; k < 2; k++) {
        char *p = ckpt_path(run_dir, step, exts[k]);
        if (p && unlink(p) != 0 && errno != ENOENT) nn_warn("%s: cannot remove: %s", p, strerror(errno));
        free(p);
    }
}

enum nn_status nn_checkpoint_save(const char *run_dir, int64_t step, const struct nn_model *m,
                                  const struct nn_optimizer *o, const char *trainer_json, int keep)
{
    if (!run_dir || !m || !o) return nn_fail(NN_ERR_ARG, "nn_checkpoint_save: NULL argument");
    if (o->count != m->params.count)
        return nn_fail(NN_ERR_ARG, "checkpoint: the optimizer covers %d parameters, the model has %d", o->count,
                       m->params.count);
    /* the trainer checks first and says more; this keeps any caller from
     * writing a checkpoint that would resume into NaNs */
    float bad_value = 0;
    int bad = nn_params_first_nonfinite(&m->params, &bad_value);
    if (bad >= 0)
        return nn_fail(NN_ERR_ARG, "checkpoint %" PRId64 ": parameter %s holds %g; a model that is not finite is not "
                       "saved", step, m->params.items[bad].name, (double)bad_value);
    NN_TRY(make_dir(run_dir));
    size_t n = strlen(run_dir) + 16;
    char *dir = malloc(n);
    if (!dir) return nn_fail(NN_ERR_NOMEM, "out of memory");
    snprintf(dir, n, "%s/checkpoints", run_dir);
    enum nn_status st = make_dir(dir);
    free(dir);
    if (st != NN_OK) return st;

    char *model_path = ckpt_path(run_dir, step, "nnm"), *state_path = ckpt_path(run_dir, step, "state");
    if (!model_path || !state_path) st = nn_fail(NN_ERR_NOMEM, "out of memory");
    /* A re-save of the same step (a resumed run that checkpoints where it
     * started) must never leave a new model next to an old .state. */
    if (st == NN_OK && unlink(state_path) != 0 && errno != ENOENT)
        st = nn_fail(NN_ERR_IO, "%s: cannot replace: %s", state_path, strerror(errno));
    if (st == NN_OK) st = nn_model_save(m, model_path);
    if (st == NN_OK) st = write_state(state_path, step, m, o, trainer_json);
    free(model_path);
    free(state_path);
    if (st != NN_OK || keep <= 0) return st;

    int64_t *steps;
    int count;
    if (nn_checkpoint_list(run_dir, &steps, &count) != NN_OK) {
        nn_warn("%s/checkpoints: cannot list old checkpoints: %s", run_dir, nn_last_error());
        return NN_OK;
    }
    for (int i = 0; i + keep < count; i++) remove_checkpoint(run_dir, steps[i]);
    free(steps);
    return NN_OK;
}

void nn_checkpoint_free(struct nn_checkpoint *c)
{
    if (!c) return;
    nn_model_free(c->model);
    if (c->state) nn_modelfile_close(c->state);
    nn_json_free(c->meta);
    memset(c, 0, sizeof *c);
}

enum nn_status nn_checkpoint_load(const char *run_dir, int64_t step, struct nn_checkpoint *out)
{
    memset(out, 0, sizeof *out);
    out->step = step;
    char *model_path = ckpt_path(run_dir, step, "nnm"), *state_path = ckpt_path(run_dir, step, "state");
    enum nn_status st = model_path && state_path ? NN_OK : nn_fail(NN_ERR_NOMEM, "out of memory");
    if (st == NN_OK) st = nn_modelfile_open(state_path, &out->state);
    if (st == NN_OK) {
        const char *meta = nn_modelfile_meta(out->state);
        st = nn_json_parse(meta, strlen(meta), &out->meta);
        if (st != NN_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", nn_last_error());
            st = nn_fail(NN_ERR_FORMAT, "%s: metadata: %s", state_path, why);
        }
    }
    if (st == NN_OK) {
        const struct nn_json *fmt = nn_json_get(out->meta, "format"), *ver = nn_json_get(out->meta, "version");
        const struct nn_json *stp = nn_json_get(out->meta, "step");
        int64_t v = 0, s = -1;
        if (!fmt || !nn_json_string(fmt) || strcmp(nn_json_string(fmt), STATE_FORMAT))
            st = nn_fail(NN_ERR_FORMAT, "%s: not an nn training state file", state_path);
        else if (!ver || !nn_json_int(ver, &v) || v < 1)
            st = nn_fail(NN_ERR_FORMAT, "%s: no valid version", state_path);
        else if (v > NN_TRAIN_STATE_VERSION)
            st = nn_fail(NN_ERR_UNSUPPORTED, "%s: version %" PRId64 " is newer than this nn reads (%d)", state_path, v,
                         NN_TRAIN_STATE_VERSION);
        else if (!stp || !nn_json_int(stp, &s) || s != step)
            st = nn_fail(NN_ERR_FORMAT, "%s: records step %" PRId64 ", its name says %" PRId64, state_path, s, step);
        else if (!(out->trainer = nn_json_get(out->meta, "trainer")) || nn_json_type(out->trainer) != NN_JSON_OBJECT)
            st = nn_fail(NN_ERR_FORMAT, "%s: no trainer state", state_path);
    }
    if (st == NN_OK) st = nn_model_load(model_path, &out->model);
    free(model_path);
    free(state_path);
    if (st != NN_OK) nn_checkpoint_free(out);
    return st;
}

enum nn_status nn_checkpoint_load_latest(const char *run_dir, struct nn_checkpoint *out)
{
    memset(out, 0, sizeof *out);
    int64_t *steps;
    int count;
    NN_TRY(nn_checkpoint_list(run_dir, &steps, &count));
    for (int i = count - 1; i >= 0; i--) {
        if (nn_checkpoint_load(run_dir, steps[i], out) == NN_OK) {
            free(steps);
            return NN_OK;
        }
        nn_warn("checkpoint %" PRId64 " of %s is unusable (%s)%s", steps[i], run_dir, nn_last_error(),
                i > 0 ? "; trying the one before it" : "");
    }
    free(steps);
    return nn_fail(NN_ERR_NOT_FOUND, "%s: no usable checkpoint in %s/checkpoints", run_dir, run_dir);
}

enum nn_status nn_checkpoint_restore_optimizer(const struct nn_checkpoint *c, const struct nn_params *params,
                                               struct nn_optimizer *o)
{
    const struct nn_json *oj = nn_json_get(c->meta, "optimizer");
    const struct nn_json *kind = oj ? nn_json_get(oj, "kind") : NULL, *upd = oj ? nn_json_get(oj, "updates") : NULL;
    int64_t updates = 0;
    if (!kind || !nn_json_string(kind) || !upd || !nn_json_int(upd, &updates))
        return nn_fail(NN_ERR_FORMAT, "checkpoint %" PRId64 ": no optimizer state", c->step);
    if (strcmp(nn_json_string(kind), nn_optimizer_name(o->opt.kind)))
        return nn_fail(NN_ERR_ARG, "checkpoint %" PRId64 " was made with optimizer %s, not %s", c->step,
                       nn_json_string(kind), nn_optimizer_name(o->opt.kind));
    if (params->count != o->count)
        return nn_fail(NN_ERR_SHAPE, "checkpoint %" PRId64 ": %d parameters, the optimizer has %d", c->step,
                       params->count, o->count);
    int expected = 0;
    for (int s = 0; s < o->nslots; s++)
        for (int i = 0; i < o->count; i++) {
            if (!o->trainable[i]) continue;
            expected++;
            char name[2 * NN_PARAM_NAME_MAX];
            snprintf(name, sizeof name, "%s/%s", nn_optimizer_slot_name(o, s), params->items[i].name);
            const struct nn_mf_tensor *t = nn_modelfile_find(c->state, name);
            size_t n = 1;
            if (t)
                for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
            if (!t || n != params->items[i].count || t->dtype != NN_MF_F32)
                return nn_fail(NN_ERR_FORMAT,
                               "checkpoint %" PRId64 ": optimizer slot %s is %s (were different layers trainable?)",
                               c->step, name, !t ? "missing" : t->dtype != NN_MF_F32 ? "not float32" : "the wrong size");
            memcpy(nn_optimizer_slot(o, s, i), t->data, n * sizeof(float));
        }
    if (nn_modelfile_count(c->state) != expected)
        return nn_fail(NN_ERR_FORMAT,
                       "checkpoint %" PRId64 " holds optimizer state for %d tensors, this run trains %d: the "
                       "trainable layers differ",
                       c->step, nn_modelfile_count(c->state), expected);
    o->updates = updates;
    return NN_OK;
}

/* Removes dir/NAME.tmp.* for the names `ours` accepts: the
 * temporary files of base/fileio.h's atomic writes, left when a process
 * was killed while writing. */
static void clean_dir(const char *dir, bool (*ours)(const char *name, size_t len))
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        if (!tmp || !ours(e->d_name, (size_t)(tmp - e->d_name))) continue;
        size_t m = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(m);
        if (!p) break;
        snprintf(p, m, "%s/%s", dir, e->d_name);
        if (unlink(p) == 0) nn_info("removed %s, left by an interrupted write", p);
        free(p);
    }
    closedir(d);
}

static bool checkpoint_file(const char *name, size_t len) { return len > 5 && !strncmp(name, "ckpt-", 5); }

/* The files a run writes at its top level (train/trainer.c). */
static bool run_file(const char *name, size_t len)
{
    static const char *const files[] = {"final.nnm", "options.json", "metrics.jsonl"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (len == strlen(files[i]) && !strncmp(name, files[i], len)) return true;
    return false;
}

void nn_checkpoint_clean_temps(const char *run_dir)
{
    size_t n = strlen(run_dir) + 16;
    char *dir = malloc(n);
    if (!dir) return;
    snprintf(dir, n, "%s/checkpoints", run_dir);
    clean_dir(dir, checkpoint_file);
    free(dir);
    clean_dir(run_dir, run_file);
}
