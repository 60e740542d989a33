/* The input pipeline over a small dataset converted once for the suite:
 * labels and order, the exact eval transform (and the golden images), the
 * train transform's range and determinism, epochs, resume, and a corrupt
 * record skipped. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/json.h"
#include "io/npy.h"
#include "tests/testutil.h"
#include "train/augment.h"
#include "train/pipeline.h"

#define NUM_EXAMPLES 11   /* 5 + 1 ants, 4 + 1 bees */

static char *root;        /* temp dir: root/src (photos), root/ds (dataset) */
static char ds_dir[4200];
static char golden_rel[2][256];   /* record paths of the two golden photos */
static enum nn_status fixture_status = NN_ERR_INTERNAL;
static char fixture_error[4096];

static void quiet_log(enum nn_log_level level, const char *msg, void *user) {}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 14];

static void capture_log(enum nn_log_level level, const char *msg, void *user)
{
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
    pthread_mutex_unlock(&log_lock);
}

static int copy(const char *from, const char *to)
{
    char *data;
    size_t len;
    if (nn_read_file(from, &data, &len) != NN_OK) return -1;
    FILE *fp = fopen(to, "wb");
    int ok = fp && fwrite(data, 1, len, fp) == len;
    if (fp) fclose(fp);
    free(data);
    return ok ? 0 : -1;
}

/* The photos of meta.json plus a few others from the training folders. */
static enum nn_status make_dataset(void)
{
    char *text;
    size_t len;
    NN_TRY(nn_read_file(shared_path("golden/inception_v3/meta.json"), &text, &len));
    struct nn_json *meta;
    enum nn_status st = nn_json_parse(text, len, &meta);
    free(text);
    NN_TRY(st);
    const struct nn_json *images = nn_json_get(meta, "images");
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/src/ants' '%s/src/bees'", root, root);
    if (run_command(cmd, NULL) != 0) st = nn_fail(NN_ERR_IO, "mkdir failed");
    for (int k = 0; st == NN_OK && k < 2; k++) {
        const char *rel = nn_json_string(nn_json_at(images, (size_t)k));
        const char *base = rel ? strrchr(rel, '/') : NULL;
        if (!base) {
            st = nn_fail(NN_ERR_FORMAT, "meta.json: no image %d", k);
            break;
        }
        snprintf(golden_rel[k], sizeof golden_rel[k], "%s%s", k ? "bees" : "ants", base);
        char to[4400];
        snprintf(to, sizeof to, "%s/src/%s", root, golden_rel[k]);
        if (copy(shared_path(rel), to) != 0) st = nn_fail(NN_ERR_IO, "cannot copy %s", rel);
    }
    nn_json_free(meta);
    /* Five ants and four bees from the training set, by name. */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && for c in ants:5 bees:4; do n=${c#*:}; c=${c%%:*}; "
             "ls data/hymenoptera/train/$c/*.jpg | head -n $n | xargs -I{} cp {} '%s/src/'$c/; done",
             shared_path(""), root);
    if (st == NN_OK && run_command(cmd, NULL) != 0) st = nn_fail(NN_ERR_IO, "copying photos failed");
    NN_TRY(st);
    struct nn_convert_options opt;
    nn_convert_options_default(&opt);
    opt.validation_count = 0;
    opt.threads = 2;
    struct nn_convert_summary sum;
    snprintf(ds_dir, sizeof ds_dir, "%s/ds", root);
    char src[4300];
    snprintf(src, sizeof src, "%s/src", root);
    NN_TRY(nn_dataset_convert(src, ds_dir, &opt, &sum));
    if (sum.examples[NN_SPLIT_TRAIN] != NUM_EXAMPLES)
        return nn_fail(NN_ERR_INTERNAL, "expected %d examples, got %ld", NUM_EXAMPLES, sum.examples[0]);
    return NN_OK;
}

static void fixture_setup(void)
{
    if (access(shared_path("golden/inception_v3/meta.json"), F_OK) != 0) return;
    nn_log_set(quiet_log, NULL, NN_LOG_WARN);
    root = make_temp_dir();
    fixture_status = make_dataset();
    snprintf(fixture_error, sizeof fixture_error, "%s", nn_last_error());
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}

static void fixture_teardown(void)
{
    if (root) rm_rf(root);
    free(root);
    root = NULL;
}

static int ready(const char *name)
{
    if (!have_shared(name)) return 0;
    ck_assert_msg(fixture_status == NN_OK, "making the test dataset failed: %s", fixture_error);
    log_text[0] = '\0';
    nn_log_set(capture_log, NULL, NN_LOG_WARN);
    return 1;
}

