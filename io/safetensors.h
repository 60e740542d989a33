/* Reading safetensors files (the format of timm/Hugging Face checkpoints):
 * an 8-byte little-endian header length, a JSON header mapping tensor names
 * to dtype, shape and data offsets, then the raw data. F32, F16 and BF16 are
 * converted to float32 on access. */
#ifndef NN_IO_SAFETENSORS_H
#define NN_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "io/npy.h"

struct nn_safetensors;

struct nn_st_tensor {
    const char *name;
    enum nn_dtype dtype;        /* F32, F16 or BF16 */
    int ndim;
    int64_t shape[NN_NPY_MAX_DIMS];
    int64_t count;
    const void *data;           /* raw little-endian values inside the mapped file */
};

/* Maps and validates the file: header JSON, dtypes, offsets inside the file,
 * sizes matching shapes. */
enum nn_status nn_safetensors_open(const char *path, struct nn_safetensors **out);
void nn_safetensors_close(struct nn_safetensors *st);

int nn_safetensors_count(const struct nn_safetensors *st);
const struct nn_st_tensor *nn_safetensors_at(const struct nn_safetensors *st, int index);
/* NULL if absent. */
const struct nn_st_tensor *nn_safetensors_find(const struct nn_safetensors *st, const char *name);

/* Converts a tensor's values to float32 (dst holds t->count floats). */
void nn_st_to_f32(const struct nn_st_tensor *t, float *dst);

/* Writes float32 tensors as a safetensors file, atomically. */
enum nn_status nn_safetensors_write(const char *path, const struct nn_st_tensor *tensors, int count);

#endif
