/* Whole-file reads and atomic writes. A file nn writes is never seen half
 * written: it is written to a temporary name in the same directory, flushed
 * to disk, then renamed over the target. */
#ifndef NN_BASE_FILEIO_H
#define NN_BASE_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "base/status.h"

/* Reads a whole file into a malloc'd buffer (NUL-terminated for text use;
 * *len excludes the NUL). Free with free(). */
enum nn_status nn_read_file(const char *path, char **data, size_t *len);

struct nn_atomic_file {
    FILE *fp;           /* write here */
    char *path;         /* final name */
    char *tmp_path;     /* temporary name */
};

/* Opens a temporary file next to `path`. */
enum nn_status nn_atomic_open(struct nn_atomic_file *af, const char *path);
/* Flushes, fsyncs and renames over the final name; on any failure the
 * temporary file is removed. Always releases af. */
enum nn_status nn_atomic_commit(struct nn_atomic_file *af);
/* Discards the temporary file. Safe on an af whose open failed. */
void nn_atomic_abort(struct nn_atomic_file *af);

/* A whole regular file mapped read-only and private: the file's bytes in
 * memory, with nothing this process does able to write through to it. */
struct nn_mapped_file {
    const unsigned char *data;
    size_t len;
};

/* Maps path; an empty file maps to data == NULL, len == 0. */
enum nn_status nn_map_file(const char *path, struct nn_mapped_file *m);
void nn_unmap_file(struct nn_mapped_file *m);

/* fwrite that reports failure with the file name. */
enum nn_status nn_write_all(struct nn_atomic_file *af, const void *data, size_t len);

#endif
