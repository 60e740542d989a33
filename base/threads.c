#include "base/threads.h"

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
    /* nworkers + 1, or 0 before the pool starts. Changed only with both
     * config_lock and pool_busy held; atomic because nn_threads_get reads it
     * with neither. */
    atomic_int nthreads;
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
/* Set while nn_threads_set or nn_threads_shutdown waits for the pool: new
 * parallel loops then run on their caller, so a stream of them cannot keep
 * the pool from being resized. */
static atomic_int resize_waiting;
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

/* Restarts the pool with n threads; call with config_lock held. */
static enum nn_status restart_locked(int n)
{
    atomic_store(&resize_waiting, 1);
    while (atomic_flag_test_and_set(&pool_busy)) sched_yield();
    atomic_store(&resize_waiting, 0);
    stop_workers();
    enum nn_status st = NN_OK;
    int started = 1;
    pool.spawn_generation = atomic_load(&pool.generation);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.tids[i - 1], NULL, worker_main, (void *)(size_t)i) != 0) {
            st = nn_fail(NN_ERR_NOMEM, "cannot start thread %d of %d", i + 1, n);
            break;
        }
        pool.nworkers = i;
        started = i + 1;
    }
    atomic_store(&pool.nthreads, started);
    atomic_flag_clear(&pool_busy);
    return st;
}

/* Only the pool: other libraries' threads (OpenBLAS's among them) belong to
 * the program that uses them, which sets their counts itself. */
enum nn_status nn_threads_set(int n)
{
    if (n <= 0) n = default_threads();
    if (n > MAX_THREADS) n = MAX_THREADS;
    pthread_mutex_lock(&config_lock);
    enum nn_status st = restart_locked(n);
    pthread_mutex_unlock(&config_lock);
    return st;
}

/* Starts the pool at its default size unless it is running: the check is
 * repeated under the lock so a first parallel call racing an explicit
 * nn_threads_set does not replace the caller's choice with the default. */
static void ensure_started(void)
{
    if (atomic_load(&pool.nthreads) > 0) return;
    pthread_mutex_lock(&config_lock);
    if (atomic_load(&pool.nthreads) == 0) restart_locked(default_threads());
    pthread_mutex_unlock(&config_lock);
}

int nn_threads_get(void)
{
    ensure_started();
    int n = atomic_load(&pool.nthreads);
    return n > 0 ? n : 1;
}

void nn_parallel_for(long n, long grain, nn_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    long chunks = (n + grain - 1) / grain;
    if (chunks > 1) ensure_started();
    if (chunks <= 1 || atomic_load(&resize_waiting) || atomic_flag_test_and_set(&pool_busy)) {
        fn(ctx, 0, n);
        return;
    }
    /* The size is read only now that the pool is ours: nn_threads_set may
     * have changed it since, and a chunk without a worker would never run. */
    int threads = atomic_load(&pool.nthreads);
    if (chunks > threads) chunks = threads;
    if (chunks <= 1) {
        atomic_flag_clear(&pool_busy);
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
    atomic_store(&resize_waiting, 1);
    while (atomic_flag_test_and_set(&pool_busy)) sched_yield();
    atomic_store(&resize_waiting, 0);
    stop_workers();
    atomic_store(&pool.nthreads, 0);
    atomic_flag_clear(&pool_busy);
    pthread_mutex_unlock(&config_lock);
}
