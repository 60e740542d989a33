/* Worker threads fill batch slots; the consumer holds one slot while the
 * workers fill the next (one batch ahead). All workers share the examples of
 * the oldest unfinished slot, so a batch is ready as soon as possible and
 * the threads never wait on each other inside a batch. */
#include "train/pipeline.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "io/image.h"

#define SLOTS 2
#define MAX_WORKERS 64

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

struct slot {
    enum slot_state state;
    struct nn_batch batch;
    int planned;         /* examples assigned */
    int claimed;         /* next example to hand to a worker */
    int finished;        /* examples done (well or not) */
    unsigned char *ok;   /* [batch_size] */
};

struct worker {
    struct nn_pipeline *p;
    int id;
    pthread_t tid;
    struct nn_record_buf buf;
    char why[NN_RECORD_MAX_PATH + 512];   /* the last example's failure */
};

struct nn_pipeline {
    struct nn_pipeline_options opt;
    struct nn_dataset *ds;
    enum nn_split split;
    long n, batches_per_epoch;
    int min_side;

    pthread_mutex_t lock;
    pthread_cond_t work;      /* workers wait: a slot to fill or examples to claim */
    pthread_cond_t ready;     /* the consumer waits: a slot became ready */
    int stopping;
    struct slot slots[SLOTS];
    long *order;              /* visiting order of fill_epoch */
    long order_epoch;         /* which epoch `order` holds (-1: none) */
    long fill_epoch, fill_batch;      /* next batch to give a slot */
    long next_epoch, next_batch;      /* next batch for the consumer */
    struct slot *held;
    long skipped;
    /* A record that cannot be read fails again every epoch: it is warned
     * about the first time only (one bit per example). A whole epoch of
     * batches without one usable example ends the pipeline with an error
     * (else an endless run would skip forever). */
    unsigned char *warned;
    long bad_records;         /* distinct examples that failed */
    long empty_run;           /* consecutive batches of nothing but failures */
    char first_failure[NN_RECORD_MAX_PATH + 512];
    char *dir;

    int nworkers;
    struct worker workers[MAX_WORKERS];
};

void nn_pipeline_options_default(struct nn_pipeline_options *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = 32;
    o->image_size = 299;
    o->seed = 1;
    o->shuffle = true;
    o->train_transform = true;
    nn_augment_defaults(&o->augment);
    o->central_fraction = 0.875f;
    o->drop_last = true;
}

void nn_pipeline_options_eval(struct nn_pipeline_options *o)
{
    nn_pipeline_options_default(o);
    o->shuffle = false;
    o->train_transform = false;
    o->drop_last = false;
    o->epochs = 1;
}

/* splitmix64: spreads (seed, epoch, purpose) over independent PCG seeds. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

enum { PURPOSE_ORDER = 1, PURPOSE_AUGMENT = 2 };

static uint64_t derive_seed(uint64_t seed, long epoch, int purpose)
{
    return mix(mix(seed) ^ mix((uint64_t)epoch * 4 + (uint64_t)purpose));
}

void nn_pipeline_epoch_order(uint64_t seed, long epoch, bool shuffle, long n, long *order)
{
    for (long i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    struct nn_rng rng;
    nn_rng_seed(&rng, derive_seed(seed, epoch, PURPOSE_ORDER), 0);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)nn_rng_below(&rng, (uint32_t)(i + 1));
        long t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Why DCT scaling is safe for the training transform: the random crop
 * covers at least max(area_min, min_object_covered) of the image with an
 * aspect ratio in [aspect_min, aspect_max], so its shorter side is at least
 * f = sqrt(area * min(r, 1/r)) times the image's shorter side. Decoding at a
 * reduced scale whose shorter side is still >= (size + 2) / f leaves every
 * possible crop with at least `size` pixels on each side (2 spare for the
 * box's rounding), so the bilinear resize to size x size still only shrinks:
 * the reduced decode is one more downscale before it, not lost detail the
 * crop would have shown. The eval transform is never scaled (it must match
 * the golden files exactly). */
int nn_pipeline_train_min_side(int image_size, const struct nn_augment_options *aug)
{
    if (!aug->distort_crop) return image_size;
    double area = aug->area_min > aug->min_object_covered ? aug->area_min : aug->min_object_covered;
    double r = aug->aspect_min < 1 / aug->aspect_min ? aug->aspect_min : 1 / aug->aspect_min;
    double r2 = aug->aspect_max < 1 / aug->aspect_max ? aug->aspect_max : 1 / aug->aspect_max;
    if (r2 < r) r = r2;
    double f = sqrt(area * r);
    if (!(f > 0)) return 0;
    return (int)ceil((image_size + 2) / f);
}

