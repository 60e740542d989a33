/* nn_dataset_convert: scan the source, decode every file once (in
 * parallel) to prove it is a usable image, draw the split if needed, write
 * the shards under temporary names, then rename everything into place with
 * dataset.json last. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/log.h"
#include "base/rng.h"
#include "io/dataset.h"
#include "io/dataset_scan.h"
#include "io/dataset_work.h"
#include "io/image.h"
#include "io/records.h"

#define DEFAULT_VALIDATION_FRACTION 0.1
#define AUTO_SHARD_EXAMPLES 1024
#define MAX_SHARDS 99999

/* Random streams of the seed, one per use, so that changing one draw does
 * not shift another. */
enum { STREAM_SPLIT = 1000, STREAM_TRAIN_ORDER = 1 };

void nn_convert_options_default(struct nn_convert_options *o)
{
    memset(o, 0, sizeof *o);
    o->validation_fraction = -1;
    o->validation_count = -1;
    o->seed = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the output directory ---- */

/* Names a conversion writes: dataset.json, labels.txt, shards, indices,
 * and the temporary names of all of these. */
static int is_dataset_file(const char *name)
{
    if (!strcmp(name, "dataset.json") || !strcmp(name, "labels.txt")) return 1;
    const char *tmp = strstr(name, ".tmp.");
    if (tmp && (!strncmp(name, "dataset.json.tmp.", 17) || !strncmp(name, "labels.txt.tmp.", 15))) return 1;
    size_t n = tmp ? (size_t)(tmp - name) : strlen(name);
    const char *rest;
    if (!strncmp(name, "train-", 6))
        rest = name + 6;
    else if (!strncmp(name, "validation-", 11))
        rest = name + 11;
    else
        return 0;
    /* NNNNN-of-NNNNN.rec or .idx */
    size_t left = n - (size_t)(rest - name);
    if (left != 18) return 0;
    for (int i = 0; i < 18; i++) {
        char c = rest[i];
        if (i < 5 || (i >= 9 && i < 14)) {
            if (c < '0' || c > '9') return 0;
        }
    }
    return !strncmp(rest + 5, "-of-", 4) && (!strncmp(rest + 14, ".rec", 4) || !strncmp(rest + 14, ".idx", 4));
}

static enum nn_status mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return nn_fail(NN_ERR_ARG, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return nn_fail(NN_ERR_IO, "%s: cannot create directory %s: %s", path, buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return nn_fail(NN_ERR_IO, "%s: cannot create output directory: %s", path, strerror(errno));
    return NN_OK;
}

/* Checks out_dir before any work: it is created if missing, must hold
 * nothing but an earlier dataset, must be writable, and must not lie inside
 * the source (its shards would be scanned as photos next time). */
static enum nn_status prepare_output(const char *src, const char *out, int *created, int *had_dataset)
{
    *created = 0;
    *had_dataset = 0;
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return nn_fail(NN_ERR_IO, "%s: output exists and is not a directory", out);
        DIR *d = opendir(out);
        if (!d) return nn_fail(NN_ERR_IO, "%s: cannot read output directory: %s", out, strerror(errno));
        struct dirent *de;
        enum nn_status st = NN_OK;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            if (!strcmp(de->d_name, "dataset.json")) *had_dataset = 1;
            if (!is_dataset_file(de->d_name) && st == NN_OK)
                st = nn_fail(NN_ERR_IO,
                             "%s: output directory is not empty ('%s' is not part of an nn dataset); give a new or "
                             "empty directory, or one with an earlier dataset to replace",
                             out, de->d_name);
        }
        closedir(d);
        NN_TRY(st);
    } else {
        NN_TRY(mkdir_p(out));
        *created = 1;
    }
    enum nn_status st = NN_OK;
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/.nn-write-test.XXXXXX", out);
    int fd = mkstemp(probe);
    if (fd < 0) {
        st = nn_fail(NN_ERR_IO, "%s: output directory is not writable: %s", out, strerror(errno));
    } else {
        close(fd);
        unlink(probe);
    }
    char src_real[PATH_MAX], out_real[PATH_MAX];
    if (st == NN_OK && realpath(src, src_real) && realpath(out, out_real)) {
        size_t n = strlen(src_real);
        if (!strcmp(src_real, out_real) || (!strncmp(src_real, out_real, n) && out_real[n] == '/'))
            st = nn_fail(NN_ERR_ARG, "%s: the output directory is inside the source %s", out, src);
    }
    if (st != NN_OK && *created) rmdir(out);
    return st;
}

