/* The training augmentation: crop-box constraints, colour operations on
 * hand-made pixels, flips, determinism, range. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "io/image.h"
#include "tests/testutil.h"
#include "train/augment.h"

/* A deterministic, colourful, non-symmetric image. */
static struct nn_image make_image(int width, int height)
{
    struct nn_image img = {width, height, nn_alloc((size_t)width * height * 3)};
    ck_assert_ptr_nonnull(img.rgb);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            uint8_t *p = img.rgb + ((size_t)y * width + x) * 3;
            p[0] = (uint8_t)(x * 255 / (width - 1));
            p[1] = (uint8_t)(y * 255 / (height - 1));
            p[2] = (uint8_t)((x * 7 + y * 13) % 256);
        }
    return img;
}

static struct nn_augment_options all_off(void)
{
    struct nn_augment_options o;
    nn_augment_defaults(&o);
    o.distort_crop = o.flip = o.color = false;
    return o;
}

START_TEST(boxes_meet_constraints)
{
    struct nn_augment_options o;
    nn_augment_defaults(&o);
    struct nn_rng rng;
    nn_rng_seed(&rng, 7, 3);
    const int sizes[][2] = {{500, 375}, {375, 500}, {299, 299}, {1000, 120}, {37, 23}};
    int fallbacks = 0, draws = 0;
    double area_sum = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int W = sizes[s][0], H = sizes[s][1];
        for (int k = 0; k < 2000; k++) {
            struct nn_crop_box b;
            ck_assert_int_eq(nn_augment_sample_box(W, H, &o, &rng, &b), NN_OK);
            ck_assert(b.x >= 0 && b.y >= 0 && b.width >= 1 && b.height >= 1);
            ck_assert(b.x + b.width <= W && b.y + b.height <= H);
            if (b.x == 0 && b.y == 0 && b.width == W && b.height == H) {
                fallbacks++;
                continue;
            }
            draws++;
            double frac = (double)b.width * b.height / ((double)W * H);
            area_sum += frac;
            ck_assert(frac >= o.area_min - 1e-9 && frac <= o.area_max + 1e-9);
            ck_assert(frac >= o.min_object_covered - 1e-9);
            /* width = round(height * aspect): the ratio is within rounding of the range. */
            double aspect = (double)b.width / b.height;
            ck_assert_msg(aspect >= o.aspect_min - 0.5 / b.height && aspect <= o.aspect_max + 0.5 / b.height,
                          "aspect %g of %dx%d", aspect, b.width, b.height);
        }
    }
    /* Real crops, of varied size, nearly always. */
    ck_assert_int_gt(draws, 9 * fallbacks);
    ck_assert(area_sum / draws > 0.3 && area_sum / draws < 0.8);

    /* Impossible constraints fall back to the whole image. */
    o.aspect_min = o.aspect_max = 20.0f;
    o.area_min = 0.9f;
    struct nn_crop_box b;
    ck_assert_int_eq(nn_augment_sample_box(100, 100, &o, &rng, &b), NN_OK);
    ck_assert(b.x == 0 && b.y == 0 && b.width == 100 && b.height == 100);
    o.aspect_min = 2.0f, o.aspect_max = 1.0f;
    ck_assert_int_eq(nn_augment_sample_box(100, 100, &o, &rng, &b), NN_ERR_ARG);
}
END_TEST

START_TEST(brightness_shifts_mean)
{
    float px[4 * 3] = {0.1f, 0.2f, 0.3f, 0.5f, 0.5f, 0.5f, 0.9f, 0.0f, 0.4f, 0.7f, 0.6f, 0.2f};
    float before = 0, after = 0;
    for (int i = 0; i < 12; i++) before += px[i];
    nn_augment_brightness(px, 4, 0.1f);
    for (int i = 0; i < 12; i++) after += px[i];
    ck_assert_float_eq_tol(after / 12, before / 12 + 0.1f, 1e-6);
    ck_assert_float_eq_tol(px[7], 0.1f, 1e-6);
}
END_TEST