/* ---- one example ---- */

static void process(struct nn_pipeline *p, struct worker *w, struct slot *s, int k)
{
    long index = s->batch.examples[k];
    const long size = p->opt.image_size;
    float *out = s->batch.images + (size_t)k * size * size * 3;
    struct nn_record rec;
    s->ok[k] = 0;
    if (nn_dataset_read(p->ds, p->split, index, &w->buf, &rec) != NN_OK) {
        snprintf(w->why, sizeof w->why, "%s", nn_last_error());
        return;
    }
    const char *shard = "?";
    long record = -1;
    nn_dataset_locate(p->ds, p->split, index, &shard, &record);
    char name[NN_RECORD_MAX_PATH + 128];
    snprintf(name, sizeof name, "%s: record %ld (%s)", shard, record, rec.path);
    struct nn_image img = {0};
    enum nn_status st = nn_image_decode(rec.data, rec.data_len, name, p->opt.train_transform ? p->min_side : 0, &img);
    if (st == NN_OK) {
        if (p->opt.train_transform) {
            struct nn_rng rng;
            nn_rng_seed(&rng, derive_seed(p->opt.seed, s->batch.epoch, PURPOSE_AUGMENT), (uint64_t)index);
            st = nn_augment_train(&img, (int)size, &p->opt.augment, &rng, out);
        } else {
            st = nn_image_eval_transform(&img, (int)size, p->opt.central_fraction, out);
        }
    }
    nn_image_free(&img);
    if (st != NN_OK) {
        snprintf(w->why, sizeof w->why, "%s", nn_last_error());
        return;
    }
    s->batch.labels[k] = rec.label;
    s->ok[k] = 1;
}

/* ---- slots ---- */

static int past_end(const struct nn_pipeline *p, long epoch)
{
    return p->opt.epochs > 0 && epoch >= p->opt.epochs;
}

/* Gives the next batch to a free slot. Called with the lock held. */
static void assign(struct nn_pipeline *p, struct slot *s)
{
    if (p->order_epoch != p->fill_epoch) {
        nn_pipeline_epoch_order(p->opt.seed, p->fill_epoch, p->opt.shuffle, p->n, p->order);
        p->order_epoch = p->fill_epoch;
    }
    long begin = p->fill_batch * p->opt.batch_size;
    long count = p->n - begin < p->opt.batch_size ? p->n - begin : p->opt.batch_size;
    s->state = SLOT_FILLING;
    s->planned = (int)count;
    s->claimed = s->finished = 0;
    s->batch.n = (int)count;
    s->batch.epoch = p->fill_epoch;
    s->batch.index = p->fill_batch;
    for (long k = 0; k < count; k++) s->batch.examples[k] = p->order[begin + k];
    if (++p->fill_batch == p->batches_per_epoch) {
        p->fill_batch = 0;
        p->fill_epoch++;
    }
}

/* All examples of s are done: close the gaps left by bad records. */
static void complete(struct nn_pipeline *p, struct slot *s)
{
    const size_t image = (size_t)p->opt.image_size * p->opt.image_size * 3;
    int m = 0;
    for (int k = 0; k < s->planned; k++) {
        if (!s->ok[k]) {
            p->skipped++;
            continue;
        }
        if (m != k) {
            memmove(s->batch.images + m * image, s->batch.images + k * image, image * sizeof(float));
            s->batch.labels[m] = s->batch.labels[k];
            s->batch.examples[m] = s->batch.examples[k];
        }
        m++;
    }
    s->batch.n = m;
    s->state = SLOT_READY;
}

/* The filling slot that comes first in batch order with examples left. */
static struct slot *claimable(struct nn_pipeline *p)
{
    struct slot *best = NULL;
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &p->slots[i];
        if (s->state != SLOT_FILLING || s->claimed >= s->planned) continue;
        if (!best || s->batch.epoch < best->batch.epoch ||
            (s->batch.epoch == best->batch.epoch && s->batch.index < best->batch.index))
            best = s;
    }
    return best;
}

/* Example `index` failed (w->why says why). Called with the lock held;
 * drops it around the warning, which goes to the caller's log callback. */
