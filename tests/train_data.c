#include "tests/train_data.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>

#include "io/dataset.h"

static void write_jpeg(const char *path, const unsigned char *rgb, int w, int h)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_msg(fp != NULL, "cannot write %s", path);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, fp);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(fp);
}

static unsigned next(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void mkdir_or_die(const char *p)
{
    ck_assert_msg(mkdir(p, 0777) == 0, "cannot create %s", p);
}

void make_color_photos(const char *src_dir, int classes, int per_class, int val_per_class, int side, unsigned seed)
{
    static const unsigned char base[][3] = {{200, 40, 40}, {40, 60, 200}, {40, 180, 60}, {200, 200, 40}, {150, 40, 180}};
    char path[4096];
    const char *splits[] = {"train", "validation"};
    int counts[] = {per_class, val_per_class};
    unsigned s = seed * 2654435761u + 1;
    unsigned char *rgb = malloc((size_t)side * side * 3);
    ck_assert_ptr_nonnull(rgb);
    mkdir_or_die(src_dir);
    for (int sp = 0; sp < 2; sp++) {
        snprintf(path, sizeof path, "%s/%s", src_dir, splits[sp]);
        mkdir_or_die(path);
        for (int c = 0; c < classes; c++) {
            snprintf(path, sizeof path, "%s/%s/class%d", src_dir, splits[sp], c);
            mkdir_or_die(path);
            for (int k = 0; k < counts[sp]; k++) {
                const unsigned char *b = base[c % 5];
                int sq = side / 4, x0 = (int)(next(&s) % (unsigned)(side - sq)), y0 = (int)(next(&s) % (unsigned)(side - sq));
                for (int y = 0; y < side; y++)
                    for (int x = 0; x < side; x++) {
                        bool in = x >= x0 && x < x0 + sq && y >= y0 && y < y0 + sq;
                        for (int ch = 0; ch < 3; ch++) {
                            int v = (in ? 255 : b[ch]) + (int)(next(&s) % 61) - 30;
                            rgb[((size_t)y * side + x) * 3 + ch] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                        }
                    }
                snprintf(path, sizeof path, "%s/%s/class%d/img%03d.jpg", src_dir, splits[sp], c, k);
                write_jpeg(path, rgb, side, side);
            }
        }
    }
    free(rgb);
}

char *make_color_dataset(const char *dir, int classes, int per_class, int val_per_class, int side, unsigned seed)
{
    char src[4096], out[4096];
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(out, sizeof out, "%s/data", dir);
    make_color_photos(src, classes, per_class, val_per_class, side, seed);
    struct nn_convert_options co;
    nn_convert_options_default(&co);
    co.threads = 2;
    struct nn_convert_summary sum;
    enum nn_status st = nn_dataset_convert(src, out, &co, &sum);
    ck_assert_msg(st == NN_OK, "convert: %s", nn_last_error());
    return strdup(out);
}
