#include "tests/train_data.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "io/synth.h"

/* The generator itself is the library's (io/synth.h), shared with `nn synth`. */
void make_color_photos(const char *src_dir, int classes, int per_class, int val_per_class, int side, unsigned seed)
{
    enum nn_status st = nn_synth_photos(src_dir, classes, per_class, val_per_class, side, seed);
    ck_assert_msg(st == NN_OK, "synth: %s", nn_last_error());
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
