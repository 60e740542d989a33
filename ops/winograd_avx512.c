/* Winograd transforms with AVX-512 (sixteen channels per vector); called only
 * when the CPU has AVX-512F/BW/VL/DQ. */
#define WV 16
#define WINO_KERNELS nn_winograd_kernels_avx512
#include "ops/winograd_body.h"
