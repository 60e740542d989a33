/* Run-time choice of SIMD kernels. The default build targets plain x86-64;
 * files named *_avx2.c and *_avx512.c are compiled with those extensions and
 * only called when the CPU has them. NN_SIMD=scalar|avx2|avx512 forces a
 * lower level so tests can check every path on one machine. */
#ifndef NN_BASE_CPU_H
#define NN_BASE_CPU_H

#include <stdbool.h>

enum nn_simd { NN_SIMD_SCALAR = 0, NN_SIMD_AVX2 = 1, NN_SIMD_AVX512 = 2 };

/* The level in use: the best the CPU supports, capped by NN_SIMD. */
enum nn_simd nn_simd_level(void);
const char *nn_simd_name(enum nn_simd level);

/* The CPU has the F16C half-precision conversions (not capped by NN_SIMD). */
bool nn_cpu_has_f16c(void);

#endif
