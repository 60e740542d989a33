#include "ops/activation.h"

#include <stddef.h>

#include "base/threads.h"

/* Elementwise loops are memory bound; split only large arrays. */
#define GRAIN 65536L

struct relu_job {
    float *out;
    const float *a, *b;
};

static void relu_fwd_range(void *ctx, long begin, long end)
{
    const struct relu_job *j = ctx;
    float *y = j->out;
    const float *x = j->a;
    for (long i = begin; i < end; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void nn_relu_forward(float *y, const float *x, long n)
{
    struct relu_job j = {y, x, NULL};
    nn_parallel_for(n, GRAIN, relu_fwd_range, &j);
}

static void relu_bwd_range(void *ctx, long begin, long end)
{
    const struct relu_job *j = ctx;
    float *dx = j->out;
    const float *dy = j->a, *y = j->b;
    for (long i = begin; i < end; i++) { /* an unconditional load, so GCC vectorises it */
        float g = dy[i];
        dx[i] += y[i] > 0.0f ? g : 0.0f;
    }
}

void nn_relu_backward(float *dx, const float *dy, const float *y, long n)
{
    struct relu_job j = {dx, dy, y};
    nn_parallel_for(n, GRAIN, relu_bwd_range, &j);
}