START_TEST(contrast_scales_around_channel_mean)
{
    /* Two pixels: channel means are 0.5, 0.3, 0.6. */
    float px[6] = {0.25f, 0.2f, 0.6f, 0.75f, 0.4f, 0.6f};
    nn_augment_contrast(px, 2, 2.0f);
    const float want[6] = {0.0f, 0.1f, 0.6f, 1.0f, 0.5f, 0.6f};
    for (int i = 0; i < 6; i++) ck_assert_float_eq_tol(px[i], want[i], 1e-6);
}
END_TEST

START_TEST(saturation_and_hue_by_hand)
{
    /* Saturation 0: grey at the pixel's value (max channel). */
    float px[6] = {0.8f, 0.4f, 0.2f, 0.1f, 0.5f, 0.3f};
    nn_augment_saturation(px, 2, 0.0f);
    for (int c = 0; c < 3; c++) {
        ck_assert_float_eq_tol(px[c], 0.8f, 1e-6);
        ck_assert_float_eq_tol(px[3 + c], 0.5f, 1e-6);
    }
    /* Saturation 0.5 on (0.8, 0.4, 0.2): s 0.75 -> 0.375, v 0.8, hue kept:
     * min = v(1-s) = 0.5, mid keeps its place: 0.5 + (0.4-0.2)/(0.8-0.2)*0.3 = 0.6. */
    float q[3] = {0.8f, 0.4f, 0.2f};
    nn_augment_saturation(q, 1, 0.5f);
    ck_assert_float_eq_tol(q[0], 0.8f, 1e-6);
    ck_assert_float_eq_tol(q[1], 0.6f, 1e-6);
    ck_assert_float_eq_tol(q[2], 0.5f, 1e-6);
    /* Saturation above 1 clamps s at 1: the minimum goes to 0. */
    float sat[3] = {0.8f, 0.4f, 0.2f};
    nn_augment_saturation(sat, 1, 100.0f);
    ck_assert_float_eq_tol(sat[2], 0.0f, 1e-6);

    /* Hue: red + 1/3 turn = green, + 2/3 = blue, - 1/3 = blue; dark red stays dark. */
    float h[9] = {1, 0, 0, 1, 0, 0, 0.5f, 0, 0};
    nn_augment_hue(h, 1, 1.0f / 3.0f);
    nn_augment_hue(h + 3, 1, -1.0f / 3.0f);
    nn_augment_hue(h + 6, 1, 2.0f / 3.0f);
    const float want[9] = {0, 1, 0, 0, 0, 1, 0, 0, 0.5f};
    for (int i = 0; i < 9; i++) ck_assert_float_eq_tol(h[i], want[i], 1e-5);
    /* Grey has no hue to turn. */
    float g[3] = {0.3f, 0.3f, 0.3f};
    nn_augment_hue(g, 1, 0.17f);
    for (int c = 0; c < 3; c++) ck_assert_float_eq_tol(g[c], 0.3f, 1e-6);
    /* A full turn is the identity. */
    float r[3] = {0.2f, 0.9f, 0.45f};
    nn_augment_hue(r, 1, 1.0f);
    ck_assert_float_eq_tol(r[0], 0.2f, 1e-5);
    ck_assert_float_eq_tol(r[1], 0.9f, 1e-5);
    ck_assert_float_eq_tol(r[2], 0.45f, 1e-5);
}
END_TEST

