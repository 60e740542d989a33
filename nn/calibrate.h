/* Post-training int8 calibration: run the float32 frozen model over real
 * images, record the distribution of every conv's input, and choose each
 * input's uint8 scale from it (nn_model_to_int8 then quantises).
 *
 * Each conv input (all ReLU outputs or pools of them, so >= 0) is
 * summarised by its exact zeros and a 2048-bin histogram of the positive
 * values over [0, R); R doubles (adjacent bins merge) whenever a larger
 * value arrives, so one pass suffices and memory stays fixed. Methods for
 * the clipping threshold T (scale = T / 255):
 * - NN_CALIB_MSE (default): T minimising the expected squared error of
 *   quantising the recorded distribution: values below T round to a grid
 *   of step T/255 (error step^2/12 each), values above T clip to T (error
 *   (x - T)^2), evaluated at every bin edge with prefix sums;
 * - NN_CALIB_PERCENTILE: T at the 99.99th percentile of the positive values;
 * - NN_CALIB_MAX: T = the largest value seen (no clipping).
 * The first conv (on the image, which has negative values) stays bf16. */
#ifndef NN_CALIBRATE_H
#define NN_CALIBRATE_H

#include "nn/nn.h"

enum nn_calib_method { NN_CALIB_MSE, NN_CALIB_PERCENTILE, NN_CALIB_MAX };

/* "mse", "percentile", "max" <-> the method; parse returns false on anything else. */
const char *nn_calib_method_name(enum nn_calib_method m);
bool nn_calib_method_parse(const char *s, enum nn_calib_method *out);

struct nn_calibrator;

/* A calibrator for `model` (float32; frozen here if it is not), taking
 * batches of up to `batch` images. */
enum nn_status nn_calibrator_new(const struct nn_model *model, int batch, enum nn_calib_method method,
                                 struct nn_calibrator **out);
/* Runs n images (NHWC, the eval transform's [-1, 1]) and records the conv inputs. */
enum nn_status nn_calibrator_add(struct nn_calibrator *c, const float *images, int n);
long nn_calibrator_images(const struct nn_calibrator *c);
/* The int8 model from what was recorded (at least one image). */
enum nn_status nn_calibrator_finish(struct nn_calibrator *c, struct nn_model **out);
void nn_calibrator_free(struct nn_calibrator *c);

/* The threshold the method picks for one histogram: bins[i] counts values
 * in [i, i+1) * range / nbins; max is the largest value seen. Exposed for
 * tests. */
double nn_calib_threshold(enum nn_calib_method method, const double *bins, int nbins, double range, double max);

#endif
