/* dataset.json and labels.txt: writing, reading and checking. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "io/dataset.h"
#include "io/json.h"

static const char *split_names[NN_SPLIT_COUNT] = {"train", "validation"};

const char *nn_split_name(enum nn_split s) { return (unsigned)s < NN_SPLIT_COUNT ? split_names[s] : "?"; }

enum nn_status nn_split_parse(const char *name, enum nn_split *out)
{
    if (name && !strcmp(name, "train")) {
        *out = NN_SPLIT_TRAIN;
        return NN_OK;
    }
    if (name && (!strcmp(name, "validation") || !strcmp(name, "val"))) {
        *out = NN_SPLIT_VALIDATION;
        return NN_OK;
    }
    return nn_fail(NN_ERR_ARG, "unknown split '%s' (train or validation)", name ? name : "");
}

void nn_dataset_desc_free(struct nn_dataset_desc *d)
{
    if (!d) return;
    for (int c = 0; c < d->num_classes && d->classes; c++) free(d->classes[c]);
    free(d->classes);
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        struct nn_dataset_split *sp = &d->split[s];
        free(sp->per_class);
        for (int i = 0; i < sp->num_shards && sp->shards; i++) free(sp->shards[i].file);
        free(sp->shards);
    }
    for (long i = 0; i < d->num_skipped && d->skipped; i++) {
        free(d->skipped[i].path);
        free(d->skipped[i].reason);
    }
    free(d->skipped);
    free(d->source);
    free(d->split_mode);
    memset(d, 0, sizeof *d);
}

/* ---- writing ---- */

static void write_split(struct nn_strbuf *b, const struct nn_dataset_desc *d, int s)
{
    const struct nn_dataset_split *sp = &d->split[s];
    nn_strbuf_printf(b, "    \"%s\": {\n      \"examples\": %ld,\n      \"per_class\": {", split_names[s], sp->count);
    for (int c = 0; c < d->num_classes; c++) {
        nn_strbuf_printf(b, "%s", c ? ", " : "");
        nn_strbuf_json_string(b, d->classes[c]);
        nn_strbuf_printf(b, ": %ld", sp->per_class[c]);
    }
    nn_strbuf_printf(b, "},\n      \"shards\": [");
    for (int i = 0; i < sp->num_shards; i++) {
        nn_strbuf_printf(b, "%s\n        {\"file\": ", i ? "," : "");
        nn_strbuf_json_string(b, sp->shards[i].file);
        nn_strbuf_printf(b, ", \"examples\": %ld}", sp->shards[i].count);
    }
    nn_strbuf_printf(b, "%s]\n    }", sp->num_shards ? "\n      " : "");
}

