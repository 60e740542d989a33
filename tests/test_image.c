/* Image decoding (JPEG, PNG, refusals), DCT-scaled decode, and the eval
 * transform against the golden preprocess files. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "io/image.h"
#include "io/json.h"
#include "io/npy.h"
#include "tests/testutil.h"

#define ANT_JPEG "data/hymenoptera/val/ants/10308379_1b6c72e180.jpg"

/* ---- encoders for hand-made test images ---- */

struct mem_jpeg {
    unsigned char *data;
    unsigned long len;
};

/* Encodes width x height pixels of `components` channels in colour space
 * `in` (stored as `stored`) at quality 95, into malloc'd memory. */
static struct mem_jpeg encode_jpeg(const unsigned char *px, int width, int height, int components,
                                   J_COLOR_SPACE in, J_COLOR_SPACE stored)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    struct mem_jpeg m = {NULL, 0};
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &m.data, &m.len);
    c.image_width = (JDIMENSION)width;
    c.image_height = (JDIMENSION)height;
    c.input_components = components;
    c.in_color_space = in;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, stored);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * width * components);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    ck_assert_ptr_nonnull(m.data);
    return m;
}

struct mem_png {
    unsigned char *data;
    size_t len, cap;
};

static void png_write_mem(png_structp png, png_bytep src, size_t n)
{
    struct mem_png *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->data = realloc(m->data, m->cap);
        ck_assert_ptr_nonnull(m->data);
    }
    memcpy(m->data + m->len, src, n);
    m->len += n;
}

static void png_flush_mem(png_structp png) { (void)png; }