/* ---- decoding every file ---- */

struct decode_ctx {
    const char *src;
    struct nn_scan *scan;
};

static char *reason_from_error(const char *rel)
{
    /* Decoder messages start with the name we gave them; the skip list
     * already names the file. */
    const char *msg = nn_last_error();
    size_t n = strlen(rel);
    if (!strncmp(msg, rel, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return strdup(*msg ? msg : "unknown error");
}

static void decode_one(void *vctx, long i, int worker)
{
    (void)worker;
    struct decode_ctx *ctx = vctx;
    struct nn_scan_entry *e = &ctx->scan->e[i];
    if (e->reason) return; /* skipped by the scan */
    char path[PATH_MAX + NN_RECORD_MAX_PATH];
    snprintf(path, sizeof path, "%s/%s", ctx->src, e->rel);
    char *data;
    size_t len;
    if (nn_read_file(path, &data, &len) != NN_OK) {
        e->reason = reason_from_error(path);
        return;
    }
    e->size = len;
    e->crc = nn_crc32c(0, data, len);
    enum nn_image_format fmt = nn_image_sniff(data, len);
    struct nn_image img = {0};
    if (len == 0) {
        e->reason = strdup("empty file (0 bytes)");
    } else if (nn_image_decode(data, len, e->rel, 0, &img) != NN_OK) {
        e->reason = reason_from_error(e->rel);
    } else if (fmt != NN_IMAGE_JPEG && fmt != NN_IMAGE_PNG) {
        e->reason = strdup("decoded, but is neither JPEG nor PNG");
    } else {
        e->format = fmt == NN_IMAGE_JPEG ? NN_RECORD_JPEG : NN_RECORD_PNG;
        e->width = img.width;
        e->height = img.height;
    }
    /* A failed strdup leaves no reason; it must still be skipped. */
    if (!e->format && !e->reason) e->reason = strdup("out of memory");
    nn_image_free(&img);
    free(data);
}

/* ---- the split ---- */

static void shuffle(long *v, long n, struct nn_rng *rng)
{
    for (long i = n - 1; i > 0; i--) {
        long j = (long)nn_rng_below(rng, (uint32_t)(i + 1));
        long t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* Hands out `total` validation examples over the classes in proportion to
 * their sizes (largest remainder), leaving every class at least one
 * training example. */
static void allocate_validation(const long *sizes, int k, long total, long *val)
{
    long n = 0;
    for (int c = 0; c < k; c++) n += sizes[c];
    long given = 0;
    for (int c = 0; c < k; c++) {
        double ideal = (double)total * (double)sizes[c] / (double)n;
        val[c] = (long)floor(ideal);
        if (val[c] > sizes[c] - 1) val[c] = sizes[c] - 1;
        given += val[c];
    }
    while (given < total) {
        int best = -1;
        double best_gap = -1e300;
        for (int c = 0; c < k; c++) {
            if (val[c] >= sizes[c] - 1) continue;
            double gap = (double)total * (double)sizes[c] / (double)n - (double)val[c];
            if (gap > best_gap) {
                best_gap = gap;
                best = c;
            }
        }
        if (best < 0) break; /* cannot happen: total <= n - k was checked */
        val[best]++;
        given++;
    }
}

static enum nn_status draw_split(struct nn_scan *scan, const struct nn_convert_options *opt, long usable,
                                 const char *src, struct nn_dataset_desc *d)
{
    int k = scan->num_classes;
    long total;
    if (opt->validation_count >= 0) {
        total = opt->validation_count;
        d->split_mode = strdup("count");
        d->validation_count = total;
    } else {
        double f = opt->validation_fraction >= 0 ? opt->validation_fraction : DEFAULT_VALIDATION_FRACTION;
        total = lround(f * (double)usable);
        d->split_mode = strdup("fraction");
        d->validation_fraction = f;
    }
    if (!d->split_mode) return nn_fail(NN_ERR_NOMEM, "out of memory");
    if (total > usable - k)
        return nn_fail(NN_ERR_ARG,
                       "%s: cannot hold out %ld validation examples from %ld usable ones in %d classes: every class "
                       "keeps at least one training example",
                       src, total, usable, k);
    long *sizes = calloc((size_t)k, sizeof *sizes), *val = calloc((size_t)k, sizeof *val);
    long *members = malloc((size_t)(scan->n ? scan->n : 1) * sizeof *members);
    if (!sizes || !val || !members) {
        free(sizes);
        free(val);
        free(members);
        return nn_fail(NN_ERR_NOMEM, "out of memory");
    }
    for (long i = 0; i < scan->n; i++)
        if (!scan->e[i].reason) sizes[scan->e[i].label]++;
    allocate_validation(sizes, k, total, val);
    /* Each class draws from its own stream: a class's split does not
     * depend on the others' sizes. */
    for (int c = 0; c < k; c++) {
        long m = 0;
        for (long i = 0; i < scan->n; i++)
            if (!scan->e[i].reason && scan->e[i].label == c) members[m++] = i;
        struct nn_rng rng;
        nn_rng_seed(&rng, opt->seed, STREAM_SPLIT + (uint64_t)c);
        shuffle(members, m, &rng);
        for (long j = 0; j < m; j++) scan->e[members[j]].split = j < val[c] ? NN_SPLIT_VALIDATION : NN_SPLIT_TRAIN;
    }
    free(sizes);
    free(val);
    free(members);
    return NN_OK;
}

/* ---- writing ---- */

struct plan {
    long *order[NN_SPLIT_COUNT];     /* entry indices in record order */
    long count[NN_SPLIT_COUNT];
    int shards[NN_SPLIT_COUNT];
    struct nn_shard_writer **writers[NN_SPLIT_COUNT];
};

static void plan_free(struct plan *p)
{
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        for (int k = 0; p->writers[s] && k < p->shards[s]; k++) nn_shard_writer_free(p->writers[s][k]);
        free(p->writers[s]);
        free(p->order[s]);
    }
}

static int shard_count(int requested, long train, long n, int is_train)
{
    if (n == 0) return 0;
    long k;
    if (requested <= 0)
        k = (n + AUTO_SHARD_EXAMPLES - 1) / AUTO_SHARD_EXAMPLES;
    else if (is_train)
        k = requested;
    else /* validation shards about as full as the training ones */
        k = (long)ceil((double)requested * (double)n / (double)train);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return (int)k;
}

static enum nn_status make_plan(const struct nn_scan *scan, const struct nn_convert_options *opt, struct plan *p)
{
    memset(p, 0, sizeof *p);
    for (long i = 0; i < scan->n; i++)
        if (!scan->e[i].reason) p->count[scan->e[i].split]++;
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        p->order[s] = malloc((size_t)(p->count[s] ? p->count[s] : 1) * sizeof *p->order[s]);
        if (!p->order[s]) return nn_fail(NN_ERR_NOMEM, "out of memory");
        long m = 0;
        for (long i = 0; i < scan->n; i++)
            if (!scan->e[i].reason && scan->e[i].split == s) p->order[s][m++] = i;
        p->shards[s] = shard_count(opt->shards, p->count[NN_SPLIT_TRAIN], p->count[s], s == NN_SPLIT_TRAIN);
        p->writers[s] = calloc((size_t)p->shards[s] + 1, sizeof *p->writers[s]);
        if (!p->writers[s]) return nn_fail(NN_ERR_NOMEM, "out of memory");
    }
    /* Training records are written in a seeded random order so that each
     * shard mixes the classes; validation keeps class-then-path order. */
    struct nn_rng rng;
    nn_rng_seed(&rng, opt->seed, STREAM_TRAIN_ORDER);
    shuffle(p->order[NN_SPLIT_TRAIN], p->count[NN_SPLIT_TRAIN], &rng);
    return NN_OK;
}

static void shard_name(char *buf, size_t n, int split, int k, int shards)
{
    snprintf(buf, n, "%s-%05d-of-%05d.rec", nn_split_name(split), k, shards);
}

/* Re-reads a file for writing and makes sure it is the one that was decoded. */
static enum nn_status write_one(struct nn_shard_writer *w, const char *src, const struct nn_scan_entry *e)
{
    char path[PATH_MAX + NN_RECORD_MAX_PATH];
    snprintf(path, sizeof path, "%s/%s", src, e->rel);
    char *data;
    size_t len;
    NN_TRY(nn_read_file(path, &data, &len));
    if (len != e->size || nn_crc32c(0, data, len) != e->crc) {
        free(data);
        return nn_fail(NN_ERR_IO, "%s: the file changed during the conversion; run it again", path);
    }
    struct nn_record rec = {.label = e->label, .height = e->height, .width = e->width, .format = e->format,
                            .path = e->rel, .data = (const uint8_t *)data, .data_len = len};
    enum nn_status st = nn_shard_writer_add(w, &rec);
    free(data);
    return st;
}

static enum nn_status write_shards(const char *src, const char *out, const struct nn_scan *scan, struct plan *p,
                                   const struct nn_convert_options *opt)
{
    long total = p->count[0] + p->count[1], done = 0;
    double last = now_s();
    if (opt->progress) opt->progress(opt->progress_user, "writing", 0, total);
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        for (int k = 0; k < p->shards[s]; k++) {
            char name[64], path[PATH_MAX + 64];
            shard_name(name, sizeof name, s, k, p->shards[s]);
            snprintf(path, sizeof path, "%s/%s", out, name);
            NN_TRY(nn_shard_writer_open(path, &p->writers[s][k]));
            long begin = p->count[s] * k / p->shards[s], end = p->count[s] * (k + 1) / p->shards[s];
            for (long j = begin; j < end; j++) {
                NN_TRY(write_one(p->writers[s][k], src, &scan->e[p->order[s][j]]));
                done++;
                double t = now_s();
                if (opt->progress && t - last >= 0.2) {
                    opt->progress(opt->progress_user, "writing", done, total);
                    last = t;
                }
            }
            NN_TRY(nn_shard_writer_finish(p->writers[s][k]));
        }
    }
    if (opt->progress) opt->progress(opt->progress_user, "writing", total, total);
    return NN_OK;
}

/* ---- the descriptor ---- */

static enum nn_status build_desc(const char *src, const struct nn_scan *scan, const struct plan *p,
                                 const struct nn_convert_options *opt, struct nn_dataset_desc *d)
{
    d->version = NN_DATASET_VERSION;
    d->num_classes = scan->num_classes;
    d->classes = scan->classes; /* borrowed: not freed with d */
    d->source = strdup(src);
    if (!d->split_mode) d->split_mode = strdup("folders");
    d->shards_option = opt->shards;
    d->seed = opt->seed;
    d->hidden_files = scan->hidden;
    if (!d->source || !d->split_mode) return nn_fail(NN_ERR_NOMEM, "out of memory");
    long n = 0;
    double sum_w = 0, sum_h = 0;
    d->min_width = d->min_height = INT_MAX;
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        struct nn_dataset_split *sp = &d->split[s];
        sp->count = p->count[s];
        sp->num_shards = p->shards[s];
        sp->per_class = calloc((size_t)scan->num_classes, sizeof *sp->per_class);
        sp->shards = calloc((size_t)p->shards[s] + 1, sizeof *sp->shards);
        if (!sp->per_class || !sp->shards) return nn_fail(NN_ERR_NOMEM, "out of memory");
        for (int k = 0; k < p->shards[s]; k++) {
            char name[64];
            shard_name(name, sizeof name, s, k, p->shards[s]);
            sp->shards[k].file = strdup(name);
            if (!sp->shards[k].file) return nn_fail(NN_ERR_NOMEM, "out of memory");
            sp->shards[k].count = nn_shard_writer_count(p->writers[s][k]);
        }
        for (long j = 0; j < p->count[s]; j++) {
            const struct nn_scan_entry *e = &scan->e[p->order[s][j]];
            sp->per_class[e->label]++;
            n++;
            sum_w += e->width;
            sum_h += e->height;
            if (e->width < d->min_width) d->min_width = e->width;
            if (e->width > d->max_width) d->max_width = e->width;
            if (e->height < d->min_height) d->min_height = e->height;
            if (e->height > d->max_height) d->max_height = e->height;
        }
    }
    d->mean_width = n ? sum_w / (double)n : 0;
    d->mean_height = n ? sum_h / (double)n : 0;
    long skipped = 0;
    for (long i = 0; i < scan->n; i++) skipped += scan->e[i].reason != NULL;
    d->skipped = calloc((size_t)skipped + 1, sizeof *d->skipped);
    if (!d->skipped) return nn_fail(NN_ERR_NOMEM, "out of memory");
    for (long i = 0; i < scan->n; i++) {
        if (!scan->e[i].reason) continue;
        struct nn_dataset_skip *sk = &d->skipped[d->num_skipped++];
        sk->path = strdup(scan->e[i].rel);
        sk->reason = strdup(scan->e[i].reason);
        if (!sk->path || !sk->reason) return nn_fail(NN_ERR_NOMEM, "out of memory");
    }
    return NN_OK;
}