enum nn_status nn_dataset_desc_write(const char *dir, const struct nn_dataset_desc *d)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_printf(&b, "{\n  \"format\": \"nn dataset\",\n  \"version\": %d,\n  \"record_version\": %d,\n",
                     NN_DATASET_VERSION, NN_RECORD_VERSION);
    nn_strbuf_printf(&b, "  \"classes\": [");
    for (int c = 0; c < d->num_classes; c++) {
        nn_strbuf_printf(&b, "%s", c ? ", " : "");
        nn_strbuf_json_string(&b, d->classes[c]);
    }
    nn_strbuf_printf(&b, "],\n  \"splits\": {\n");
    write_split(&b, d, NN_SPLIT_TRAIN);
    nn_strbuf_printf(&b, ",\n");
    write_split(&b, d, NN_SPLIT_VALIDATION);
    nn_strbuf_printf(&b, "\n  },\n");
    nn_strbuf_printf(&b, "  \"image_size\": {\n    \"width\": {\"min\": %d, \"max\": %d, \"mean\": ", d->min_width,
                     d->max_width);
    nn_strbuf_json_number(&b, d->mean_width);
    nn_strbuf_printf(&b, "},\n    \"height\": {\"min\": %d, \"max\": %d, \"mean\": ", d->min_height, d->max_height);
    nn_strbuf_json_number(&b, d->mean_height);
    nn_strbuf_printf(&b, "}\n  },\n  \"converter\": {\n    \"source\": ");
    nn_strbuf_json_string(&b, d->source ? d->source : "");
    nn_strbuf_printf(&b, ",\n    \"split\": ");
    nn_strbuf_json_string(&b, d->split_mode ? d->split_mode : "folders");
    nn_strbuf_printf(&b, ",\n    \"validation_fraction\": ");
    if (d->split_mode && !strcmp(d->split_mode, "fraction"))
        nn_strbuf_json_number(&b, d->validation_fraction);
    else
        nn_strbuf_printf(&b, "null");
    nn_strbuf_printf(&b, ",\n    \"validation_count\": ");
    if (d->split_mode && !strcmp(d->split_mode, "count"))
        nn_strbuf_printf(&b, "%ld", d->validation_count);
    else
        nn_strbuf_printf(&b, "null");
    nn_strbuf_printf(&b, ",\n    \"shards\": %d,\n    \"seed\": %llu\n  },\n", d->shards_option,
                     (unsigned long long)d->seed);
    nn_strbuf_printf(&b, "  \"hidden_files\": %ld,\n  \"skipped\": [", d->hidden_files);
    for (long i = 0; i < d->num_skipped; i++) {
        nn_strbuf_printf(&b, "%s\n    {\"path\": ", i ? "," : "");
        nn_strbuf_json_string(&b, d->skipped[i].path);
        nn_strbuf_printf(&b, ", \"reason\": ");
        nn_strbuf_json_string(&b, d->skipped[i].reason);
        nn_strbuf_printf(&b, "}");
    }
    nn_strbuf_printf(&b, "%s]\n}\n", d->num_skipped ? "\n  " : "");
    if (b.failed) {
        nn_strbuf_free(&b);
        return nn_fail(NN_ERR_NOMEM, "%s/dataset.json: out of memory", dir);
    }

    char path[4200];
    snprintf(path, sizeof path, "%s/dataset.json", dir);
    struct nn_atomic_file af;
    enum nn_status st = nn_atomic_open(&af, path);
    if (st == NN_OK) {
        st = nn_write_all(&af, b.data, b.len);
        if (st == NN_OK)
            st = nn_atomic_commit(&af);
        else
            nn_atomic_abort(&af);
    }
    nn_strbuf_free(&b);
    return st;
}

enum nn_status nn_dataset_labels_write(const char *dir, const struct nn_dataset_desc *d)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    struct nn_atomic_file af;
    NN_TRY(nn_atomic_open(&af, path));
    for (int c = 0; c < d->num_classes; c++) {
        if (fprintf(af.fp, "%d:%s\n", c, d->classes[c]) < 0) {
            nn_atomic_abort(&af);
            return nn_fail(NN_ERR_IO, "%s: write failed", path);
        }
    }
    return nn_atomic_commit(&af);
}

/* ---- reading ---- */

struct reader {
    const char *path;
};

static enum nn_status bad(const struct reader *r, const char *what)
{
    return nn_fail(NN_ERR_FORMAT, "%s: %s", r->path, what);
}

static enum nn_status get_long(const struct reader *r, const struct nn_json *obj, const char *key, long lo,
                               long *out)
{
    int64_t v;
    if (!nn_json_int(nn_json_get(obj, key), &v) || v < lo || v > 0x7fffffffffffL)
        return nn_fail(NN_ERR_FORMAT, "%s: \"%s\" is missing or not an integer >= %ld", r->path, key, lo);
    *out = (long)v;
    return NN_OK;
}

static enum nn_status read_classes(const struct reader *r, const struct nn_json *root, struct nn_dataset_desc *d)
{
    const struct nn_json *classes = nn_json_get(root, "classes");
    if (nn_json_type(classes) != NN_JSON_ARRAY || nn_json_len(classes) == 0)
        return bad(r, "\"classes\" is missing or empty");
    size_t n = nn_json_len(classes);
    if (n > 1000000) return bad(r, "\"classes\" is implausibly long");
    d->classes = calloc(n, sizeof *d->classes);
    if (!d->classes) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    d->num_classes = (int)n;
    for (size_t c = 0; c < n; c++) {
        const char *name = nn_json_string(nn_json_at(classes, c));
        if (!name || !*name) return nn_fail(NN_ERR_FORMAT, "%s: class %zu has no name", r->path, c);
        if (c && strcmp(d->classes[c - 1], name) >= 0)
            return nn_fail(NN_ERR_FORMAT, "%s: class names are not unique and sorted ('%s' after '%s')", r->path,
                           name, d->classes[c - 1]);
        d->classes[c] = strdup(name);
        if (!d->classes[c]) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    }
    return NN_OK;
}

