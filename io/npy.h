/* NumPy .npy files: float32 and int32, C order, little-endian (format
 * versions 1.0 and 2.0 read, 1.0 written). */
#ifndef NN_IO_NPY_H
#define NN_IO_NPY_H

#include <stdint.h>

#include "base/status.h"

#define NN_NPY_MAX_DIMS 8

enum nn_dtype { NN_DTYPE_F32, NN_DTYPE_I32, NN_DTYPE_F16, NN_DTYPE_BF16 };

struct nn_npy {
    enum nn_dtype dtype;        /* NN_DTYPE_F32 or NN_DTYPE_I32 */
    int ndim;
    int64_t shape[NN_NPY_MAX_DIMS];
    int64_t count;              /* product of shape (1 for ndim 0) */
    void *data;                 /* count elements, 64-byte aligned; owned */
};

/* Reads a whole file. Errors name the file and the problem (not .npy,
 * Fortran order, big-endian, unsupported dtype, truncated). */
enum nn_status nn_npy_read(const char *path, struct nn_npy *out);
void nn_npy_free(struct nn_npy *a);

/* Writes atomically (temp file, fsync, rename). dtype F32 or I32. */
enum nn_status nn_npy_write(const char *path, enum nn_dtype dtype, const int64_t *shape, int ndim,
                            const void *data);

#endif
