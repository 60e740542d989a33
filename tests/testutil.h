/* Helpers shared by the Check suites. */
#ifndef NN_TESTS_TESTUTIL_H
#define NN_TESTS_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Path of ../shared (or $NN_SHARED) joined with `rel`, in a static buffer
 * that the next call overwrites. */
const char *shared_path(const char *rel);

/* True when ../shared exists. When it is absent the caller should return
 * early: this prints a visible SKIP line, and fails the test when CI=true,
 * because CI always has ../shared. */
int have_shared(const char *test_name);

/* Path of the nn command built with the tests ($NN_BIN, set by make test). */
const char *nn_bin(void);

/* A fresh empty directory under $TMPDIR for one test; removed by rm_rf. */
char *make_temp_dir(void);
void rm_rf(const char *path);

/* Runs a shell command line; returns its exit status (or -1). Its stdout and
 * stderr are captured into *output (malloc'd, may be NULL) when output != NULL. */
int run_command(const char *cmdline, char **output);

/* Fills x[n] with uniform values in [lo, hi) from a fixed seed. */
void fill_uniform(float *x, size_t n, float lo, float hi, unsigned seed);

/* max |a - b| over n floats. */
double max_abs_diff(const float *a, const float *b, size_t n);

#endif