/* A shard name must stay inside the dataset directory. */
static int plain_file_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static enum nn_status read_split(const struct reader *r, const struct nn_json *splits, int s,
                                 struct nn_dataset_desc *d)
{
    const struct nn_json *j = nn_json_get(splits, split_names[s]);
    char msg[256];
    if (nn_json_type(j) != NN_JSON_OBJECT) {
        snprintf(msg, sizeof msg, "split \"%s\" is missing", split_names[s]);
        return bad(r, msg);
    }
    struct nn_dataset_split *sp = &d->split[s];
    NN_TRY(get_long(r, j, "examples", 0, &sp->count));
    sp->per_class = calloc((size_t)d->num_classes, sizeof *sp->per_class);
    if (!sp->per_class) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    const struct nn_json *per_class = nn_json_get(j, "per_class");
    if (nn_json_type(per_class) != NN_JSON_OBJECT) return bad(r, "\"per_class\" is missing");
    /* Each count is at most 2^47 (get_long), but a million of them could
     * overflow a long: the sum is held to the split's count as it grows
     * (every count is >= 0, so it never exceeds sp->count). */
    long sum = 0;
    for (int c = 0; c < d->num_classes; c++) {
        NN_TRY(get_long(r, per_class, d->classes[c], 0, &sp->per_class[c]));
        if (sp->per_class[c] > sp->count - sum)
            return nn_fail(NN_ERR_FORMAT, "%s: %s: per-class counts add up to more than the %ld examples", r->path,
                           split_names[s], sp->count);
        sum += sp->per_class[c];
    }
    if (sum != sp->count)
        return nn_fail(NN_ERR_FORMAT, "%s: %s: per-class counts add up to %ld, not %ld", r->path, split_names[s],
                       sum, sp->count);
    const struct nn_json *shards = nn_json_get(j, "shards");
    if (nn_json_type(shards) != NN_JSON_ARRAY) return bad(r, "\"shards\" is missing");
    size_t n = nn_json_len(shards);
    if (n > 1000000) return bad(r, "\"shards\" is implausibly long");
    sp->shards = calloc(n ? n : 1, sizeof *sp->shards);
    if (!sp->shards) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    sp->num_shards = (int)n;
    sum = 0;
    for (size_t i = 0; i < n; i++) {
        const struct nn_json *sh = nn_json_at(shards, i);
        const char *file = nn_json_string(nn_json_get(sh, "file"));
        if (!file || !plain_file_name(file))
            return nn_fail(NN_ERR_FORMAT, "%s: %s shard %zu has no valid file name", r->path, split_names[s], i);
        sp->shards[i].file = strdup(file);
        if (!sp->shards[i].file) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
        NN_TRY(get_long(r, sh, "examples", 0, &sp->shards[i].count));
        if (sp->shards[i].count > sp->count - sum)
            return nn_fail(NN_ERR_FORMAT, "%s: %s: shards hold more than the %ld examples", r->path, split_names[s],
                           sp->count);
        sum += sp->shards[i].count;
    }
    if (sum != sp->count)
        return nn_fail(NN_ERR_FORMAT, "%s: %s: shards hold %ld examples, not %ld", r->path, split_names[s], sum,
                       sp->count);
    return NN_OK;
}

/* Informational integers: an integer in [lo, hi], else `fallback`. Never a
 * cast of a double: (int) of NaN or 1e300 is undefined behaviour. */
static long info_long(const struct nn_json *j, long lo, long hi, long fallback)
{
    int64_t v;
    return nn_json_int(j, &v) && v >= lo && v <= hi ? (long)v : fallback;
}

/* A finite number in [lo, hi], else `fallback`. */
static double info_double(const struct nn_json *j, double lo, double hi, double fallback)
{
    double v = nn_json_number(j);
    return v >= lo && v <= hi ? v : fallback;
}

static enum nn_status read_extras(const struct reader *r, const struct nn_json *root, struct nn_dataset_desc *d)
{
    /* Informational fields: absent or odd values do not stop a reader; they
     * read as 0 (or -1 where the writer uses it for "not given"). */
    const struct nn_json *size = nn_json_get(root, "image_size");
    const struct nn_json *w = nn_json_get(size, "width"), *h = nn_json_get(size, "height");
    d->min_width = (int)info_long(nn_json_get(w, "min"), 0, INT_MAX, 0);
    d->max_width = (int)info_long(nn_json_get(w, "max"), 0, INT_MAX, 0);
    d->mean_width = info_double(nn_json_get(w, "mean"), 0, INT_MAX, 0);
    d->min_height = (int)info_long(nn_json_get(h, "min"), 0, INT_MAX, 0);
    d->max_height = (int)info_long(nn_json_get(h, "max"), 0, INT_MAX, 0);
    d->mean_height = info_double(nn_json_get(h, "mean"), 0, INT_MAX, 0);

