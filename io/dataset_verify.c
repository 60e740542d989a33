/* nn_dataset_verify: every shard opened, every record read (both CRCs),
 * every image decoded and compared with what its record and dataset.json
 * say. Problems are collected per record so the report comes out in shard
 * order whatever the thread timing. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/dataset.h"
#include "io/dataset_work.h"
#include "io/image.h"

struct item {
    const struct nn_shard_reader *shard;
    long record;
    int split;
    int label;       /* -1 when the record is bad */
    char *problem;
};

struct verify_ctx {
    const struct nn_dataset_desc *desc;
    struct item *items;
    struct nn_record_buf *bufs;   /* one per worker */
};

static char *message(const char *fmt, const char *a, long b, const char *c)
{
    char buf[2048];
    snprintf(buf, sizeof buf, fmt, a, b, c);
    return strdup(buf);
}

static void verify_one(void *vctx, long i, int worker)
{
    struct verify_ctx *ctx = vctx;
    struct item *it = &ctx->items[i];
    struct nn_record rec;
    it->label = -1;
    if (nn_shard_reader_read(it->shard, it->record, &ctx->bufs[worker], &rec) != NN_OK) {
        it->problem = strdup(nn_last_error());
        return;
    }
    const char *name = nn_shard_reader_name(it->shard);
    char where[512];
    snprintf(where, sizeof where, "%s: record %ld (%s)", name, it->record, rec.path);
    if (rec.label >= ctx->desc->num_classes) {
        it->problem = message("%s: record %ld: label out of range (%s)", name, it->record, rec.path);
        return;
    }
    enum nn_image_format fmt = nn_image_sniff(rec.data, rec.data_len);
    if ((fmt == NN_IMAGE_JPEG) != (rec.format == NN_RECORD_JPEG) || (fmt == NN_IMAGE_PNG) != (rec.format == NN_RECORD_PNG)) {
        it->problem = message("%s: record %ld: image bytes do not match the record's format (%s)", name, it->record,
                              rec.path);
        return;
    }
    struct nn_image img = {0};
    if (nn_image_decode(rec.data, rec.data_len, where, 0, &img) != NN_OK) {
        it->problem = strdup(nn_last_error());
        return;
    }
    if (img.width != rec.width || img.height != rec.height) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s: decodes to %dx%d, the record says %dx%d", where, img.width, img.height,
                 (int)rec.width, (int)rec.height);
        it->problem = strdup(buf);
    } else {
        it->label = rec.label;
    }
    nn_image_free(&img);
}

struct verify_state {
    long bad;
    char first[8192];
};

static void problem(struct verify_state *vs, const char *msg)
{
    nn_warn("%s", msg);
    if (vs->bad++ == 0) snprintf(vs->first, sizeof vs->first, "%s", msg);
}

enum nn_status nn_dataset_verify(const char *dir, int threads, nn_progress_fn progress, void *progress_user,
                                 struct nn_verify_report *report)
{
    if (report) memset(report, 0, sizeof *report);
    struct nn_dataset_desc desc;
    NN_TRY(nn_dataset_desc_read(dir, &desc));

    struct verify_state vs = {0};
    int nshards = desc.split[0].num_shards + desc.split[1].num_shards;
    struct nn_shard_reader **shards = calloc((size_t)nshards + 1, sizeof *shards);
    int *shard_split = calloc((size_t)nshards + 1, sizeof *shard_split);
    enum nn_status st = shards && shard_split ? NN_OK : nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
    long n = 0;
    for (int s = 0, j = 0; st == NN_OK && s < NN_SPLIT_COUNT; s++) {
        for (int k = 0; k < desc.split[s].num_shards; k++, j++) {
            const struct nn_dataset_shard *sh = &desc.split[s].shards[k];
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s/%s", dir, sh->file);
            shard_split[j] = s;
            if (nn_shard_reader_open(path, &shards[j]) != NN_OK) {
                problem(&vs, nn_last_error());
                continue;
            }
            long count = nn_shard_reader_count(shards[j]);
            if (count != sh->count) {
                char buf[PATH_MAX + 200];
                snprintf(buf, sizeof buf, "%s: its index lists %ld records, dataset.json says %ld", path, count,
                         sh->count);
                problem(&vs, buf);
            }
            n += count;
        }
    }

    struct item *items = st == NN_OK ? calloc((size_t)n + 1, sizeof *items) : NULL;
    int workers = nn_dataset_threads(threads, n);
    struct nn_record_buf *bufs = calloc((size_t)workers, sizeof *bufs);
    if (st == NN_OK && (!items || !bufs)) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
    if (st == NN_OK) {
        long m = 0;
        for (int j = 0; j < nshards; j++)
            for (long r = 0; shards[j] && r < nn_shard_reader_count(shards[j]); r++)
                items[m++] = (struct item){.shard = shards[j], .record = r, .split = shard_split[j]};
        struct verify_ctx ctx = {&desc, items, bufs};
        nn_dataset_run(n, workers, verify_one, &ctx, "verifying", progress, progress_user);

        long *per_class[NN_SPLIT_COUNT];
        per_class[0] = calloc((size_t)desc.num_classes, sizeof(long));
        per_class[1] = calloc((size_t)desc.num_classes, sizeof(long));
        for (long i = 0; i < n; i++) {
            if (items[i].problem) problem(&vs, items[i].problem);
            else if (per_class[0] && per_class[1]) per_class[items[i].split][items[i].label]++;
        }
        /* Per-class counts only mean something when every record was read. */
        for (int s = 0; vs.bad == 0 && s < NN_SPLIT_COUNT && per_class[0] && per_class[1]; s++)
            for (int c = 0; c < desc.num_classes; c++)
                if (per_class[s][c] != desc.split[s].per_class[c]) {
                    char buf[1024];
                    snprintf(buf, sizeof buf, "%s/dataset.json: %s class '%s' has %ld records, the descriptor says %ld",
                             dir, nn_split_name(s), desc.classes[c], per_class[s][c], desc.split[s].per_class[c]);
                    problem(&vs, buf);
                }
        if (!per_class[0] || !per_class[1]) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
        free(per_class[0]);
        free(per_class[1]);
        for (long i = 0; i < n; i++) free(items[i].problem);
    }
    if (report) {
        report->records = n;
        report->bad = vs.bad;
    }
    for (int w = 0; bufs && w < workers; w++) nn_record_buf_free(&bufs[w]);
    free(bufs);
    free(items);
    for (int j = 0; shards && j < nshards; j++) nn_shard_reader_close(shards[j]);
    free(shards);
    free(shard_split);
    nn_dataset_desc_free(&desc);
    if (st == NN_OK && vs.bad) st = nn_fail(NN_ERR_CORRUPT, "%s", vs.first);
    return st;
}