START_TEST(all_off_is_plain_resize)
{
    enum { S = 37 };
    struct nn_image img = make_image(61, 45);
    struct nn_augment_options o = all_off();
    float out[S * S * 3], ref[S * S * 3];
    struct nn_rng rng;
    nn_rng_seed(&rng, 1, 1);
    ck_assert_int_eq(nn_augment_train(&img, S, &o, &rng, out), NN_OK);
    ck_assert_int_eq(nn_image_eval_transform(&img, S, 1.0f, ref), NN_OK);
    ck_assert_double_le(max_abs_diff(out, ref, S * S * 3), 2e-6);

    /* Forced flip: the same resize with the columns mirrored. */
    o.flip = true;
    o.flip_prob = 1.0f;
    ck_assert_int_eq(nn_augment_train(&img, S, &o, &rng, out), NN_OK);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++)
                ck_assert_float_eq_tol(out[(y * S + x) * 3 + c], ref[(y * S + S - 1 - x) * 3 + c], 2e-6);

    /* Flip at p = 0.5: each result is one of the two, and both happen. */
    o.flip_prob = 0.5f;
    int flipped = 0, kept = 0;
    for (int k = 0; k < 40; k++) {
        ck_assert_int_eq(nn_augment_train(&img, S, &o, &rng, out), NN_OK);
        if (max_abs_diff(out, ref, S * S * 3) <= 2e-6) kept++;
        else flipped++;
    }
    ck_assert_int_gt(flipped, 5);
    ck_assert_int_gt(kept, 5);
    nn_free(img.rgb);
}
END_TEST

START_TEST(full_augment_range_and_determinism)
{
    enum { S = 64 };
    struct nn_image img = make_image(120, 90);
    struct nn_augment_options o;
    nn_augment_defaults(&o);
    static float a[S * S * 3], b[S * S * 3];
    struct nn_rng r1, r2;
    nn_rng_seed(&r1, 123, 9);
    nn_rng_seed(&r2, 123, 9);
    for (int k = 0; k < 8; k++) {
        ck_assert_int_eq(nn_augment_train(&img, S, &o, &r1, a), NN_OK);
        ck_assert_int_eq(nn_augment_train(&img, S, &o, &r2, b), NN_OK);
        ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
        float lo = 1, hi = -1;
        for (int i = 0; i < S * S * 3; i++) {
            ck_assert(isfinite(a[i]));
            lo = fminf(lo, a[i]);
            hi = fmaxf(hi, a[i]);
        }
        ck_assert(lo >= -1.0f && hi <= 1.0f);
        ck_assert(hi - lo > 0.1f); /* not a flat image */
    }
    nn_rng_seed(&r2, 124, 9);
    ck_assert_int_eq(nn_augment_train(&img, S, &o, &r1, a), NN_OK);
    ck_assert_int_eq(nn_augment_train(&img, S, &o, &r2, b), NN_OK);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    nn_free(img.rgb);
}
END_TEST

START_TEST(color_only_changes_colour_not_geometry)
{
    /* A flat image stays flat under any colour distortion (every op is
     * per-pixel or uses a global mean), and the draws stay in range. */
    enum { S = 16 };
    struct nn_image img = {8, 8, nn_alloc(8 * 8 * 3)};
    ck_assert_ptr_nonnull(img.rgb);
    for (int i = 0; i < 64; i++) img.rgb[3 * i] = 180, img.rgb[3 * i + 1] = 90, img.rgb[3 * i + 2] = 30;
    struct nn_augment_options o = all_off();
    o.color = true;
    struct nn_rng rng;
    nn_rng_seed(&rng, 5, 5);
    float out[S * S * 3];
    int changed = 0;
    for (int k = 0; k < 20; k++) {
        ck_assert_int_eq(nn_augment_train(&img, S, &o, &rng, out), NN_OK);
        for (int i = 1; i < S * S; i++)
            for (int c = 0; c < 3; c++) ck_assert_float_eq_tol(out[3 * i + c], out[c], 1e-6);
        if (fabsf(out[0] - (180.0f / 127.5f - 1.0f)) > 1e-3f) changed++;
    }
    ck_assert_int_gt(changed, 15);
    nn_free(img.rgb);
}
END_TEST

Suite *suite_augment(void)
{
    Suite *s = suite_create("augment");
    TCase *tc = tcase_create("augment");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, boxes_meet_constraints);
    tcase_add_test(tc, brightness_shifts_mean);
    tcase_add_test(tc, contrast_scales_around_channel_mean);
    tcase_add_test(tc, saturation_and_hue_by_hand);
    tcase_add_test(tc, all_off_is_plain_resize);
    tcase_add_test(tc, full_augment_range_and_determinism);
    tcase_add_test(tc, color_only_changes_colour_not_geometry);
    suite_add_tcase(s, tc);
    return s;
}
