#include "io/synth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/jpeg_write.h"

#define SYNTH_PATH_MAX 4096

/* A small LCG rather than base/rng.h: the training tests' thresholds were
 * tuned on exactly these images, so the sequence must not change. */
static unsigned synth_next(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static enum nn_status make_dir(const char *path, bool may_exist)
{
    if (mkdir(path, 0777) == 0 || (may_exist && errno == EEXIST)) return NN_OK;
    if (errno == EEXIST) return nn_fail(NN_ERR_ARG, "%s: already exists (nn_synth_photos writes a new set)", path);
    return nn_fail(NN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
}

static enum nn_status join(char *buf, const char *fmt, const char *dir, const char *split, int c, int k)
{
    int n = snprintf(buf, SYNTH_PATH_MAX, fmt, dir, split, c, k);
    if (n < 0 || n >= SYNTH_PATH_MAX) return nn_fail(NN_ERR_ARG, "%s: path too long", dir);
    return NN_OK;
}

/* One photo of class colour `base` into rgb[side, side, 3]. */
static void draw(uint8_t *rgb, int side, const uint8_t base[3], unsigned *s)
{
    int sq = side / 4;
    int x0 = (int)(synth_next(s) % (unsigned)(side - sq));
    int y0 = (int)(synth_next(s) % (unsigned)(side - sq));
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            bool in = x >= x0 && x < x0 + sq && y >= y0 && y < y0 + sq;
            for (int ch = 0; ch < 3; ch++) {
                int v = (in ? 255 : base[ch]) + (int)(synth_next(s) % 61) - 30;
                rgb[((size_t)y * side + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

enum nn_status nn_synth_photos(const char *dir, int classes, int train_per_class, int val_per_class, int side,
                               uint64_t seed)
{
    static const uint8_t colours[][3] = {{200, 40, 40}, {40, 60, 200}, {40, 180, 60}, {200, 200, 40}, {150, 40, 180}};
    const int ncolours = (int)(sizeof colours / sizeof colours[0]);
    if (!dir || !*dir) return nn_fail(NN_ERR_ARG, "nn_synth_photos: no output folder");
    if (classes < 1 || classes > 10000 || train_per_class < 1 || train_per_class > 1000000 || val_per_class < 0 ||
        val_per_class > 1000000)
        return nn_fail(NN_ERR_ARG, "%s: need 1..10000 classes, 1 or more training and 0 or more validation photos"
                       " per class (got %d, %d, %d)", dir, classes, train_per_class, val_per_class);
    if (side < 8 || side > 4096) return nn_fail(NN_ERR_ARG, "%s: photo side %d is not in 8..4096", dir, side);

    const char *splits[] = {"train", "validation"};
    const int counts[] = {train_per_class, val_per_class};
    char path[SYNTH_PATH_MAX];
    uint8_t *rgb = malloc((size_t)side * side * 3);
    if (!rgb) return nn_fail(NN_ERR_NOMEM, "%s: out of memory for a %dx%d photo", dir, side, side);
    /* Truncated to 32 bits on purpose: the sequence the tests were tuned on. */
    unsigned s = (unsigned)seed * 2654435761u + 1;
    enum nn_status st = make_dir(dir, true);
    for (int sp = 0; sp < 2 && st == NN_OK; sp++) {
        if (counts[sp] == 0) continue;
        st = join(path, "%s/%s", dir, splits[sp], 0, 0);
        if (st == NN_OK) st = make_dir(path, false);
        for (int c = 0; c < classes && st == NN_OK; c++) {
            st = join(path, "%s/%s/class%d", dir, splits[sp], c, 0);
            if (st == NN_OK) st = make_dir(path, false);
            for (int k = 0; k < counts[sp] && st == NN_OK; k++) {
                draw(rgb, side, colours[c % ncolours], &s);
                st = join(path, "%s/%s/class%d/img%03d.jpg", dir, splits[sp], c, k);
                if (st == NN_OK) st = nn_jpeg_write(path, rgb, side, side, 90);
            }
        }
    }
    free(rgb);
    return st;
}