/* rows: height rows of packed samples as libpng expects for the type. */
static struct mem_png encode_png(const unsigned char *px, int width, int height, int bit_depth, int color_type,
                                 size_t row_bytes, const png_color *palette, int n_palette)
{
    struct mem_png m = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    png_set_write_fn(png, &m, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    if (bit_depth == 16) png_set_swap(png); /* our samples are little-endian uint16 */
    for (int y = 0; y < height; y++) png_write_row(png, px + (size_t)y * row_bytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return m;
}

/* ---- tests ---- */

START_TEST(sniff_by_magic)
{
    const unsigned char jpg[] = {0xFF, 0xD8, 0xFF, 0xE0};
    const unsigned char pngsig[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    ck_assert_int_eq(nn_image_sniff(jpg, sizeof jpg), NN_IMAGE_JPEG);
    ck_assert_int_eq(nn_image_sniff(pngsig, sizeof pngsig), NN_IMAGE_PNG);
    ck_assert_int_eq(nn_image_sniff(pngsig, 7), NN_IMAGE_UNKNOWN);
    ck_assert_int_eq(nn_image_sniff("GIF89a", 6), NN_IMAGE_UNKNOWN);
    ck_assert_int_eq(nn_image_sniff("", 0), NN_IMAGE_UNKNOWN);
}
END_TEST

START_TEST(grayscale_jpeg_becomes_rgb)
{
    enum { W = 24, H = 16 };
    unsigned char g[W * H];
    for (int i = 0; i < W * H; i++) g[i] = (unsigned char)(40 + (i % W) * 6);
    struct mem_jpeg m = encode_jpeg(g, W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE);
    struct nn_image img;
    ck_assert_int_eq(nn_image_decode(m.data, m.len, "gray.jpg", 0, &img), NN_OK);
    ck_assert_int_eq(img.width, W);
    ck_assert_int_eq(img.height, H);
    for (int i = 0; i < W * H; i++) {
        ck_assert_int_eq(img.rgb[3 * i], img.rgb[3 * i + 1]);
        ck_assert_int_eq(img.rgb[3 * i], img.rgb[3 * i + 2]);
        ck_assert_int_le(abs(img.rgb[3 * i] - g[i]), 3);
    }
    nn_image_free(&img);
    free(m.data);
}
END_TEST

/* Photoshop convention (with the Adobe marker libjpeg writes for CMYK):
 * stored = 255 - ink. Four flat quadrants: red, green, blue, 50% grey. */
static void check_cmyk(J_COLOR_SPACE stored)
{
    enum { W = 32, H = 32 };
    static const unsigned char ink[4][4] = {{0, 255, 255, 0}, {255, 0, 255, 0}, {255, 255, 0, 0}, {0, 0, 0, 128}};
    static const int want[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {127, 127, 127}};
    unsigned char px[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int q = (y >= H / 2) * 2 + (x >= W / 2);
            for (int c = 0; c < 4; c++) px[(y * W + x) * 4 + c] = (unsigned char)(255 - ink[q][c]);
        }
    struct mem_jpeg m = encode_jpeg(px, W, H, 4, JCS_CMYK, stored);
    struct nn_image img;
    ck_assert_int_eq(nn_image_decode(m.data, m.len, "cmyk.jpg", 0, &img), NN_OK);
    ck_assert_int_eq(img.width, W);
    /* Quadrant centres, away from the blurred borders. */
    for (int q = 0; q < 4; q++) {
        int y = (q / 2) * H / 2 + H / 4, x = (q % 2) * W / 2 + W / 4;
        for (int c = 0; c < 3; c++) ck_assert_int_le(abs(img.rgb[(y * W + x) * 3 + c] - want[q][c]), 6);
    }
    nn_image_free(&img);
    free(m.data);
}

START_TEST(cmyk_and_ycck_jpeg_become_rgb)
{
    check_cmyk(JCS_CMYK);
    check_cmyk(JCS_YCCK);
}
END_TEST

START_TEST(png_any_type_becomes_rgb8)
{
    enum { W = 5, H = 3 };
    struct nn_image img;

    /* RGBA 8-bit: lossless, alpha dropped without compositing. */
    unsigned char rgba[W * H * 4];
    for (int i = 0; i < W * H * 4; i++) rgba[i] = (unsigned char)(i * 7 + 1);
    struct mem_png m = encode_png(rgba, W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, W * 4, NULL, 0);
    ck_assert_int_eq(nn_image_decode(m.data, m.len, "rgba.png", 0, &img), NN_OK);
    ck_assert_int_eq(img.width, W);
    ck_assert_int_eq(img.height, H);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++) ck_assert_int_eq(img.rgb[3 * i + c], rgba[4 * i + c]);
    nn_image_free(&img);

    /* Truncated: an error, not a crash or a partial image. */
    ck_assert_int_eq(nn_image_decode(m.data, m.len - 20, "cut.png", 0, &img), NN_ERR_CORRUPT);
    ck_assert_ptr_null(img.rgb);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "cut.png"));
    /* A flipped bit inside the image data fails its CRC. */
    m.data[m.len / 2] ^= 0x10;
    ck_assert_int_ne(nn_image_decode(m.data, m.len, "crc.png", 0, &img), NN_OK);
    free(m.data);

    /* 16-bit grey: scaled to 8 bits and replicated. */
    uint16_t g16[W * H];
    for (int i = 0; i < W * H; i++) g16[i] = (uint16_t)(i * 4369); /* 4369 * 255 / 65535 = 17 */
    m = encode_png((const unsigned char *)g16, W, H, 16, PNG_COLOR_TYPE_GRAY, W * 2, NULL, 0);
    ck_assert_int_eq(nn_image_decode(m.data, m.len, "g16.png", 0, &img), NN_OK);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++) ck_assert_int_eq(img.rgb[3 * i + c], i * 17);
    nn_image_free(&img);
    free(m.data);

    /* 2-bit palette. */
    const png_color pal[4] = {{10, 20, 30}, {200, 0, 0}, {0, 200, 0}, {0, 0, 200}};
    unsigned char packed[H * 2]; /* 5 pixels of 2 bits: 2 bytes a row */
    for (int y = 0; y < H; y++) {
        packed[2 * y] = 0x1B;  /* indices 0 1 2 3 */
        packed[2 * y + 1] = (unsigned char)(y << 6); /* index y */
    }
    m = encode_png(packed, W, H, 2, PNG_COLOR_TYPE_PALETTE, 2, pal, 4);
    ck_assert_int_eq(nn_image_decode(m.data, m.len, "pal.png", 0, &img), NN_OK);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const png_color *p = &pal[x < 4 ? x : y];
            const uint8_t *q = img.rgb + (y * W + x) * 3;
            ck_assert(q[0] == p->red && q[1] == p->green && q[2] == p->blue);
        }
    nn_image_free(&img);
    free(m.data);
}
END_TEST

