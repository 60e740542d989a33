/* The training augmentation of TF-slim's inception_preprocessing
 * (preprocess_for_train, fast_mode=False, one resize method: bilinear):
 *
 *   random crop (sample_distorted_bounding_box with the whole image as the
 *   object) -> bilinear resize to size x size -> random left-right flip ->
 *   colour distortion (brightness, saturation, hue, contrast in one of
 *   TF-slim's four random orders) -> clip to [0, 1] -> x * 2 - 1.
 *
 * All randomness comes from the caller's struct nn_rng, so one seed gives
 * one sequence of images. */
#ifndef NN_TRAIN_AUGMENT_H
#define NN_TRAIN_AUGMENT_H

#include <stdbool.h>

#include "base/rng.h"
#include "base/status.h"
#include "io/image.h"

struct nn_augment_options {
    bool distort_crop;          /* random crop; off: the whole image */
    bool flip;                  /* random horizontal flip */
    bool color;                 /* random colour distortion */
    float min_object_covered;   /* crop area >= this fraction of the image (0.1) */
    float aspect_min, aspect_max; /* crop width / height (0.75 .. 1.33) */
    float area_min, area_max;   /* crop area as a fraction of the image (0.05 .. 1.0) */
    int max_attempts;           /* crop draws before falling back to the whole image (100) */
    float flip_prob;            /* chance of a flip when `flip` (0.5) */
    float brightness_delta;     /* brightness shift uniform in +-this, on [0, 1] values (32/255) */
    float saturation_lo, saturation_hi; /* saturation factor range (0.5 .. 1.5) */
    float hue_delta;            /* hue shift uniform in +-this, in turns (0.2) */
    float contrast_lo, contrast_hi;     /* contrast factor range (0.5 .. 1.5) */
};

/* TF-slim's values, everything on. */
void nn_augment_defaults(struct nn_augment_options *opt);

/* A crop rectangle in pixels. */
struct nn_crop_box {
    int x, y, width, height;
};

/* sample_distorted_bounding_box for a width x height image whose object box
 * is the whole image: up to max_attempts draws of an aspect ratio and an
 * area; the first box that fits the image, has its area fraction in
 * [area_min, area_max] and covers >= min_object_covered of the image is
 * returned; if none does, the whole image. */
enum nn_status nn_augment_sample_box(int width, int height, const struct nn_augment_options *opt,
                                     struct nn_rng *rng, struct nn_crop_box *box);

/* The colour operations, in place on n_pixels interleaved RGB floats in
 * [0, 1] (values may leave [0, 1] in between; the caller clips at the end).
 * Saturation and hue go through HSV as tf.image does; contrast moves each
 * channel around its mean over the image. */
void nn_augment_brightness(float *rgb, long n_pixels, float delta);
void nn_augment_saturation(float *rgb, long n_pixels, float factor);
void nn_augment_hue(float *rgb, long n_pixels, float delta);
void nn_augment_contrast(float *rgb, long n_pixels, float factor);

/* TF-slim's distort_color (fast_mode=False) with the given ordering 0..3,
 * drawing each factor from rng; no clipping. */
void nn_augment_distort_color(float *rgb, long n_pixels, int ordering, const struct nn_augment_options *opt,
                              struct nn_rng *rng);

/* The whole training transform of one image into size*size*3 floats (HWC),
 * in [-1, 1]. */
enum nn_status nn_augment_train(const struct nn_image *img, int size, const struct nn_augment_options *opt,
                                struct nn_rng *rng, float *out_hwc);

#endif
