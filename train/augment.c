/* TF-slim inception_preprocessing, training branch (see augment.h). */
#include "train/augment.h"

#include <math.h>

void nn_augment_defaults(struct nn_augment_options *opt)
{
    *opt = (struct nn_augment_options){
        .distort_crop = true,
        .flip = true,
        .color = true,
        .min_object_covered = 0.1f,
        .aspect_min = 0.75f,
        .aspect_max = 1.33f,
        .area_min = 0.05f,
        .area_max = 1.0f,
        .max_attempts = 100,
        .flip_prob = 0.5f,
        .brightness_delta = 32.0f / 255.0f,
        .saturation_lo = 0.5f,
        .saturation_hi = 1.5f,
        .hue_delta = 0.2f,
        .contrast_lo = 0.5f,
        .contrast_hi = 1.5f,
    };
}

static float uniform_in(struct nn_rng *rng, float lo, float hi) { return lo + (hi - lo) * nn_rng_uniform(rng); }

static enum nn_status check_options(const struct nn_augment_options *o)
{
    if (!(o->aspect_min > 0.0f && o->aspect_min <= o->aspect_max))
        return nn_fail(NN_ERR_ARG, "augment: aspect ratio range [%g, %g] is empty or not positive",
                       (double)o->aspect_min, (double)o->aspect_max);
    if (!(o->area_min > 0.0f && o->area_min <= o->area_max && o->area_max <= 1.0f))
        return nn_fail(NN_ERR_ARG, "augment: area range [%g, %g] must lie in (0, 1] and not be empty",
                       (double)o->area_min, (double)o->area_max);
    if (!(o->min_object_covered >= 0.0f && o->min_object_covered <= 1.0f))
        return nn_fail(NN_ERR_ARG, "augment: min_object_covered %g must be in [0, 1]", (double)o->min_object_covered);
    if (o->max_attempts < 0) return nn_fail(NN_ERR_ARG, "augment: max_attempts %d is negative", o->max_attempts);
    return NN_OK;
}

/* One draw, as TensorFlow's sample_distorted_bounding_box makes it: the
 * aspect ratio is drawn first, then the height uniformly between the
 * heights that give the smallest and the largest allowed area at that
 * aspect ratio (capped so the box fits), and the width follows from it.
 * Rounding can push the area or the fit out of range; then the draw fails. */
static bool draw_box(int width, int height, const struct nn_augment_options *o, struct nn_rng *rng,
                     struct nn_crop_box *box)
{
    double image_area = (double)width * height;
    double min_area = o->area_min * image_area, max_area = o->area_max * image_area;
    double aspect = uniform_in(rng, o->aspect_min, o->aspect_max);

    long min_h = lrint(sqrt(min_area / aspect));
    long max_h = lrint(sqrt(max_area / aspect));
    /* The tallest box whose rounded width still fits the image. */
    long fit_h = (long)((width + 0.5) / aspect);
    while (fit_h > 0 && lrint(fit_h * aspect) > width) fit_h--;
    if (max_h > fit_h) max_h = fit_h;
    if (max_h > height) max_h = height;
    if (min_h > max_h) min_h = max_h;
    if (max_h < 1) return false;

    long h = min_h + (long)nn_rng_below(rng, (uint32_t)(max_h - min_h + 1));
    long w = lrint(h * aspect);
    double area = (double)w * h;
    if (w < 1 || h < 1 || w > width || h > height) return false;
    if (area < min_area || area > max_area) return false;
    /* The object is the whole image, so the part of it covered is the crop. */
    if (area < o->min_object_covered * image_area) return false;

    box->width = (int)w;
    box->height = (int)h;
    box->x = (int)nn_rng_below(rng, (uint32_t)(width - w + 1));
    box->y = (int)nn_rng_below(rng, (uint32_t)(height - h + 1));
    return true;
}

enum nn_status nn_augment_sample_box(int width, int height, const struct nn_augment_options *opt,
                                     struct nn_rng *rng, struct nn_crop_box *box)
{
    if (!opt || !rng || !box) return nn_fail(NN_ERR_ARG, "nn_augment_sample_box: NULL argument");
    if (width <= 0 || height <= 0)
        return nn_fail(NN_ERR_ARG, "nn_augment_sample_box: image size %d x %d is empty", width, height);
    NN_TRY(check_options(opt));
    for (int attempt = 0; attempt < opt->max_attempts; attempt++)
        if (draw_box(width, height, opt, rng, box)) return NN_OK;
    *box = (struct nn_crop_box){0, 0, width, height};
    return NN_OK;
}

void nn_augment_brightness(float *rgb, long n_pixels, float delta)
{
    for (long i = 0; i < 3 * n_pixels; i++) rgb[i] += delta;
}

void nn_augment_contrast(float *rgb, long n_pixels, float factor)
{
    if (n_pixels <= 0) return;
    double sum[3] = {0, 0, 0};
    for (long i = 0; i < n_pixels; i++)
        for (int c = 0; c < 3; c++) sum[c] += rgb[3 * i + c];
    float mean[3];
    for (int c = 0; c < 3; c++) mean[c] = (float)(sum[c] / (double)n_pixels);
    for (long i = 0; i < n_pixels; i++)
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (rgb[3 * i + c] - mean[c]) * factor + mean[c];
}

/* HSV with h in turns [0, 1), as tf.image's float kernels define it. */
static void rgb_to_hsv(const float *p, float *h, float *s, float *v)
{
    float r = p[0], g = p[1], b = p[2];
    float hi = fmaxf(r, fmaxf(g, b)), lo = fminf(r, fminf(g, b)), range = hi - lo;
    *v = hi;
    *s = hi > 0.0f ? range / hi : 0.0f;
    if (range <= 0.0f) {
        *h = 0.0f;
        return;
    }
    float hh;
    if (r == hi) hh = (g - b) / (6.0f * range);
    else if (g == hi) hh = (b - r) / (6.0f * range) + 1.0f / 3.0f;
    else hh = (r - g) / (6.0f * range) + 2.0f / 3.0f;
    *h = hh < 0.0f ? hh + 1.0f : hh;
}