/* ---- putting it in place ---- */

/* Files of an earlier dataset (or of an interrupted conversion) that the
 * new one does not overwrite. Called after dataset.json is in place. */
static void remove_stale(const char *out, const struct nn_dataset_desc *d)
{
    DIR *dir = opendir(out);
    if (!dir) return;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        const char *name = de->d_name;
        if (!is_dataset_file(name) || !strcmp(name, "dataset.json") || !strcmp(name, "labels.txt")) continue;
        int keep = 0;
        for (int s = 0; s < NN_SPLIT_COUNT && !keep; s++)
            for (int k = 0; k < d->split[s].num_shards && !keep; k++) {
                const char *rec = d->split[s].shards[k].file;
                size_t n = strlen(rec) - 4; /* without .rec */
                keep = !strncmp(name, rec, n) && (!strcmp(name + n, ".rec") || !strcmp(name + n, ".idx"));
            }
        if (keep) continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", out, name);
        if (unlink(path) != 0) nn_warn("%s: could not remove a file of the earlier dataset: %s", path, strerror(errno));
    }
    closedir(dir);
}

static enum nn_status publish(const char *out, struct plan *p, const struct nn_dataset_desc *d, int had_dataset)
{
    char path[PATH_MAX + 32];
    if (had_dataset) {
        /* From here until the new descriptor lands the directory holds no
         * dataset.json, so nobody takes old and new shards for one dataset. */
        snprintf(path, sizeof path, "%s/dataset.json", out);
        if (unlink(path) != 0 && errno != ENOENT)
            return nn_fail(NN_ERR_IO, "%s: cannot remove the earlier descriptor: %s", path, strerror(errno));
    }
    for (int s = 0; s < NN_SPLIT_COUNT; s++)
        for (int k = 0; k < p->shards[s]; k++) NN_TRY(nn_shard_writer_publish(p->writers[s][k]));
    NN_TRY(nn_dataset_labels_write(out, d));
    NN_TRY(nn_dataset_desc_write(out, d));
    remove_stale(out, d);
    return NN_OK;
}

