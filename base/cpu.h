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

/* Extensions beyond a level's baseline, as the CPU reports them (cpuid, with
 * the OS saving the registers; NN_SIMD does not change these: callers combine
 * them with nn_simd_level()). Read with cpuid directly because clang 14's
 * __builtin_cpu_supports does not know every name. */
bool nn_cpu_has_avx512_bf16(void); /* vdpbf16ps on zmm */
bool nn_cpu_has_avx512_vnni(void); /* vpdpbusd on zmm */
bool nn_cpu_has_avx_vnni(void);    /* vpdpbusd on ymm, VEX-encoded */
/* The CPU has the F16C half-precision conversions (not capped by NN_SIMD). */
bool nn_cpu_has_f16c(void);

#endif
