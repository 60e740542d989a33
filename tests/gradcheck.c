#include "tests/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "tests/testutil.h"

float *rand_floats(long n, float lo, float hi, unsigned seed)
{
    float *x = nn_alloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}

float *zero_floats(long n)
{
    float *x = nn_calloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    return x;
}

double *to_doubles(const float *x, long n)
{
    double *d = malloc((size_t)n * sizeof(double));
    ck_assert_ptr_nonnull(d);
    for (long i = 0; i < n; i++) d[i] = x[i];
    return d;
}

double *zero_doubles(long n)
{
    double *d = calloc((size_t)n, sizeof(double));
    ck_assert_ptr_nonnull(d);
    return d;
}

double rel_err(const float *got, const double *want, long n)
{
    double diff = 0, scale = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= diff)) diff = d; /* NaN propagates */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return diff / (scale > 1e-30 ? scale : 1e-30);
}

double dot_dr(const double *a, const float *r, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += a[i] * r[i];
    return s;
}

void numgrad(double *x, long n, double h, double (*loss)(void *ctx), void *ctx, double *grad)
{
    for (long i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double up = loss(ctx);
        x[i] = keep - h;
        double down = loss(ctx);
        x[i] = keep;
        grad[i] = (up - down) / (2 * h);
    }
}

void accum_init(struct accum *a, long n, unsigned seed)
{
    a->n = n;
    a->base = rand_floats(n, -0.01f, 0.01f, seed); /* small: the rounding of base + 2g stays far below g */
    a->buf = nn_alloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(a->buf);
    for (long i = 0; i < n; i++) a->buf[i] = a->base[i];
}

double accum_err(const struct accum *a, const double *want)
{
    float *g = nn_alloc((size_t)a->n * sizeof(float));
    ck_assert_ptr_nonnull(g);
    for (long i = 0; i < a->n; i++) g[i] = (a->buf[i] - a->base[i]) * 0.5f;
    double e = rel_err(g, want, a->n);
    nn_free(g);
    return e;
}

void accum_free(struct accum *a)
{
    nn_free(a->buf);
    nn_free(a->base);
    a->buf = a->base = NULL;
}