static void note_failure(struct nn_pipeline *p, struct worker *w, long index)
{
    unsigned char bit = (unsigned char)(1u << (index & 7));
    if (p->warned[index >> 3] & bit) return;
    p->warned[index >> 3] |= bit;
    if (p->bad_records++ == 0) snprintf(p->first_failure, sizeof p->first_failure, "%s", w->why);
    pthread_mutex_unlock(&p->lock);
    nn_warn("skipping %s example %ld: %s (said once per example)", nn_split_name(p->split), index, w->why);
    pthread_mutex_lock(&p->lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct nn_pipeline *p = w->p;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        struct slot *s = claimable(p);
        if (s) {
            int k = s->claimed++;
            pthread_mutex_unlock(&p->lock);
            process(p, w, s, k);
            pthread_mutex_lock(&p->lock);
            if (!s->ok[k]) note_failure(p, w, s->batch.examples[k]);
            if (++s->finished == s->planned) {
                complete(p, s);
                pthread_cond_broadcast(&p->ready);
            }
            continue;
        }
        struct slot *free_slot = NULL;
        for (int i = 0; i < SLOTS && !free_slot; i++)
            if (p->slots[i].state == SLOT_FREE) free_slot = &p->slots[i];
        if (free_slot && !past_end(p, p->fill_epoch)) {
            assign(p, free_slot);
            pthread_cond_broadcast(&p->work);
            continue;
        }
        pthread_cond_wait(&p->work, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- the public side ---- */

static enum nn_status check_options(const struct nn_pipeline_options *o)
{
    if (o->batch_size < 1) return nn_fail(NN_ERR_ARG, "pipeline: batch size %d must be >= 1", o->batch_size);
    if (o->image_size < 1 || o->image_size > 4096)
        return nn_fail(NN_ERR_ARG, "pipeline: image size %d is not in 1..4096", o->image_size);
    if (o->threads < 0) return nn_fail(NN_ERR_ARG, "pipeline: thread count %d is negative", o->threads);
    if (o->epochs < 0 || o->start_epoch < 0 || o->start_batch < 0)
        return nn_fail(NN_ERR_ARG, "pipeline: negative epoch count or start position");
    if (!o->train_transform && !(o->central_fraction > 0 && o->central_fraction <= 1))
        return nn_fail(NN_ERR_ARG, "pipeline: central fraction %g is not in (0, 1]", (double)o->central_fraction);
    return NN_OK;
}

void nn_pipeline_close(struct nn_pipeline *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->workers[i].tid, NULL);
    for (int i = 0; i < MAX_WORKERS; i++) nn_record_buf_free(&p->workers[i].buf);
    for (int i = 0; i < SLOTS; i++) {
        nn_free(p->slots[i].batch.images);
        free(p->slots[i].batch.labels);
        free(p->slots[i].batch.examples);
        free(p->slots[i].ok);
    }
    free(p->order);
    free(p->warned);
    free(p->dir);
    nn_dataset_close(p->ds);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->ready);
    free(p);
}

enum nn_status nn_pipeline_open(const char *dataset_dir, enum nn_split split, const struct nn_pipeline_options *opt,
                                struct nn_pipeline **out)
{
    *out = NULL;
    struct nn_pipeline_options o;
    if (opt)
        o = *opt;
    else
        nn_pipeline_options_default(&o);
    NN_TRY(check_options(&o));
    struct nn_pipeline *p = calloc(1, sizeof *p);
    if (!p) return nn_fail(NN_ERR_NOMEM, "pipeline: out of memory");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->ready, NULL);
    p->opt = o;
    p->split = split;
    p->order_epoch = -1;
    enum nn_status st = nn_dataset_open(dataset_dir, &p->ds);
    if (st != NN_OK) {
        nn_pipeline_close(p);
        return st;
    }
    p->n = nn_dataset_count(p->ds, split);
    p->batches_per_epoch = o.drop_last ? p->n / o.batch_size : (p->n + o.batch_size - 1) / o.batch_size;
    if (p->batches_per_epoch == 0)
        st = nn_fail(NN_ERR_ARG, "%s: the %s split has %ld examples, not enough for one batch of %d%s", dataset_dir,
                     nn_split_name(split), p->n, o.batch_size, o.drop_last ? " (drop_last is on)" : "");
    else if (o.start_batch >= p->batches_per_epoch)
        st = nn_fail(NN_ERR_ARG, "%s: start batch %ld is past the %ld batches of an epoch", dataset_dir, o.start_batch,
                     p->batches_per_epoch);
    else if (o.train_transform)
        p->min_side = nn_pipeline_train_min_side(o.image_size, &o.augment);
    const size_t image = (size_t)o.image_size * o.image_size * 3;
    p->order = st == NN_OK ? malloc((size_t)p->n * sizeof *p->order) : NULL;
    p->warned = st == NN_OK ? calloc((size_t)p->n / 8 + 1, 1) : NULL;
    p->dir = st == NN_OK ? strdup(dataset_dir) : NULL;
    if (st == NN_OK && (!p->order || !p->warned || !p->dir)) st = nn_fail(NN_ERR_NOMEM, "pipeline: out of memory");
    for (int i = 0; st == NN_OK && i < SLOTS; i++) {
        struct slot *s = &p->slots[i];
        s->batch.size = o.image_size;
        s->batch.images = nn_alloc((size_t)o.batch_size * image * sizeof(float));
        s->batch.labels = calloc((size_t)o.batch_size, sizeof *s->batch.labels);
        s->batch.examples = calloc((size_t)o.batch_size, sizeof *s->batch.examples);
        s->ok = calloc((size_t)o.batch_size, 1);
        if (!s->batch.images || !s->batch.labels || !s->batch.examples || !s->ok)
            st = nn_fail(NN_ERR_NOMEM, "pipeline: out of memory for a batch of %d %dx%d images", o.batch_size,
                         o.image_size, o.image_size);
    }
    if (st != NN_OK) {
        nn_pipeline_close(p);
        return st;
    }
    p->fill_epoch = p->next_epoch = o.start_epoch;
    p->fill_batch = p->next_batch = o.start_batch;

    int threads = o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > MAX_WORKERS) threads = MAX_WORKERS;
    for (int i = 0; i < threads; i++) {
        p->workers[i].p = p;
        p->workers[i].id = i;
        if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) break;
        p->nworkers = i + 1;
    }
    if (p->nworkers == 0) {
        nn_pipeline_close(p);
        return nn_fail(NN_ERR_NOMEM, "pipeline: cannot start worker threads");
    }
    *out = p;
    return NN_OK;
}

