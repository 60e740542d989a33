/* Reading a converted dataset: the descriptor says which shards make up
 * each split; an example's number within the split maps to a shard and a
 * record through the shards' running counts. */
#include "io/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct split_shards {
    int n;
    struct nn_shard_reader **shards;
    long *start;        /* n + 1 running counts: shard k holds examples start[k] .. start[k+1]-1 */
};

struct nn_dataset {
    char *dir;
    struct nn_dataset_desc desc;
    struct split_shards split[NN_SPLIT_COUNT];
};

void nn_dataset_close(struct nn_dataset *ds)
{
    if (!ds) return;
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        for (int k = 0; k < ds->split[s].n; k++) nn_shard_reader_close(ds->split[s].shards[k]);
        free(ds->split[s].shards);
        free(ds->split[s].start);
    }
    nn_dataset_desc_free(&ds->desc);
    free(ds->dir);
    free(ds);
}

static enum nn_status open_split(struct nn_dataset *ds, int s)
{
    const struct nn_dataset_split *sp = &ds->desc.split[s];
    struct split_shards *ss = &ds->split[s];
    ss->shards = calloc((size_t)sp->num_shards + 1, sizeof *ss->shards);
    ss->start = calloc((size_t)sp->num_shards + 1, sizeof *ss->start);
    if (!ss->shards || !ss->start) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", ds->dir);
    for (int k = 0; k < sp->num_shards; k++) {
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", ds->dir, sp->shards[k].file);
        NN_TRY(nn_shard_reader_open(path, &ss->shards[k]));
        ss->n = k + 1;
        long count = nn_shard_reader_count(ss->shards[k]);
        if (count != sp->shards[k].count)
            return nn_fail(NN_ERR_CORRUPT, "%s: its index lists %ld records, dataset.json says %ld", path, count,
                           sp->shards[k].count);
        ss->start[k + 1] = ss->start[k] + count;
    }
    return NN_OK;
}

enum nn_status nn_dataset_open(const char *dir, struct nn_dataset **out)
{
    *out = NULL;
    struct nn_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
    ds->dir = strdup(dir);
    if (!ds->dir) {
        free(ds);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
    }
    enum nn_status st = nn_dataset_desc_read(dir, &ds->desc);
    for (int s = 0; st == NN_OK && s < NN_SPLIT_COUNT; s++) st = open_split(ds, s);
    if (st != NN_OK) {
        nn_dataset_close(ds);
        return st;
    }
    *out = ds;
    return NN_OK;
}

const struct nn_dataset_desc *nn_dataset_info(const struct nn_dataset *ds) { return &ds->desc; }

long nn_dataset_count(const struct nn_dataset *ds, enum nn_split s)
{
    return (unsigned)s < NN_SPLIT_COUNT ? ds->desc.split[s].count : 0;
}

/* Shard k with start[k] <= index < start[k+1]; empty shards are passed over. */
static enum nn_status find(const struct nn_dataset *ds, enum nn_split s, long index, int *shard, long *record)
{
    if ((unsigned)s >= NN_SPLIT_COUNT) return nn_fail(NN_ERR_ARG, "%s: bad split %d", ds->dir, (int)s);
    const struct split_shards *ss = &ds->split[s];
    if (index < 0 || index >= ss->start[ss->n])
        return nn_fail(NN_ERR_ARG, "%s: %s example %ld out of range (the split has %ld)", ds->dir, nn_split_name(s),
                       index, ss->start[ss->n]);
    int lo = 0, hi = ss->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ss->start[mid] <= index)
            lo = mid;
        else
            hi = mid - 1;
    }
    *shard = lo;
    *record = index - ss->start[lo];
    return NN_OK;
}

enum nn_status nn_dataset_locate(const struct nn_dataset *ds, enum nn_split s, long index, const char **shard,
                                 long *record)
{
    int k = 0;
    NN_TRY(find(ds, s, index, &k, record));
    *shard = nn_shard_reader_name(ds->split[s].shards[k]);
    return NN_OK;
}

enum nn_status nn_dataset_read(const struct nn_dataset *ds, enum nn_split s, long index, struct nn_record_buf *buf,
                               struct nn_record *rec)
{
    int k = 0;
    long r = 0;
    NN_TRY(find(ds, s, index, &k, &r));
    const struct nn_shard_reader *sh = ds->split[s].shards[k];
    NN_TRY(nn_shard_reader_read(sh, r, buf, rec));
    if (rec->label >= ds->desc.num_classes)
        return nn_fail(NN_ERR_CORRUPT, "%s/%s: record %ld: label %d, but the dataset has %d classes", ds->dir,
                       nn_shard_reader_name(sh), r, (int)rec->label, ds->desc.num_classes);
    return NN_OK;
}