static void restore_log(void) { nn_log_set(NULL, NULL, NN_LOG_WARN); }

static struct nn_pipeline *open_pipeline(const char *dir, const struct nn_pipeline_options *o)
{
    struct nn_pipeline *p = NULL;
    ck_assert_msg(nn_pipeline_open(dir, NN_SPLIT_TRAIN, o, &p) == NN_OK, "%s", nn_last_error());
    return p;
}

/* A copy of a batch, to compare with one from another pipeline. */
struct saved {
    int n;
    long epoch, index;
    float *images;
    int32_t labels[64];
    long examples[64];
};

static void save(struct saved *s, const struct nn_batch *b)
{
    size_t floats = (size_t)b->n * b->size * b->size * 3;
    s->n = b->n;
    s->epoch = b->epoch;
    s->index = b->index;
    s->images = malloc(floats * sizeof(float));
    memcpy(s->images, b->images, floats * sizeof(float));
    memcpy(s->labels, b->labels, (size_t)b->n * sizeof *b->labels);
    memcpy(s->examples, b->examples, (size_t)b->n * sizeof *b->examples);
}

static void assert_same(const struct saved *s, const struct nn_batch *b)
{
    ck_assert_int_eq(s->n, b->n);
    ck_assert_int_eq(s->epoch, b->epoch);
    ck_assert_int_eq(s->index, b->index);
    ck_assert(memcmp(s->labels, b->labels, (size_t)b->n * sizeof *b->labels) == 0);
    ck_assert(memcmp(s->examples, b->examples, (size_t)b->n * sizeof *b->examples) == 0);
    ck_assert(memcmp(s->images, b->images, (size_t)b->n * b->size * b->size * 3 * sizeof(float)) == 0);
}

START_TEST(batches_follow_the_shuffle_with_right_labels_and_exact_pixels)
{
    if (!ready("batches_follow_the_shuffle")) return;
    const int size = 40, batch = 4;
    struct nn_pipeline_options o;
    nn_pipeline_options_eval(&o);
    o.shuffle = true;
    o.seed = 11;
    o.batch_size = batch;
    o.image_size = size;
    o.threads = 2;
    o.epochs = 2;
    struct nn_pipeline *p = open_pipeline(ds_dir, &o);
    ck_assert_int_eq(nn_pipeline_examples(p), NUM_EXAMPLES);
    ck_assert_int_eq(nn_pipeline_batches_per_epoch(p), 3); /* 4 + 4 + 3, the last kept */

    struct nn_dataset *ds;
    ck_assert_int_eq(nn_dataset_open(ds_dir, &ds), NN_OK);
    struct nn_record_buf buf = {0};
    float *want = nn_alloc((size_t)size * size * 3 * sizeof(float));
    long order[NUM_EXAMPLES], first_order[NUM_EXAMPLES];
    for (long e = 0; e < 2; e++) {
        nn_pipeline_epoch_order(11, e, true, NUM_EXAMPLES, order);
        if (e == 0) memcpy(first_order, order, sizeof order);
        int seen[NUM_EXAMPLES] = {0};
        for (long b = 0; b < 3; b++) {
            struct nn_pipeline_position pos = nn_pipeline_position(p);
            ck_assert_int_eq(pos.epoch, e);
            ck_assert_int_eq(pos.batch, b);
            const struct nn_batch *bt;
            ck_assert_int_eq(nn_pipeline_next(p, &bt), NN_OK);
            ck_assert_ptr_nonnull(bt);
            ck_assert_int_eq(bt->epoch, e);
            ck_assert_int_eq(bt->index, b);
            ck_assert_int_eq(bt->size, size);
            ck_assert_int_eq(bt->n, b < 2 ? batch : NUM_EXAMPLES - 2 * batch);
            for (int k = 0; k < bt->n; k++) {
                long ex = bt->examples[k];
                ck_assert_int_eq(ex, order[b * batch + k]);
                seen[ex]++;
                struct nn_record rec;
                ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_TRAIN, ex, &buf, &rec), NN_OK);
                ck_assert_int_eq(bt->labels[k], rec.label);
                ck_assert_int_eq(rec.label, !strncmp(rec.path, "bees/", 5));
                struct nn_image img;
                ck_assert_int_eq(nn_image_decode(rec.data, rec.data_len, rec.path, 0, &img), NN_OK);
                ck_assert_int_eq(nn_image_eval_transform(&img, size, 0.875f, want), NN_OK);
                nn_image_free(&img);
                ck_assert_msg(memcmp(want, bt->images + (size_t)k * size * size * 3,
                                     (size_t)size * size * 3 * sizeof(float)) == 0,
                              "example %ld (%s) differs from its eval transform", ex, rec.path);
            }
        }
        for (int i = 0; i < NUM_EXAMPLES; i++) ck_assert_int_eq(seen[i], 1);
    }
    /* Two epochs asked for, two given. */
    const struct nn_batch *bt;
    ck_assert_int_eq(nn_pipeline_next(p, &bt), NN_OK);
    ck_assert_ptr_null(bt);
    ck_assert_int_eq(nn_pipeline_skipped(p), 0);
    ck_assert(memcmp(first_order, order, sizeof order) != 0);
    nn_free(want);
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);
    nn_pipeline_close(p);
}
END_TEST