/* ---- the whole conversion ---- */

static enum nn_status check_options(const struct nn_convert_options *opt)
{
    if (opt->validation_fraction >= 1 || isnan(opt->validation_fraction))
        return nn_fail(NN_ERR_ARG, "validation fraction %g is not in [0, 1)", opt->validation_fraction);
    if (opt->validation_fraction >= 0 && opt->validation_count >= 0)
        return nn_fail(NN_ERR_ARG, "give a validation fraction or a validation count, not both");
    if (opt->shards < 0 || opt->shards > MAX_SHARDS)
        return nn_fail(NN_ERR_ARG, "shard count %d is not in 0..%d", opt->shards, MAX_SHARDS);
    if (opt->threads < 0) return nn_fail(NN_ERR_ARG, "thread count %d is negative", opt->threads);
    return NN_OK;
}

static enum nn_status check_usable(const char *src, const struct nn_scan *scan, long *usable)
{
    *usable = 0;
    for (int f = 0; f < scan->num_folders; f++) {
        long ok = 0;
        for (long i = 0; i < scan->n; i++) ok += scan->e[i].folder == f && !scan->e[i].reason;
        if (ok == 0)
            return nn_fail(NN_ERR_NOT_FOUND, "%s/%s: no usable image in this class folder (%ld file%s skipped)", src,
                           scan->folders[f].rel, scan->folders[f].files, scan->folders[f].files == 1 ? "" : "s");
        *usable += ok;
    }
    return NN_OK;
}

