#include "io/dataset_work.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct work {
    long n;
    nn_work_fn fn;
    void *ctx;
    atomic_long next, done;
};

struct worker_arg {
    struct work *w;
    int id;
};

/* Runs items until none is left; returns after each item when `poll`, so
 * the caller's thread can report progress between items. */
static int run_some(struct work *w, int id, int poll)
{
    for (;;) {
        long i = atomic_fetch_add(&w->next, 1);
        if (i >= w->n) return 0;
        w->fn(w->ctx, i, id);
        atomic_fetch_add(&w->done, 1);
        if (poll) return 1;
    }
}

static void *worker_main(void *arg)
{
    struct worker_arg *a = arg;
    run_some(a->w, a->id, 0);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int nn_dataset_threads(int requested, long n)
{
    long t = requested;
    if (t <= 0) t = sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    if (t > 256) t = 256;
    if (t > n) t = n > 0 ? n : 1;
    return (int)t;
}

void nn_dataset_run(long n, int threads, nn_work_fn fn, void *ctx, const char *stage, nn_progress_fn progress,
                    void *user)
{
    if (n <= 0) {
        if (progress) progress(user, stage, 0, 0);
        return;
    }
    struct work w = {.n = n, .fn = fn, .ctx = ctx};
    atomic_init(&w.next, 0);
    atomic_init(&w.done, 0);
    threads = nn_dataset_threads(threads, n);
    pthread_t tids[256];
    struct worker_arg args[256];
    int started = 0;
    /* Threads that fail to start just leave more work for the others. */
    for (int t = 1; t < threads; t++) {
        args[started] = (struct worker_arg){&w, t};
        if (pthread_create(&tids[started], NULL, worker_main, &args[started]) != 0) break;
        started++;
    }
    double last = now_s();
    if (progress) progress(user, stage, 0, n);
    while (run_some(&w, 0, 1)) {
        double t = now_s();
        if (progress && t - last >= 0.2) {
            progress(user, stage, atomic_load(&w.done), n);
            last = t;
        }
    }
    /* The caller ran out of items; the other threads finish theirs. */
    while (progress && atomic_load(&w.done) < n) {
        usleep(50000);
        double t = now_s();
        if (t - last >= 0.2) {
            progress(user, stage, atomic_load(&w.done), n);
            last = t;
        }
    }
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    if (progress) progress(user, stage, n, n);
}