START_TEST(eval_batches_match_the_golden_images)
{
    if (!ready("eval_batches_match_the_golden_images")) return;
    struct nn_pipeline_options o;
    nn_pipeline_options_eval(&o);
    o.batch_size = 6;
    o.threads = 2;
    struct nn_pipeline *p = open_pipeline(ds_dir, &o);
    struct nn_dataset *ds;
    ck_assert_int_eq(nn_dataset_open(ds_dir, &ds), NN_OK);
    struct nn_record_buf buf = {0};
    int found[2] = {0, 0};
    const struct nn_batch *b;
    const size_t plane = 299 * 299;
    while (nn_pipeline_next(p, &b) == NN_OK && b) {
        ck_assert_int_eq(b->size, 299);
        for (int k = 0; k < b->n; k++) {
            struct nn_record rec;
            ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_TRAIN, b->examples[k], &buf, &rec), NN_OK);
            for (int g = 0; g < 2; g++) {
                if (strcmp(rec.path, golden_rel[g])) continue;
                char name[64];
                snprintf(name, sizeof name, "golden/inception_v3/preprocess_%d.npy", g);
                struct nn_npy ref;
                ck_assert_int_eq(nn_npy_read(shared_path(name), &ref), NN_OK);
                ck_assert_int_eq(ref.count, 3 * (int64_t)plane);
                const float *r = ref.data, *img = b->images + (size_t)k * plane * 3;
                double worst = 0;
                for (size_t i = 0; i < plane; i++)
                    for (int c = 0; c < 3; c++) {
                        double d = fabs((double)img[i * 3 + c] - (double)r[c * plane + i]);
                        if (d > worst) worst = d;
                    }
                ck_assert_msg(worst <= 1e-4, "%s: max |diff| %g against %s", rec.path, worst, name);
                ck_assert_int_eq(b->labels[k], g);
                nn_npy_free(&ref);
                found[g]++;
            }
        }
    }
    ck_assert_int_eq(found[0], 1);
    ck_assert_int_eq(found[1], 1);
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);
    nn_pipeline_close(p);
}
END_TEST

static void train_options(struct nn_pipeline_options *o, uint64_t seed, int threads)
{
    nn_pipeline_options_default(o);
    o->seed = seed;
    o->threads = threads;
    o->batch_size = 4;
    o->image_size = 48;
}