static void hsv_to_rgb(float h, float s, float v, float *p)
{
    float chroma = s * v, base = v - chroma;
    float sector_pos = h * 6.0f;
    int sector = (int)sector_pos; /* h >= 0 */
    if (sector > 5) sector = 5;
    /* The middle component rises in even sectors and falls in odd ones. */
    float frac = sector_pos - (float)sector;
    float mid = chroma * ((sector & 1) ? 1.0f - frac : frac);
    float r, g, b;
    switch (sector) {
    case 0: r = chroma, g = mid, b = 0; break;
    case 1: r = mid, g = chroma, b = 0; break;
    case 2: r = 0, g = chroma, b = mid; break;
    case 3: r = 0, g = mid, b = chroma; break;
    case 4: r = mid, g = 0, b = chroma; break;
    default: r = chroma, g = 0, b = mid; break;
    }
    p[0] = r + base;
    p[1] = g + base;
    p[2] = b + base;
}

/* Scaling s with h and v fixed moves every channel toward (or away from) the
 * maximum by the same factor: x' = v - (v - x) * s'/s. That is the HSV round
 * trip of tf.image.adjust_saturation without the sector logic, and about
 * three times faster. s' = min(s * factor, 1), so the factor is capped at 1/s. */
void nn_augment_saturation(float *rgb, long n_pixels, float factor)
{
    if (factor < 0.0f) factor = 0.0f;
    for (long i = 0; i < n_pixels; i++) {
        float *p = rgb + 3 * i;
        float v = fmaxf(p[0], fmaxf(p[1], p[2]));
        if (v <= 0.0f) { /* HSV gives s = 0 here: grey at v */
            p[0] = p[1] = p[2] = v;
            continue;
        }
        float range = v - fminf(p[0], fminf(p[1], p[2]));
        float k = factor * range > v ? v / range : factor; /* s * factor > 1: clamp s' to 1 */
        p[0] = v - (v - p[0]) * k;
        p[1] = v - (v - p[1]) * k;
        p[2] = v - (v - p[2]) * k;
    }
}

void nn_augment_hue(float *rgb, long n_pixels, float delta)
{
    for (long i = 0; i < n_pixels; i++) {
        float h, s, v;
        rgb_to_hsv(rgb + 3 * i, &h, &s, &v);
        h += delta;
        h -= floorf(h);
        if (h >= 1.0f) h = 0.0f; /* -tiny + 1 can round to 1 */
        hsv_to_rgb(h, s, v, rgb + 3 * i);
    }
}

enum color_op { BRIGHTNESS, SATURATION, HUE, CONTRAST };

/* TF-slim's distort_color orderings for fast_mode=False. */
static const enum color_op orderings[4][4] = {
    {BRIGHTNESS, SATURATION, HUE, CONTRAST},
    {SATURATION, BRIGHTNESS, CONTRAST, HUE},
    {CONTRAST, HUE, BRIGHTNESS, SATURATION},
    {HUE, SATURATION, CONTRAST, BRIGHTNESS},
};

void nn_augment_distort_color(float *rgb, long n_pixels, int ordering, const struct nn_augment_options *opt,
                              struct nn_rng *rng)
{
    const enum color_op *ops = orderings[((unsigned)ordering) % 4];
    for (int k = 0; k < 4; k++) {
        switch (ops[k]) {
        case BRIGHTNESS:
            nn_augment_brightness(rgb, n_pixels, uniform_in(rng, -opt->brightness_delta, opt->brightness_delta));
            break;
        case SATURATION:
            nn_augment_saturation(rgb, n_pixels, uniform_in(rng, opt->saturation_lo, opt->saturation_hi));
            break;
        case HUE: nn_augment_hue(rgb, n_pixels, uniform_in(rng, -opt->hue_delta, opt->hue_delta)); break;
        case CONTRAST:
            nn_augment_contrast(rgb, n_pixels, uniform_in(rng, opt->contrast_lo, opt->contrast_hi));
            break;
        }
    }
}

enum nn_status nn_augment_train(const struct nn_image *img, int size, const struct nn_augment_options *opt,
                                struct nn_rng *rng, float *out_hwc)
{
    if (!img || !img->rgb || !opt || !rng || !out_hwc) return nn_fail(NN_ERR_ARG, "nn_augment_train: NULL argument");
    if (size <= 0) return nn_fail(NN_ERR_ARG, "nn_augment_train: size %d must be positive", size);
    NN_TRY(check_options(opt));

    struct nn_crop_box box = {0, 0, img->width, img->height};
    if (opt->distort_crop) NN_TRY(nn_augment_sample_box(img->width, img->height, opt, rng, &box));
    bool mirror = opt->flip && nn_rng_uniform(rng) < opt->flip_prob;
    /* Resampling straight from the crop's region of the source: no crop copy.
     * A flip of the resized crop is the same resize with mirrored columns. */
    NN_TRY(nn_image_resize_region(img, box.x, box.y, box.width, box.height, size, size, mirror, 1.0f / 255.0f, 0.0f,
                                  out_hwc));
    long n = (long)size * size;
    if (opt->color) nn_augment_distort_color(out_hwc, n, (int)nn_rng_below(rng, 4), opt, rng);
    for (long i = 0; i < 3 * n; i++) out_hwc[i] = fminf(fmaxf(out_hwc[i], 0.0f), 1.0f) * 2.0f - 1.0f;
    return NN_OK;
}