static enum nn_status convert(const char *src, const char *out, const struct nn_convert_options *opt,
                              struct nn_scan *scan, struct plan *plan, struct nn_dataset_desc *d, int had_dataset)
{
    NN_TRY(nn_scan_source(src, scan));
    if (scan->presplit && (opt->validation_fraction >= 0 || opt->validation_count >= 0))
        return nn_fail(NN_ERR_ARG,
                       "%s: the source is already split into train/ and validation/ folders, which is kept; "
                       "a validation fraction or count does not apply",
                       src);
    for (int c = 0; c < scan->num_classes; c++) nn_debug("class %d: %s", c, scan->classes[c]);

    struct decode_ctx ctx = {src, scan};
    nn_dataset_run(scan->n, opt->threads, decode_one, &ctx, "decoding", opt->progress, opt->progress_user);
    for (long i = 0; i < scan->n; i++)
        if (scan->e[i].reason) nn_warn("skipping %s: %s", scan->e[i].rel, scan->e[i].reason);
    long usable;
    NN_TRY(check_usable(src, scan, &usable));
    if (!scan->presplit) NN_TRY(draw_split(scan, opt, usable, src, d));

    NN_TRY(make_plan(scan, opt, plan));
    NN_TRY(write_shards(src, out, scan, plan, opt));
    NN_TRY(build_desc(src, scan, plan, opt, d));
    return publish(out, plan, d, had_dataset);
}

