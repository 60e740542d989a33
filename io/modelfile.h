/* nn's own model container (docs/model-format.md): a fixed header with magic
 * and version, a JSON metadata block (architecture, hyper-parameters, class
 * names, preprocessing), a table of named tensors (float32, bfloat16 or
 * int8) each with shape,
 * offset and CRC-32C, then the data, every tensor 64-byte aligned so the file
 * can be mapped and used in place. Written atomically. */
#ifndef NN_IO_MODELFILE_H
#define NN_IO_MODELFILE_H

#include <stdint.h>

#include "base/status.h"
#include "io/npy.h"

/* Element types (the table's dtype codes). Files with only float32
 * tensors are written as version 1, others as version 2. */
enum nn_mf_dtype { NN_MF_F32 = 0, NN_MF_BF16 = 1, NN_MF_I8 = 2 };

struct nn_mf_tensor {
    const char *name;
    enum nn_mf_dtype dtype;     /* zero-initialised: float32 */
    int ndim;
    int64_t shape[NN_NPY_MAX_DIMS];
    const void *data;           /* product(shape) elements of dtype */
};

/* Bytes of one element of dtype. */
int nn_mf_dtype_size(enum nn_mf_dtype dtype);

/* Writes meta (a JSON object, as text) and the tensors to path atomically. */
enum nn_status nn_modelfile_write(const char *path, const char *meta_json, const struct nn_mf_tensor *tensors,
                                  int count);

struct nn_modelfile;

/* Maps the file and checks magic, version, table bounds and every CRC.
 * Errors name the file and say what is wrong (truncated at byte X, CRC
 * mismatch in tensor NAME, not an nn model file, version too new). */
enum nn_status nn_modelfile_open(const char *path, struct nn_modelfile **out);
void nn_modelfile_close(struct nn_modelfile *mf);

const char *nn_modelfile_meta(const struct nn_modelfile *mf);   /* NUL-terminated JSON text */
int nn_modelfile_count(const struct nn_modelfile *mf);
const struct nn_mf_tensor *nn_modelfile_at(const struct nn_modelfile *mf, int index);
const struct nn_mf_tensor *nn_modelfile_find(const struct nn_modelfile *mf, const char *name);

#endif
