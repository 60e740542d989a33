/* nn's record files: sharded, checksummed containers of labelled photos.
 *
 * A shard (`train-00000-of-00004.rec`) is a sequence of records framed as in
 * TFRecord: u64 payload length, masked CRC-32C of those 8 bytes, the payload,
 * masked CRC-32C of the payload (all little-endian). Each shard has an index
 * (`train-00000-of-00004.idx`) with the byte offset of every record, so a
 * reader can seek to any record without scanning. docs/dataset-format.md is
 * the full specification; NN_RECORD_VERSION and NN_RECORD_INDEX_VERSION are
 * the versions it describes.
 *
 * Reads use pread, so any number of threads may read one shard at the same
 * time, each with its own nn_record_buf. A whole dataset directory (shards
 * plus its dataset.json descriptor) is read through io/dataset.h. */
#ifndef NN_IO_RECORDS_H
#define NN_IO_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define NN_RECORD_VERSION 1          /* payload layout */
#define NN_RECORD_INDEX_VERSION 1    /* .idx layout */
#define NN_RECORD_MAX_PATH 4096      /* bytes of the stored relative path */

/* Image formats stored in a record (the original encoded bytes). */
enum { NN_RECORD_JPEG = 1, NN_RECORD_PNG = 2 };

/* One example. When read back, `path` and `data` point into the
 * nn_record_buf they were read with (path is NUL-terminated there). */
struct nn_record {
    int32_t label;
    int32_t height, width;       /* of the decoded image, full size */
    int format;                  /* NN_RECORD_JPEG or NN_RECORD_PNG */
    const char *path;            /* relative to the dataset source root, UTF-8 */
    const uint8_t *data;         /* encoded image bytes */
    size_t data_len;
};

/* Growable buffer one reader thread reuses for every record it reads. */
struct nn_record_buf {
    uint8_t *data;
    size_t cap;
    char path[NN_RECORD_MAX_PATH + 1];
};
void nn_record_buf_free(struct nn_record_buf *b);

/* ---- payloads (exposed for tests and tools) ---- */

/* Bytes the payload of `rec` takes. */
size_t nn_record_payload_size(const struct nn_record *rec);
/* Serialises rec into out[nn_record_payload_size(rec)]. */
enum nn_status nn_record_payload_encode(const struct nn_record *rec, uint8_t *out);
/* Parses a payload: rec->data points into `payload`, rec->path into
 * `path` (NUL-terminated copy). `where` names the record in error messages. */
enum nn_status nn_record_payload_decode(const uint8_t *payload, size_t len, const char *where,
                                        char path[NN_RECORD_MAX_PATH + 1], struct nn_record *rec);

/* ---- writing one shard ---- */

struct nn_shard_writer;

/* Starts shard `rec_path` (ending in .rec) and its index (same name, .idx),
 * both written under temporary names in the same directory. */
enum nn_status nn_shard_writer_open(const char *rec_path, struct nn_shard_writer **out);
enum nn_status nn_shard_writer_add(struct nn_shard_writer *w, const struct nn_record *rec);
long nn_shard_writer_count(const struct nn_shard_writer *w);
/* Writes the index and flushes both files to disk, still under their
 * temporary names: the shard is complete but not yet visible. */
enum nn_status nn_shard_writer_finish(struct nn_shard_writer *w);
/* Renames a finished shard and its index to their final names (index
 * first, so a visible .rec always has its .idx). */
enum nn_status nn_shard_writer_publish(struct nn_shard_writer *w);
/* Frees the writer; removes its temporary files if it was not published. */
void nn_shard_writer_free(struct nn_shard_writer *w);

/* ---- reading one shard ---- */

struct nn_shard_reader;

/* Opens `rec_path` and its .idx; checks the index's magic, version and CRC,
 * and that its offsets fit the shard's size (a truncated shard is an error
 * here, naming the shard). */
enum nn_status nn_shard_reader_open(const char *rec_path, struct nn_shard_reader **out);
long nn_shard_reader_count(const struct nn_shard_reader *r);
const char *nn_shard_reader_name(const struct nn_shard_reader *r);   /* file name, no directory */
/* Reads record i, checking both CRCs and the payload layout. Errors name
 * the shard and the record number. Thread-safe. */
enum nn_status nn_shard_reader_read(const struct nn_shard_reader *r, long i, struct nn_record_buf *buf,
                                    struct nn_record *rec);
void nn_shard_reader_close(struct nn_shard_reader *r);

#endif
