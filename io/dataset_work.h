/* Private to the dataset code in io/: running one job per file or record on
 * a few threads while the calling thread reports progress. */
#ifndef NN_IO_DATASET_WORK_H
#define NN_IO_DATASET_WORK_H

#include "io/dataset.h"

/* fn(ctx, i, worker) for every i in [0, n), on `threads` threads (the
 * caller's among them; worker is 0 .. threads-1, for per-thread scratch).
 * Items are handed out in order but finish in any order, so fn must write
 * its result to slot i. progress(user, stage, done, n) is called on the
 * caller's thread about five times a second and once at the end. Threads
 * are started and joined here (not nn_parallel_for's pool: this work is long
 * and blocks on I/O, and the pool is for short compute bursts). */
typedef void (*nn_work_fn)(void *ctx, long i, int worker);
void nn_dataset_run(long n, int threads, nn_work_fn fn, void *ctx, const char *stage, nn_progress_fn progress,
                    void *user);

/* Threads to use for `requested` (0: all online cores), at most n items. */
int nn_dataset_threads(int requested, long n);

#endif