START_TEST(train_transform_is_in_range_and_seeded)
{
    if (!ready("train_transform_is_in_range_and_seeded")) return;
    struct nn_pipeline_options o;
    train_options(&o, 3, 1);
    struct nn_pipeline *a = open_pipeline(ds_dir, &o);
    ck_assert_int_eq(nn_pipeline_batches_per_epoch(a), 2); /* drop_last: 11 = 4 + 4 + (3 dropped) */
    struct saved s[4];
    const struct nn_batch *b;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(nn_pipeline_next(a, &b), NN_OK);
        ck_assert_int_eq(b->n, 4);
        ck_assert_int_eq(b->epoch, i / 2);
        size_t n = (size_t)b->n * 48 * 48 * 3;
        float lo = 1, hi = -1;
        for (size_t j = 0; j < n; j++) {
            ck_assert(b->images[j] >= -1.0f && b->images[j] <= 1.0f);
            if (b->images[j] < lo) lo = b->images[j];
            if (b->images[j] > hi) hi = b->images[j];
        }
        ck_assert(hi - lo > 0.5f); /* real pictures, not a constant */
        save(&s[i], b);
    }
    nn_pipeline_close(a);

    /* Same seed, two threads: the same batches. */
    train_options(&o, 3, 2);
    struct nn_pipeline *c = open_pipeline(ds_dir, &o);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(nn_pipeline_next(c, &b), NN_OK);
        assert_same(&s[i], b);
    }
    nn_pipeline_close(c);

    /* Another seed: another order and other crops. */
    train_options(&o, 4, 2);
    struct nn_pipeline *d = open_pipeline(ds_dir, &o);
    ck_assert_int_eq(nn_pipeline_next(d, &b), NN_OK);
    ck_assert(memcmp(s[0].images, b->images, 4 * 48 * 48 * 3 * sizeof(float)) != 0);
    nn_pipeline_close(d);

    /* The same example in two epochs is augmented differently. */
    train_options(&o, 3, 2);
    o.shuffle = false;
    struct nn_pipeline *e = open_pipeline(ds_dir, &o);
    ck_assert_int_eq(nn_pipeline_next(e, &b), NN_OK);
    struct saved first;
    save(&first, b);
    ck_assert_int_eq(nn_pipeline_next(e, &b), NN_OK);
    ck_assert_int_eq(nn_pipeline_next(e, &b), NN_OK);
    ck_assert_int_eq(b->epoch, 1);
    ck_assert(memcmp(first.examples, b->examples, sizeof(long) * 4) == 0);
    ck_assert(memcmp(first.images, b->images, 4 * 48 * 48 * 3 * sizeof(float)) != 0);
    free(first.images);
    nn_pipeline_close(e);
    for (int i = 0; i < 4; i++) free(s[i].images);
}
END_TEST

START_TEST(epoch_orders_are_seeded_permutations)
{
    long a[100], b[100], c[100];
    nn_pipeline_epoch_order(5, 0, true, 100, a);
    nn_pipeline_epoch_order(5, 0, true, 100, b);
    nn_pipeline_epoch_order(5, 1, true, 100, c);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[c[i]]++;
        moved += c[i] != i;
    }
    for (int i = 0; i < 100; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_gt(moved, 50);
    nn_pipeline_epoch_order(5, 1, false, 100, c);
    for (int i = 0; i < 100; i++) ck_assert_int_eq(c[i], i);
}
END_TEST

START_TEST(resume_gives_the_same_batches)
{
    if (!ready("resume_gives_the_same_batches")) return;
    struct nn_pipeline_options o;
    train_options(&o, 9, 2);
    o.drop_last = false; /* 3 batches an epoch, so resuming mid-epoch is tested */
    struct nn_pipeline *a = open_pipeline(ds_dir, &o);
    const struct nn_batch *b;
    ck_assert_int_eq(nn_pipeline_next(a, &b), NN_OK);
    ck_assert_int_eq(nn_pipeline_next(a, &b), NN_OK);
    struct nn_pipeline_position pos = nn_pipeline_position(a);
    ck_assert_int_eq(pos.epoch, 0);
    ck_assert_int_eq(pos.batch, 2);
    struct saved s[4];
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(nn_pipeline_next(a, &b), NN_OK);
        save(&s[i], b);
    }
    ck_assert_int_eq(s[0].n, 3);     /* the short last batch of epoch 0 */
    ck_assert_int_eq(s[1].epoch, 1);
    nn_pipeline_close(a);

    train_options(&o, 9, 1);
    o.drop_last = false;
    o.start_epoch = pos.epoch;
    o.start_batch = pos.batch;
    struct nn_pipeline *r = open_pipeline(ds_dir, &o);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(nn_pipeline_next(r, &b), NN_OK);
        assert_same(&s[i], b);
    }
    nn_pipeline_close(r);
    for (int i = 0; i < 4; i++) free(s[i].images);
}
END_TEST