enum nn_status nn_pipeline_next(struct nn_pipeline *p, const struct nn_batch **batch)
{
    *batch = NULL;
    enum nn_status st = NN_OK;
    pthread_mutex_lock(&p->lock);
    if (p->held) {
        p->held->state = SLOT_FREE;
        p->held = NULL;
        pthread_cond_broadcast(&p->work);
    }
    for (;;) {
        /* checked first, so the error stays: nothing usable is coming */
        if (p->empty_run >= p->batches_per_epoch) {
            st = nn_fail(NN_ERR_CORRUPT,
                         "%s: not one %s example of a whole epoch (%ld batches) could be read or decoded; %ld "
                         "examples failed, the first: %s",
                         p->dir, nn_split_name(p->split), p->batches_per_epoch, p->bad_records, p->first_failure);
            break;
        }
        if (past_end(p, p->next_epoch)) break;
        struct slot *s = NULL;
        for (int i = 0; i < SLOTS && !s; i++)
            if (p->slots[i].state == SLOT_READY && p->slots[i].batch.epoch == p->next_epoch &&
                p->slots[i].batch.index == p->next_batch)
                s = &p->slots[i];
        if (!s) {
            pthread_cond_wait(&p->ready, &p->lock);
            continue;
        }
        if (++p->next_batch == p->batches_per_epoch) {
            p->next_batch = 0;
            p->next_epoch++;
        }
        if (s->batch.n == 0) { /* every record of it was bad */
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&p->work);
            ++p->empty_run;
            continue;
        }
        p->empty_run = 0;
        s->state = SLOT_HELD;
        p->held = s;
        *batch = &s->batch;
        break;
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

struct nn_pipeline_position nn_pipeline_position(const struct nn_pipeline *p)
{
    struct nn_pipeline *q = (struct nn_pipeline *)p;
    pthread_mutex_lock(&q->lock);
    struct nn_pipeline_position pos = {p->next_epoch, p->next_batch};
    pthread_mutex_unlock(&q->lock);
    return pos;
}

long nn_pipeline_batches_per_epoch(const struct nn_pipeline *p) { return p->batches_per_epoch; }
long nn_pipeline_examples(const struct nn_pipeline *p) { return p->n; }
const struct nn_dataset *nn_pipeline_dataset(const struct nn_pipeline *p) { return p->ds; }

long nn_pipeline_skipped(const struct nn_pipeline *p)
{
    struct nn_pipeline *q = (struct nn_pipeline *)p;
    pthread_mutex_lock(&q->lock);
    long n = p->skipped;
    pthread_mutex_unlock(&q->lock);
    return n;
}
