#include "base/threads.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"

#define MAX_THREADS 256

/* Between the many short jobs of one forward pass (a GEMM takes about a
 * millisecond at batch 1) workers and the caller spin briefly before
 * sleeping: waking a sleeping thread costs tens of microseconds. Measured
 * at batch 1: 2000 rounds (some tens of microseconds; PAUSE is slow on AMD)
 * gave 10% over no spinning, and 20000 rounds made training 25% slower on a
 * loaded machine by taking the core from whoever else needed it. */
#define SPIN_ROUNDS 2000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    pthread_t tids[MAX_THREADS];
    int nworkers;      /* threads besides the caller */
    int nthreads;      /* nworkers + 1 */
    atomic_ulong generation;  /* bumped (under lock) when a job is posted */
    atomic_int pending;       /* workers still running the current job */
    atomic_int stopping;
    unsigned long spawn_generation; /* generation when the current workers were started */
    /* the current job */
    nn_range_fn fn;
    void *ctx;
    long n, chunk;
};

static struct pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work_ready = PTHREAD_COND_INITIALIZER,
    .work_done = PTHREAD_COND_INITIALIZER,
    .nthreads = 0,
};
static atomic_flag pool_busy = ATOMIC_FLAG_INIT;
static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;

static void run_chunk(long index)
{
    long begin = index * pool.chunk;
    long end = begin + pool.chunk;
    if (end > pool.n) end = pool.n;
    if (begin < end) pool.fn(pool.ctx, begin, end);
}

static void *worker_main(void *arg)
{
    long id = (long)(size_t)arg;
    pthread_mutex_lock(&pool.lock);
    /* A new worker must not take a job that ended before it was started. */
    unsigned long seen = pool.spawn_generation;
    pthread_mutex_unlock(&pool.lock);
    for (;;) {
        for (int s = 0; s < SPIN_ROUNDS && atomic_load(&pool.generation) == seen && !atomic_load(&pool.stopping); s++)
            cpu_relax();
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stopping))
            pthread_cond_wait(&pool.work_ready, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
        if (atomic_load(&pool.stopping)) break;
        seen = atomic_load(&pool.generation);
        run_chunk(id);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.work_done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.stopping, 1);
    pthread_cond_broadcast(&pool.work_ready);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nworkers; i++) pthread_join(pool.tids[i], NULL);
    pool.nworkers = 0;
    atomic_store(&pool.stopping, 0);
}

static int default_threads(void)
{
    const char *env = getenv("NN_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

enum nn_status nn_threads_set(int n)
{
    if (n <= 0) n = default_threads();
    if (n > MAX_THREADS) n = MAX_THREADS;
    pthread_mutex_lock(&config_lock);
    while (atomic_flag_test_and_set(&pool_busy)) sched_yield();
    stop_workers();
    enum nn_status st = NN_OK;
    pool.nthreads = 1;
    pool.spawn_generation = atomic_load(&pool.generation);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.tids[i - 1], NULL, worker_main, (void *)(size_t)i) != 0) {
            st = nn_fail(NN_ERR_NOMEM, "cannot start thread %d of %d", i + 1, n);
            break;
        }
        pool.nworkers = i;
        pool.nthreads = i + 1;
    }
    openblas_set_num_threads(pool.nthreads);
    atomic_flag_clear(&pool_busy);
    pthread_mutex_unlock(&config_lock);
    return st;
}

int nn_threads_get(void)
{
    if (pool.nthreads == 0) nn_threads_set(0);
    return pool.nthreads;
}

void nn_parallel_for(long n, long grain, nn_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = nn_threads_get();
    long chunks = (n + grain - 1) / grain;
    if (chunks > threads) chunks = threads;
    if (chunks <= 1 || atomic_flag_test_and_set(&pool_busy)) {
        fn(ctx, 0, n);
        return;
    }
    /* Workers whose index is >= chunks find an empty range and return at once. */
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunk = (n + chunks - 1) / chunks;
    atomic_store(&pool.pending, pool.nworkers);
    atomic_fetch_add(&pool.generation, 1);
    pthread_cond_broadcast(&pool.work_ready);
    pthread_mutex_unlock(&pool.lock);
    run_chunk(0);
    for (int s = 0; s < SPIN_ROUNDS && atomic_load(&pool.pending) > 0; s++) cpu_relax();
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.work_done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    atomic_flag_clear(&pool_busy);
}

void nn_threads_shutdown(void)
{
    pthread_mutex_lock(&config_lock);
    while (atomic_flag_test_and_set(&pool_busy)) sched_yield();
    stop_workers();
    pool.nthreads = 0;
    atomic_flag_clear(&pool_busy);
    pthread_mutex_unlock(&config_lock);
}