START_TEST(corrupt_record_is_skipped)
{
    if (!ready("corrupt_record_is_skipped")) return;
    char *dir = make_temp_dir(), cmd[8600];
    snprintf(cmd, sizeof cmd, "cp '%s'/* '%s'/", ds_dir, dir);
    ck_assert_int_eq(run_command(cmd, NULL), 0);
    /* Damage example 3 of the (single) train shard. */
    char idx[4300], rec[4300];
    snprintf(idx, sizeof idx, "%s/train-00000-of-00001.idx", dir);
    snprintf(rec, sizeof rec, "%s/train-00000-of-00001.rec", dir);
    char *data;
    size_t len;
    ck_assert_int_eq(nn_read_file(idx, &data, &len), NN_OK);
    long off = 0;
    for (int k = 7; k >= 0; k--) off = off * 256 + (unsigned char)data[32 + 8 * 3 + k];
    free(data);
    FILE *fp = fopen(rec, "r+b");
    fseek(fp, off + 3000, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, off + 3000, SEEK_SET);
    fputc(c ^ 1, fp);
    fclose(fp);

    struct nn_pipeline_options o;
    nn_pipeline_options_eval(&o);
    o.batch_size = NUM_EXAMPLES;
    o.image_size = 32;
    o.threads = 2;
    struct nn_pipeline *p = open_pipeline(dir, &o);
    const struct nn_batch *b;
    ck_assert_int_eq(nn_pipeline_next(p, &b), NN_OK);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->n, NUM_EXAMPLES - 1);
    for (int k = 0; k < b->n; k++) ck_assert_int_eq(b->examples[k], k < 3 ? k : k + 1);
    ck_assert_int_eq(nn_pipeline_skipped(p), 1);
    ck_assert_ptr_nonnull(strstr(log_text, "train-00000-of-00001.rec: record 3: payload CRC mismatch"));
    ck_assert_int_eq(nn_pipeline_next(p, &b), NN_OK);
    ck_assert_ptr_null(b);
    nn_pipeline_close(p);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(bad_options_are_refused)
{
    if (!ready("bad_options_are_refused")) return;
    struct nn_pipeline_options o;
    nn_pipeline_options_default(&o);
    struct nn_pipeline *p = NULL;
    o.batch_size = 0;
    ck_assert_int_eq(nn_pipeline_open(ds_dir, NN_SPLIT_TRAIN, &o, &p), NN_ERR_ARG);
    o.batch_size = NUM_EXAMPLES + 1; /* drop_last leaves no batch at all */
    ck_assert_int_eq(nn_pipeline_open(ds_dir, NN_SPLIT_TRAIN, &o, &p), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "not enough for one batch"));
    o.batch_size = 4;
    ck_assert_int_eq(nn_pipeline_open(ds_dir, NN_SPLIT_VALIDATION, &o, &p), NN_ERR_ARG); /* empty split */
    o.start_batch = 2;
    ck_assert_int_eq(nn_pipeline_open(ds_dir, NN_SPLIT_TRAIN, &o, &p), NN_ERR_ARG);
    o.start_batch = 0;
    ck_assert_int_eq(nn_pipeline_open("/nonexistent/dataset", NN_SPLIT_TRAIN, &o, &p), NN_ERR_NOT_FOUND);
    ck_assert_ptr_null(p);
}
END_TEST

/* The DCT-scaling bound: on an image whose shorter side is exactly the
 * bound, no crop the sampler can draw is smaller than the output size. */
START_TEST(train_min_side_keeps_crops_large_enough)
{
    struct nn_augment_options aug;
    nn_augment_defaults(&aug);
    int side = nn_pipeline_train_min_side(299, &aug);
    ck_assert_int_ge(side, 299);
    ck_assert_int_le(side, 1200);
    struct nn_rng rng;
    nn_rng_seed(&rng, 1, 2);
    int smallest = 1 << 30;
    const int shapes[3][2] = {{side, side}, {side, side * 2}, {side * 3 / 2, side}};
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 3000; i++) {
            struct nn_crop_box box;
            ck_assert_int_eq(nn_augment_sample_box(shapes[s][0], shapes[s][1], &aug, &rng, &box), NN_OK);
            if (box.width < smallest) smallest = box.width;
            if (box.height < smallest) smallest = box.height;
        }
    ck_assert_int_ge(smallest, 299);
    ck_assert_int_lt(smallest, 320); /* the bound is tight, not wasteful */
    aug.distort_crop = false;
    ck_assert_int_eq(nn_pipeline_train_min_side(299, &aug), 299);
}
END_TEST

Suite *suite_pipeline(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_add_unchecked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_add_checked_fixture(tc, NULL, restore_log);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, batches_follow_the_shuffle_with_right_labels_and_exact_pixels);
    tcase_add_test(tc, eval_batches_match_the_golden_images);
    tcase_add_test(tc, train_transform_is_in_range_and_seeded);
    tcase_add_test(tc, epoch_orders_are_seeded_permutations);
    tcase_add_test(tc, resume_gives_the_same_batches);
    tcase_add_test(tc, corrupt_record_is_skipped);
    tcase_add_test(tc, bad_options_are_refused);
    tcase_add_test(tc, train_min_side_keeps_crops_large_enough);
    suite_add_tcase(s, tc);
    return s;
}
