/* Winograd transforms for any x86-64 (SSE2: four channels per vector). */
#define WV 4
#define WINO_KERNELS nn_winograd_kernels_generic
#include "ops/winograd_body.h"