/* The guard refuses a huge header before allocating anything. */
START_TEST(huge_dimensions_are_refused)
{
    unsigned char px[8 * 8 * 3] = {0};
    struct mem_jpeg m = encode_jpeg(px, 8, 8, 3, JCS_RGB, JCS_YCbCr);
    /* Patch the SOF0 frame header: FF C0, length(2), precision(1), height(2), width(2). */
    unsigned long i = 2;
    while (i + 9 < m.len && !(m.data[i] == 0xFF && m.data[i + 1] == 0xC0)) i++;
    ck_assert_uint_lt(i + 9, m.len);
    m.data[i + 5] = 20000 >> 8;
    m.data[i + 6] = 20000 & 0xFF;
    m.data[i + 7] = 20000 >> 8;
    m.data[i + 8] = 20000 & 0xFF;
    struct nn_image img;
    ck_assert_int_eq(nn_image_decode(m.data, m.len, "huge.jpg", 0, &img), NN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "huge.jpg"));
    free(m.data);
}
END_TEST

START_TEST(bad_files_are_errors)
{
    if (!have_shared("bad_files_are_errors")) return;
    struct nn_image img;
    char gif[4096];
    snprintf(gif, sizeof gif, "%s", shared_path("data/hymenoptera/train/ants/imageNotFound.gif"));
    ck_assert_int_eq(nn_image_load(gif, 0, &img), NN_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), gif));
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "GIF"));
    ck_assert_ptr_null(img.rgb);

    char *data;
    size_t len;
    ck_assert_int_eq(nn_read_file(shared_path(ANT_JPEG), &data, &len), NN_OK);
    ck_assert_int_eq(nn_image_decode(data, len / 2, "half.jpg", 0, &img), NN_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "half.jpg"));
    ck_assert_ptr_null(img.rgb);
    /* An EOI marker planted mid-stream: "premature end of data segment",
     * only a warning to libjpeg, an error to us. */
    unsigned char *bad = malloc(len);
    ck_assert_ptr_nonnull(bad);
    memcpy(bad, data, len);
    bad[len / 2] = 0xFF;
    bad[len / 2 + 1] = 0xD9;
    ck_assert_int_eq(nn_image_decode(bad, len, "marker.jpg", 0, &img), NN_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "marker.jpg"));
    free(bad);
    /* Cut inside the headers, before any image data. */
    ck_assert_int_eq(nn_image_decode(data, 300, "head.jpg", 0, &img), NN_ERR_CORRUPT);
    free(data);

    char *dir = make_temp_dir(), path[4200];
    snprintf(path, sizeof path, "%s/empty.jpg", dir);
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    ck_assert_int_eq(nn_image_load(path, 0, &img), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), path));
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "empty"));

    snprintf(path, sizeof path, "%s/notes.jpg", dir);
    fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs("these are not pixels\n", fp);
    fclose(fp);
    ck_assert_int_eq(nn_image_load(path, 0, &img), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), path));

    snprintf(path, sizeof path, "%s/missing.jpg", dir);
    ck_assert_int_eq(nn_image_load(path, 0, &img), NN_ERR_IO);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(dct_scaling_keeps_min_side)
{
    if (!have_shared("dct_scaling_keeps_min_side")) return;
    struct nn_image full, small;
    ck_assert_int_eq(nn_image_load(shared_path(ANT_JPEG), 0, &full), NN_OK);
    int fs = full.width < full.height ? full.width : full.height;
    const int sides[] = {1, 40, fs / 3, fs / 2 + 1, fs};
    for (size_t k = 0; k < sizeof sides / sizeof *sides; k++) {
        int want = sides[k];
        ck_assert_int_eq(nn_image_load(shared_path(ANT_JPEG), want, &small), NN_OK);
        int ss = small.width < small.height ? small.width : small.height;
        ck_assert_int_ge(ss, want);
        ck_assert_int_le(small.width, full.width);
        /* Smallest scale n/8: one step smaller would be under min_side. */
        int n = (int)lround(8.0 * small.width / full.width);
        ck_assert_int_eq(small.width, (full.width * n + 7) / 8);
        ck_assert_int_eq(small.height, (full.height * n + 7) / 8);
        if (n > 1) ck_assert_int_lt(((fs * (n - 1)) + 7) / 8, want);
        nn_image_free(&small);
    }
    /* Asking for more than the image has gives the full size, never larger. */
    ck_assert_int_eq(nn_image_load(shared_path(ANT_JPEG), fs * 4, &small), NN_OK);
    ck_assert_int_eq(small.width, full.width);
    ck_assert_int_eq(memcmp(small.rgb, full.rgb, (size_t)full.width * full.height * 3), 0);
    nn_image_free(&small);
    nn_image_free(&full);
}
END_TEST

