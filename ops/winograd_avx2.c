/* Winograd transforms with AVX2 (eight channels per vector); called only when
 * the CPU has AVX2 and FMA. */
#define WV 8
#define WINO_KERNELS nn_winograd_kernels_avx2
#include "ops/winograd_body.h"
