/* Datasets: folders of labelled photos converted once into nn's record
 * shards (io/records.h) plus a descriptor, dataset.json, that says
 * everything about them (classes, counts, shards, how they were made).
 * Nothing about a dataset is hard-coded anywhere else. The layout of a
 * dataset directory is specified in docs/dataset-format.md.
 *
 *   nn_dataset_convert   source folders -> dataset directory
 *   nn_dataset_open      read examples by split and number
 *   nn_dataset_verify    check every record and image of a dataset */
#ifndef NN_IO_DATASET_H
#define NN_IO_DATASET_H

#include <stdint.h>

#include "base/status.h"
#include "io/records.h"

#define NN_DATASET_VERSION 1     /* dataset.json layout */

enum nn_split { NN_SPLIT_TRAIN = 0, NN_SPLIT_VALIDATION = 1 };
#define NN_SPLIT_COUNT 2
const char *nn_split_name(enum nn_split s);          /* "train", "validation" */
/* Parses "train", "validation" or "val". */
enum nn_status nn_split_parse(const char *name, enum nn_split *out);

/* ---- the descriptor ---- */

struct nn_dataset_shard {
    char *file;          /* e.g. "train-00000-of-00004.rec", in the dataset directory */
    long count;          /* records in it */
};

struct nn_dataset_split {
    long count;
    long *per_class;     /* num_classes entries */
    int num_shards;      /* 0 when the split is empty */
    struct nn_dataset_shard *shards;
};

struct nn_dataset_skip {
    char *path;          /* relative to the source */
    char *reason;
};

struct nn_dataset_desc {
    int version;
    int num_classes;
    char **classes;      /* label order */
    struct nn_dataset_split split[NN_SPLIT_COUNT];
    /* Decoded image sizes over both splits. */
    int min_width, max_width, min_height, max_height;
    double mean_width, mean_height;
    /* How it was made. */
    char *source;            /* the source directory as given */
    char *split_mode;        /* "folders", "fraction" or "count" */
    double validation_fraction;   /* split_mode "fraction" */
    long validation_count;        /* split_mode "count" */
    int shards_option;            /* --shards as given (0: automatic) */
    uint64_t seed;
    long hidden_files;
    long num_skipped;
    struct nn_dataset_skip *skipped;
};

/* Reads DIR/dataset.json. */
enum nn_status nn_dataset_desc_read(const char *dir, struct nn_dataset_desc *out);
/* Writes DIR/dataset.json atomically. */
enum nn_status nn_dataset_desc_write(const char *dir, const struct nn_dataset_desc *d);
/* Writes DIR/labels.txt ("id:name" lines) atomically. */
enum nn_status nn_dataset_labels_write(const char *dir, const struct nn_dataset_desc *d);
void nn_dataset_desc_free(struct nn_dataset_desc *d);

/* ---- reading examples ---- */

struct nn_dataset;

/* Opens the dataset in `dir`: reads dataset.json (a conversion writes it
 * last, so its presence means the dataset is complete), opens every shard it
 * lists and checks each index's count against it. */
enum nn_status nn_dataset_open(const char *dir, struct nn_dataset **out);
void nn_dataset_close(struct nn_dataset *ds);

const struct nn_dataset_desc *nn_dataset_info(const struct nn_dataset *ds);
long nn_dataset_count(const struct nn_dataset *ds, enum nn_split s);

/* Reads example `index` of split s (0-based over the whole split). Errors
 * name the shard and the record number within it. Thread-safe: each thread
 * passes its own buf. */
enum nn_status nn_dataset_read(const struct nn_dataset *ds, enum nn_split s, long index, struct nn_record_buf *buf,
                               struct nn_record *rec);
/* Where example `index` lives: shard file name and record number in it. */
enum nn_status nn_dataset_locate(const struct nn_dataset *ds, enum nn_split s, long index, const char **shard,
                                 long *record);

/* ---- converting ---- */

/* Progress of a long operation, called on the caller's thread a few times a
 * second and once at the end of each stage ("decoding", "writing",
 * "verifying"). */
typedef void (*nn_progress_fn)(void *user, const char *stage, long done, long total);

struct nn_convert_options {
    /* How a source without train/ and validation/ folders is split. Either
     * leave both unset (< 0: a fraction of 0.1), or set one. Setting one for
     * a source that is already split is an error. */
    double validation_fraction;  /* in [0, 1): share of the examples held out, stratified by class */
    long validation_count;       /* this many held out in total, stratified by class */
    int shards;                  /* train shards; validation gets proportionally many. 0: one per 1024 examples */
    uint64_t seed;               /* split and shard order; default 1 */
    int threads;                 /* decoding threads; 0: all cores */
    nn_progress_fn progress;     /* may be NULL */
    void *progress_user;
};
void nn_convert_options_default(struct nn_convert_options *o);

struct nn_convert_summary {
    int num_classes;
    long examples[NN_SPLIT_COUNT];
    long files_seen;     /* candidate image files found (not counting hidden ones) */
    long skipped;        /* files that are not usable images (listed in dataset.json) */
    long hidden;         /* dotfiles and dot-folders, ignored */
    double seconds;
};

/* Converts the photos under src_dir into a dataset in out_dir.
 *
 * Each immediate subfolder of src_dir is a class named by the folder (label
 * ids in byte order of the names); files are found recursively inside a
 * class folder. If src_dir holds `train/` and `validation/` (or `val/`),
 * each with the same class folders, that split is kept; otherwise a
 * stratified split is drawn with opt->seed. Every file is decoded once; what
 * does not decode is skipped with a warning (nn_warn) naming it and why.
 * out_dir must be new, empty, or hold an earlier nn dataset (replaced).
 * Shards, indices, labels.txt and dataset.json are written under temporary
 * names and renamed at the end, dataset.json last, so an interrupted
 * conversion never looks complete. The policies for hidden files, symlinks,
 * non-UTF-8 names and empty folders are in docs/dataset-format.md. */
enum nn_status nn_dataset_convert(const char *src_dir, const char *out_dir, const struct nn_convert_options *opt,
                                  struct nn_convert_summary *summary);

/* ---- verifying ---- */

struct nn_verify_report {
    long records;        /* records checked */
    long bad;            /* records (or whole shards) found corrupt */
};

/* Reads every record of every shard, checks every CRC, decodes every image
 * and checks its size and label against the record and the descriptor.
 * Each problem is reported through nn_warn with the shard and record
 * number; the first one is also the error message (NN_ERR_CORRUPT). */
enum nn_status nn_dataset_verify(const char *dir, int threads, nn_progress_fn progress, void *progress_user,
                                 struct nn_verify_report *report);

#endif