    const struct nn_json *conv = nn_json_get(root, "converter");
    const char *source = nn_json_string(nn_json_get(conv, "source"));
    const char *mode = nn_json_string(nn_json_get(conv, "split"));
    d->source = strdup(source ? source : "");
    d->split_mode = strdup(mode ? mode : "");
    if (!d->source || !d->split_mode) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    d->validation_fraction = info_double(nn_json_get(conv, "validation_fraction"), 0, 1, -1);
    d->validation_count = info_long(nn_json_get(conv, "validation_count"), 0, LONG_MAX, -1);
    d->shards_option = (int)info_long(nn_json_get(conv, "shards"), 0, INT_MAX, 0);
    int64_t v;
    d->seed = nn_json_int(nn_json_get(conv, "seed"), &v) ? (uint64_t)v : 0; /* the writer's %llu reads back */
    d->hidden_files = info_long(nn_json_get(root, "hidden_files"), 0, LONG_MAX, 0);

    const struct nn_json *skipped = nn_json_get(root, "skipped");
    size_t n = nn_json_type(skipped) == NN_JSON_ARRAY ? nn_json_len(skipped) : 0;
    if (n) {
        d->skipped = calloc(n, sizeof *d->skipped);
        if (!d->skipped) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    }
    for (size_t i = 0; i < n; i++) {
        const struct nn_json *e = nn_json_at(skipped, i);
        const char *p = nn_json_string(nn_json_get(e, "path")), *why = nn_json_string(nn_json_get(e, "reason"));
        d->skipped[i].path = strdup(p ? p : "?");
        d->skipped[i].reason = strdup(why ? why : "?");
        d->num_skipped = (long)i + 1;
        if (!d->skipped[i].path || !d->skipped[i].reason) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", r->path);
    }
    return NN_OK;
}

static enum nn_status read_root(const struct reader *r, const struct nn_json *root, struct nn_dataset_desc *d)
{
    if (nn_json_type(root) != NN_JSON_OBJECT) return bad(r, "not a JSON object");
    const char *format = nn_json_string(nn_json_get(root, "format"));
    if (!format || strcmp(format, "nn dataset")) return bad(r, "not an nn dataset descriptor (\"format\")");
    long version = 0;
    NN_TRY(get_long(r, root, "version", 1, &version));
    if (version > NN_DATASET_VERSION)
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: dataset version %ld is newer than this nn reads (%d)", r->path,
                       version, NN_DATASET_VERSION);
    d->version = (int)version;
    long record_version = 0;
    NN_TRY(get_long(r, root, "record_version", 1, &record_version));
    if (record_version != NN_RECORD_VERSION)
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: record version %ld, this nn reads version %d", r->path,
                       record_version, NN_RECORD_VERSION);
    NN_TRY(read_classes(r, root, d));
    const struct nn_json *splits = nn_json_get(root, "splits");
    for (int s = 0; s < NN_SPLIT_COUNT; s++) NN_TRY(read_split(r, splits, s, d));
    return read_extras(r, root, d);
}

enum nn_status nn_dataset_desc_read(const char *dir, struct nn_dataset_desc *out)
{
    memset(out, 0, sizeof *out);
    char path[4200];
    snprintf(path, sizeof path, "%s/dataset.json", dir);
    char *text;
    size_t len;
    if (nn_read_file(path, &text, &len) != NN_OK)
        return nn_fail(NN_ERR_NOT_FOUND, "%s: no dataset.json: not an nn dataset, or its conversion did not finish",
                       dir);
    struct nn_json *root;
    enum nn_status st = nn_json_parse(text, len, &root);
    free(text);
    if (st != NN_OK) {
        char why[1024]; /* nn_fail must not read the message it is overwriting */
        snprintf(why, sizeof why, "%s", nn_last_error());
        return nn_fail(st, "%s: %s", path, why);
    }
    struct reader r = {path};
    st = read_root(&r, root, out);
    nn_json_free(root);
    if (st != NN_OK) nn_dataset_desc_free(out);
    return st;
}