enum nn_status nn_dataset_convert(const char *src_dir, const char *out_dir, const struct nn_convert_options *opt_in,
                                  struct nn_convert_summary *summary)
{
    double t0 = now_s();
    struct nn_convert_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        nn_convert_options_default(&opt);
    if (summary) memset(summary, 0, sizeof *summary);
    if (!src_dir || !out_dir || !*src_dir || !*out_dir)
        return nn_fail(NN_ERR_ARG, "convert: a source and an output directory are required");
    NN_TRY(check_options(&opt));
    struct stat sb;
    if (stat(src_dir, &sb) != 0)
        return nn_fail(NN_ERR_NOT_FOUND, "%s: source directory not found: %s", src_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return nn_fail(NN_ERR_ARG, "%s: source is not a directory", src_dir);
    int created, had_dataset;
    NN_TRY(prepare_output(src_dir, out_dir, &created, &had_dataset));

    struct nn_scan scan = {0};
    struct plan plan = {0};
    struct nn_dataset_desc desc = {0};
    enum nn_status st = convert(src_dir, out_dir, &opt, &scan, &plan, &desc, had_dataset);
    if (st == NN_OK && summary) {
        summary->num_classes = scan.num_classes;
        summary->examples[0] = plan.count[0];
        summary->examples[1] = plan.count[1];
        summary->files_seen = scan.n;
        summary->skipped = desc.num_skipped;
        summary->hidden = scan.hidden;
        summary->seconds = now_s() - t0;
    }
    /* Unpublished shards are removed by plan_free; an output directory this
     * call created is removed if it is still empty. */
    plan_free(&plan);
    desc.classes = NULL;
    desc.num_classes = 0;
    nn_dataset_desc_free(&desc);
    nn_scan_free(&scan);
    if (st != NN_OK && created) rmdir(out_dir);
    return st;
}
