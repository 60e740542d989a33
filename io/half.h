/* float16 (IEEE binary16) and bfloat16 to float32, the conversions behind
 * reading half-precision checkpoints. Both are exact: every half value is a
 * float. */
#ifndef NN_IO_HALF_H
#define NN_IO_HALF_H

#include <stddef.h>
#include <stdint.h>

/* Portable bit manipulation; subnormals, infinities and NaN included (a
 * signalling NaN comes back quiet, as the F16C instruction returns it). */
float nn_f16_to_f32(uint16_t h);
float nn_bf16_to_f32(uint16_t h);

/* n little-endian values at src (any alignment) to dst. The F16 one uses
 * F16C when the CPU has it (and NN_SIMD allows avx2). */
void nn_f16_to_f32_array(const void *src, float *dst, size_t n);
void nn_bf16_to_f32_array(const void *src, float *dst, size_t n);

/* The F16C path itself (io/half_avx2.c); call only on a CPU with AVX2 and
 * F16C. Public so the tests can compare it with the scalar one. */
void nn_f16_to_f32_avx2(const void *src, float *dst, size_t n);
/* True when nn_f16_to_f32_array takes the F16C path. */
int nn_f16_has_f16c(void);

#endif
