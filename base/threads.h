/* One thread pool for the whole engine: GEMM, im2col, batch norm, pooling,
 * image decoding. It sets no other library's thread count (OpenBLAS's is the
 * host program's business; nn's own GEMM does not use OpenBLAS). Every
 * function here may be called from any thread at any time. */
#ifndef NN_BASE_THREADS_H
#define NN_BASE_THREADS_H

#include "base/status.h"

/* Work on the index range [begin, end). */
typedef void (*nn_range_fn)(void *ctx, long begin, long end);

/* Sets the pool's thread count (waiting for a running job to finish). n <= 0
 * means the NN_THREADS environment variable if set, else all online cores. */
enum nn_status nn_threads_set(int n);
int nn_threads_get(void);

/* Splits [0, n) into at most nn_threads_get() contiguous chunks of at least
 * `grain` indices and runs fn on each; returns when all are done. The split
 * depends only on n, grain and the thread count, so results are reproducible.
 * If the pool is busy (another thread of the program is using it), fn runs on
 * the calling thread alone: callers may be concurrent. */
void nn_parallel_for(long n, long grain, nn_range_fn fn, void *ctx);

/* Stops the pool's threads (tests call it so leak checkers see a clean exit). */
void nn_threads_shutdown(void);

#endif