START_TEST(eval_transform_matches_golden)
{
    if (!have_shared("eval_transform_matches_golden")) return;
    char *text;
    size_t len;
    ck_assert_int_eq(nn_read_file(shared_path("golden/inception_v3/meta.json"), &text, &len), NN_OK);
    struct nn_json *meta;
    ck_assert_int_eq(nn_json_parse(text, len, &meta), NN_OK);
    free(text);
    const struct nn_json *images = nn_json_get(meta, "images");
    ck_assert_ptr_nonnull(images);
    ck_assert_uint_eq(nn_json_len(images), 2);
    enum { S = 299 };
    float *out = nn_alloc(sizeof(float) * S * S * 3);
    ck_assert_ptr_nonnull(out);
    for (size_t k = 0; k < 2; k++) {
        struct nn_image img;
        const char *rel = nn_json_string(nn_json_at(images, k));
        ck_assert_ptr_nonnull(rel);
        ck_assert_int_eq(nn_image_load(shared_path(rel), 0, &img), NN_OK);
        ck_assert_int_eq(nn_image_eval_transform(&img, S, 0.875f, out), NN_OK);
        char name[64];
        snprintf(name, sizeof name, "golden/inception_v3/preprocess_%zu.npy", k);
        struct nn_npy ref;
        ck_assert_int_eq(nn_npy_read(shared_path(name), &ref), NN_OK);
        ck_assert_int_eq(ref.dtype, NN_DTYPE_F32);
        ck_assert_int_eq(ref.count, 3 * S * S);
        const float *r = ref.data;
        double worst = 0;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < S * S; i++) {
                double d = fabs((double)out[3 * i + c] - r[c * S * S + i]);
                if (d > worst) worst = d;
            }
        /* The golden README's bar; measured: 3.6e-7. */
        ck_assert_msg(worst <= 1e-4, "%s: max |diff| %g > 1e-4", rel, worst);
        nn_npy_free(&ref);
        nn_image_free(&img);
    }
    nn_free(out);
    nn_json_free(meta);
}
END_TEST

/* Half-pixel bilinear on a case small enough to compute by hand: a 2x1
 * image upsampled to 4x1 gives 0.25/0.75 mixes in the middle and clamped
 * copies at the ends; mirroring reverses the columns. */
START_TEST(resize_half_pixel_by_hand)
{
    uint8_t px[6] = {0, 0, 0, 100, 200, 40};
    struct nn_image img = {2, 1, px};
    float out[12], mir[12];
    ck_assert_int_eq(nn_image_resize_region(&img, 0, 0, 2, 1, 4, 1, false, 1.0f, 0.0f, out), NN_OK);
    const float want_r[4] = {0, 25, 75, 100};
    for (int j = 0; j < 4; j++) {
        ck_assert_float_eq_tol(out[3 * j], want_r[j], 1e-5);
        ck_assert_float_eq_tol(out[3 * j + 1], want_r[j] * 2, 1e-5);
    }
    ck_assert_int_eq(nn_image_resize_region(&img, 0, 0, 2, 1, 4, 1, true, 1.0f, 0.0f, mir), NN_OK);
    for (int j = 0; j < 4; j++)
        for (int c = 0; c < 3; c++) ck_assert_float_eq(mir[3 * j + c], out[3 * (3 - j) + c]);
    /* Region outside the image is an argument error. */
    ck_assert_int_eq(nn_image_resize_region(&img, 1, 0, 2, 1, 4, 1, false, 1.0f, 0.0f, out), NN_ERR_ARG);
}
END_TEST

Suite *suite_image(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("image");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sniff_by_magic);
    tcase_add_test(tc, grayscale_jpeg_becomes_rgb);
    tcase_add_test(tc, cmyk_and_ycck_jpeg_become_rgb);
    tcase_add_test(tc, png_any_type_becomes_rgb8);
    tcase_add_test(tc, huge_dimensions_are_refused);
    tcase_add_test(tc, bad_files_are_errors);
    tcase_add_test(tc, dct_scaling_keeps_min_side);
    tcase_add_test(tc, eval_transform_matches_golden);
    tcase_add_test(tc, resize_half_pixel_by_hand);
    suite_add_tcase(s, tc);
    return s;
}
