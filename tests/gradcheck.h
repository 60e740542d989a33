/* Helpers for the op tests: random inputs, float-vs-double comparisons, and
 * central finite differences of a double-precision reference loss. */
#ifndef NN_TESTS_GRADCHECK_H
#define NN_TESTS_GRADCHECK_H

#include <check.h>

/* n floats from nn_alloc, uniform in [lo, hi) from `seed`. */
float *rand_floats(long n, float lo, float hi, unsigned seed);
/* n zero floats from nn_alloc. */
float *zero_floats(long n);
/* A malloc'd copy as doubles. */
double *to_doubles(const float *x, long n);
/* A malloc'd array of n zero doubles. */
double *zero_doubles(long n);

/* Normwise relative error max_i |got_i - want_i| / max(max_i |want_i|, 1e-30). */
double rel_err(const float *got, const double *want, long n);

/* sum_i a[i] * r[i]: the scalar loss L = <out, R> whose gradient w.r.t. out is R. */
double dot_dr(const double *a, const float *r, long n);

/* grad[i] = (L(x + h e_i) - L(x - h e_i)) / 2h, where loss(ctx) evaluates L
 * from the current contents of x (it must read x through ctx). */
void numgrad(double *x, long n, double h, double (*loss)(void *ctx), void *ctx, double *grad);

/* A gradient buffer for testing accumulation: it starts at random values
 * `base`, backward runs twice into `buf`, and (buf - base) / 2 must equal the
 * reference. */
struct accum {
    float *buf, *base;
    long n;
};
void accum_init(struct accum *a, long n, unsigned seed);
/* Max normwise relative error of (buf - base) / 2 against want. */
double accum_err(const struct accum *a, const double *want);
void accum_free(struct accum *a);

/* Fails the test with a message naming `what` when err > tol. */
#define CHECK_ERR(err, tol, ...)                                                                                   \
    do {                                                                                                           \
        double e_ = (err);                                                                                         \
        if (!(e_ <= (tol))) {                                                                                      \
            char what_[256];                                                                                       \
            snprintf(what_, sizeof what_, __VA_ARGS__);                                                            \
            ck_abort_msg("%s: relative error %.3g > %.3g", what_, e_, (double)(tol));                              \
        }                                                                                                          \
    } while (0)

#endif
