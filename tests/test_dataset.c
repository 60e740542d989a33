/* The converter (real photos and every bad input), the descriptor, verify
 * and the convert / dataset commands. The hymenoptera conversion runs once
 * for the whole suite. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "io/dataset.h"
#include "tests/testutil.h"

/* ---- captured log ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];

static void capture_log(enum nn_log_level level, const char *msg, void *user)
{
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s: %s\n", level == NN_LOG_WARN ? "warning" : "info", msg);
    pthread_mutex_unlock(&log_lock);
}

static void log_reset(void)
{
    log_text[0] = '\0';
    nn_log_set(capture_log, NULL, NN_LOG_INFO);
}

/* ---- the hymenoptera conversion, once ---- */

static char *hymen_dir;         /* temp dir holding the dataset in hymen_dir/ds */
static char hymen_out[4096];
static enum nn_status hymen_status;
static char hymen_error[4096];
static struct nn_convert_summary hymen_summary;
static char hymen_log[1 << 16];

static void hymen_setup(void)
{
    hymen_status = NN_ERR_INTERNAL;
    if (access(shared_path("data/hymenoptera"), F_OK) != 0) return;
    log_reset();
    hymen_dir = make_temp_dir();
    snprintf(hymen_out, sizeof hymen_out, "%s/ds", hymen_dir);
    struct nn_convert_options opt;
    nn_convert_options_default(&opt);
    opt.shards = 3;
    opt.threads = 2;
    hymen_status = nn_dataset_convert(shared_path("data/hymenoptera"), hymen_out, &opt, &hymen_summary);
    snprintf(hymen_error, sizeof hymen_error, "%s", nn_last_error());
    snprintf(hymen_log, sizeof hymen_log, "%s", log_text);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}

static void hymen_teardown(void)
{
    if (hymen_dir) rm_rf(hymen_dir);
    free(hymen_dir);
    hymen_dir = NULL;
}

/* ---- per-test temp dir and small source trees ---- */

static char *tmp;

static void setup(void)
{
    log_reset();
    tmp = make_temp_dir();
}

static void teardown(void)
{
    rm_rf(tmp);
    free(tmp);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}

static const char *at(const char *rel)
{
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, rel);
    return buf[k];
}

static void mkdirs(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    ck_assert_int_eq(run_command(cmd, NULL), 0);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_msg(fp != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* The i-th JPEG (by name) of hymenoptera/train/<cls>. */
static const char *photo(const char *cls, int i)
{
    static char names[2][16][4400];
    static int loaded[2];
    int c = !strcmp(cls, "bees");
    if (!loaded[c]) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", shared_path(c ? "data/hymenoptera/train/bees" : "data/hymenoptera/train/ants"));
        struct dirent **list;
        int n = scandir(dir, &list, NULL, alphasort);
        ck_assert_int_gt(n, 0);
        int k = 0;
        for (int j = 0; j < n; j++) {
            size_t len = strlen(list[j]->d_name);
            if (k < 16 && len > 4 && !strcmp(list[j]->d_name + len - 4, ".jpg"))
                snprintf(names[c][k++], sizeof names[c][0], "%s/%s", dir, list[j]->d_name);
            free(list[j]);
        }
        free(list);
        loaded[c] = 1;
    }
    return names[c][i];
}

static void copy_file(const char *from, const char *to)
{
    char *data;
    size_t len;
    ck_assert_int_eq(nn_read_file(from, &data, &len), NN_OK);
    write_bytes(to, data, len);
    free(data);
}

/* root/<cls>/<k>.jpg for k < n, copies of real photos. */
static void make_class(const char *root, const char *cls, int n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, cls);
    mkdirs(dir);
    for (int k = 0; k < n; k++) {
        char to[4200];
        snprintf(to, sizeof to, "%s/%02d.jpg", dir, k);
        copy_file(photo(cls, k), to);
    }
}

static enum nn_status convert(const char *src, const char *out, long val_count, uint64_t seed, int threads,
                              struct nn_convert_summary *sum)
{
    struct nn_convert_options opt;
    nn_convert_options_default(&opt);
    opt.validation_count = val_count;
    opt.seed = seed;
    opt.threads = threads;
    struct nn_convert_summary dummy;
    return nn_dataset_convert(src, out, &opt, sum ? sum : &dummy);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static char *slurp(const char *path)
{
    char *data;
    size_t len;
    ck_assert_msg(nn_read_file(path, &data, &len) == NN_OK, "cannot read %s", path);
    return data;
}

/* The skip reason recorded for `path`, or NULL. */
static const char *skip_reason(const struct nn_dataset_desc *d, const char *path)
{
    for (long i = 0; i < d->num_skipped; i++)
        if (!strcmp(d->skipped[i].path, path)) return d->skipped[i].reason;
    return NULL;
}

static int cmp_paths(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted, newline-joined source paths of one split. */
static char *split_paths(const char *dir, enum nn_split s)
{
    struct nn_dataset *ds;
    ck_assert_int_eq(nn_dataset_open(dir, &ds), NN_OK);
    long n = nn_dataset_count(ds, s);
    char **paths = calloc((size_t)n + 1, sizeof *paths);
    struct nn_record_buf buf = {0};
    size_t total = 1;
    for (long i = 0; i < n; i++) {
        struct nn_record rec;
        ck_assert_int_eq(nn_dataset_read(ds, s, i, &buf, &rec), NN_OK);
        paths[i] = strdup(rec.path);
        total += strlen(rec.path) + 1;
    }
    qsort(paths, (size_t)n, sizeof *paths, cmp_paths);
    char *out = calloc(total, 1);
    for (long i = 0; i < n; i++) {
        strcat(out, paths[i]);
        strcat(out, "\n");
        free(paths[i]);
    }
    free(paths);
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);
    return out;
}

/* ---- hymenoptera ---- */

START_TEST(hymenoptera_converts)
{
    if (!have_shared("hymenoptera_converts")) return;
    ck_assert_msg(hymen_status == NN_OK, "conversion failed: %s", hymen_error);
    ck_assert_int_eq(hymen_summary.examples[NN_SPLIT_TRAIN], 244);
    ck_assert_int_eq(hymen_summary.examples[NN_SPLIT_VALIDATION], 153);
    ck_assert_int_eq(hymen_summary.skipped, 1);
    ck_assert_int_eq(hymen_summary.files_seen, 398);
    ck_assert_int_eq(hymen_summary.num_classes, 2);
    ck_assert_ptr_nonnull(strstr(hymen_log, "warning: skipping train/ants/imageNotFound.gif: "));

    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(hymen_out, &d), NN_OK);
    ck_assert_int_eq(d.num_classes, 2);
    ck_assert_str_eq(d.classes[0], "ants");
    ck_assert_str_eq(d.classes[1], "bees");
    ck_assert_int_eq(d.split[0].count, 244);
    ck_assert_int_eq(d.split[1].count, 153);
    ck_assert_int_eq(d.split[0].per_class[0], 123);
    ck_assert_int_eq(d.split[0].per_class[1], 121);
    ck_assert_int_eq(d.split[1].per_class[0], 70);
    ck_assert_int_eq(d.split[1].per_class[1], 83);
    ck_assert_int_eq(d.split[0].num_shards, 3);
    ck_assert_int_eq(d.split[1].num_shards, 2); /* ceil(3 * 153 / 244) */
    ck_assert_str_eq(d.split[0].shards[1].file, "train-00001-of-00003.rec");
    ck_assert_str_eq(d.split[1].shards[0].file, "validation-00000-of-00002.rec");
    ck_assert_str_eq(d.split_mode, "folders");
    ck_assert_int_eq(d.num_skipped, 1);
    ck_assert_str_eq(d.skipped[0].path, "train/ants/imageNotFound.gif");
    ck_assert_ptr_nonnull(strstr(d.skipped[0].reason, "GIF"));
    ck_assert_int_gt(d.min_width, 0);
    ck_assert_int_ge(d.max_width, d.min_width);
    ck_assert(d.mean_width >= d.min_width && d.mean_width <= d.max_width);
    nn_dataset_desc_free(&d);

    char path[4200];
    snprintf(path, sizeof path, "%s/labels.txt", hymen_out);
    char *labels = slurp(path);
    ck_assert_str_eq(labels, "0:ants\n1:bees\n");
    free(labels);
    /* Nothing but the dataset: no temporary files left. */
    ck_assert_int_eq(count_entries(hymen_out), 2 + 2 * (3 + 2));

    /* Every record's label is the class folder its path names, in its split's folder. */
    struct nn_dataset *ds;
    ck_assert_int_eq(nn_dataset_open(hymen_out, &ds), NN_OK);
    struct nn_record_buf buf = {0};
    for (int s = 0; s < NN_SPLIT_COUNT; s++)
        for (long i = 0; i < nn_dataset_count(ds, s); i++) {
            struct nn_record rec;
            ck_assert_int_eq(nn_dataset_read(ds, s, i, &buf, &rec), NN_OK);
            char want[64];
            snprintf(want, sizeof want, "%s/%s/", s == NN_SPLIT_TRAIN ? "train" : "val", rec.label ? "bees" : "ants");
            ck_assert_msg(!strncmp(rec.path, want, strlen(want)), "%s has label %d", rec.path, (int)rec.label);
            ck_assert_int_gt(rec.width, 0);
        }
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);
}
END_TEST

START_TEST(hymenoptera_verifies)
{
    if (!have_shared("hymenoptera_verifies")) return;
    ck_assert_msg(hymen_status == NN_OK, "conversion failed: %s", hymen_error);
    struct nn_verify_report rep;
    ck_assert_msg(nn_dataset_verify(hymen_out, 2, NULL, NULL, &rep) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(rep.records, 397);
    ck_assert_int_eq(rep.bad, 0);

    char cmd[8400], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' dataset verify '%s'", nn_bin(), hymen_out);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "verify failed (%d): %s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "397 records verified"));
    free(out);

    snprintf(cmd, sizeof cmd, "'%s' dataset info '%s'", nn_bin(), hymen_out);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "info failed (%d): %s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "2 classes"));
    ck_assert_ptr_nonnull(strstr(out, "0  ants         123         70"));
    ck_assert_ptr_nonnull(strstr(out, "1  bees         121         83"));
    ck_assert_ptr_nonnull(strstr(out, "imageNotFound.gif"));
    free(out);
}
END_TEST

/* Offset of record `i` in a shard, from its index. */
static long index_offset(const char *idx_path, long i)
{
    char *data;
    size_t len;
    ck_assert_int_eq(nn_read_file(idx_path, &data, &len), NN_OK);
    const unsigned char *p = (const unsigned char *)data + 32 + 8 * i;
    long off = 0;
    for (int k = 7; k >= 0; k--) off = off * 256 + p[k];
    free(data);
    return off;
}

START_TEST(verify_catches_a_flipped_byte)
{
    if (!have_shared("verify_catches_a_flipped_byte")) return;
    ck_assert_msg(hymen_status == NN_OK, "conversion failed: %s", hymen_error);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", hymen_out, at("copy"));
    ck_assert_int_eq(run_command(cmd, NULL), 0);
    /* One bit, in the middle of the JPEG bytes of record 10 of the second train shard. */
    long off = index_offset(at("copy/train-00001-of-00003.idx"), 10) + 5000;
    FILE *fp = fopen(at("copy/train-00001-of-00003.rec"), "r+b");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, off, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, off, SEEK_SET);
    fputc(c ^ 0x04, fp);
    fclose(fp);

    struct nn_verify_report rep;
    ck_assert_int_eq(nn_dataset_verify(at("copy"), 2, NULL, NULL, &rep), NN_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "train-00001-of-00003.rec: record 10: payload CRC mismatch"));
    ck_assert_int_eq(rep.bad, 1);
    ck_assert_int_eq(rep.records, 397);
    ck_assert_ptr_nonnull(strstr(log_text, "train-00001-of-00003.rec: record 10"));

    char *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' dataset verify '%s'", nn_bin(), at("copy"));
    int rc = run_command(cmd, &out);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(out, "nn: error: "));
    ck_assert_ptr_nonnull(strstr(out, "train-00001-of-00003.rec: record 10: payload CRC mismatch"));
    free(out);

    /* A truncated shard is named too, and the other shards are still checked. */
    ck_assert_int_eq(truncate(at("copy/validation-00001-of-00002.rec"), 1000), 0);
    ck_assert_int_eq(nn_dataset_verify(at("copy"), 1, NULL, NULL, &rep), NN_ERR_CORRUPT);
    ck_assert_int_eq(rep.bad, 2);
    ck_assert_ptr_nonnull(strstr(log_text, "validation-00001-of-00002.rec: truncated"));
}
END_TEST

/* ---- the command line ---- */

START_TEST(cli_convert_prints_classes)
{
    if (!have_shared("cli_convert_prints_classes")) return;
    make_class(at("src"), "bees", 3);
    make_class(at("src"), "ants", 3);
    char cmd[8400], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' -o '%s' --validation-count 2 --seed 7 --threads 2 --shards 2",
             nn_bin(), at("src"), at("out"));
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "convert failed (%d): %s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "  0: ants\n  1: bees\n"));
    ck_assert_ptr_nonnull(strstr(out, "train: 4 examples in 2 shards (ants 2, bees 2)"));
    ck_assert_ptr_nonnull(strstr(out, "validation: 2 examples in 1 shard (ants 1, bees 1)"));
    free(out);

    /* Usage errors exit 2, failures exit 1 with the library's message. */
    snprintf(cmd, sizeof cmd, "'%s' convert '%s'", nn_bin(), at("src"));
    ck_assert_int_eq(run_command(cmd, &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "usage: nn convert"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' -o '%s' --validation-count 1 --validation-fraction 0.2", nn_bin(),
             at("src"), at("out2"));
    ck_assert_int_eq(run_command(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' convert '%s' -o '%s'", nn_bin(), at("missing"), at("out3"));
    ck_assert_int_eq(run_command(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "nn: error: "));
    ck_assert_ptr_nonnull(strstr(out, "missing: source directory not found"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' dataset info '%s'", nn_bin(), at("src"));
    ck_assert_int_eq(run_command(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "no dataset.json"));
    free(out);
}
END_TEST

/* ---- bad inputs ---- */

START_TEST(empty_source_is_an_error)
{
    mkdirs(at("src"));
    ck_assert_int_eq(convert(at("src"), at("out"), -1, 1, 1, NULL), NN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "no class folders"));
    ck_assert(!exists(at("out"))); /* created for the run, removed again */
}
END_TEST

START_TEST(missing_source_is_an_error)
{
    ck_assert_int_eq(convert(at("nowhere"), at("out"), -1, 1, 1, NULL), NN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "nowhere: source directory not found"));
    ck_assert(!exists(at("out")));
}
END_TEST

START_TEST(empty_class_folder_is_an_error)
{
    if (!have_shared("empty_class_folder_is_an_error")) return;
    make_class(at("src"), "ants", 2);
    mkdirs(at("src/bees"));
    write_bytes(at("src/bees/.DS_Store"), "x", 1);
    ck_assert_int_eq(convert(at("src"), at("out"), -1, 1, 1, NULL), NN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "src/bees: class folder is empty (only hidden files)"));
    ck_assert(!exists(at("out")));

    /* A folder whose files are all unusable is no better. */
    write_bytes(at("src/bees/notes.txt"), "not a photo\n", 12);
    mkdirs(at("out"));
    ck_assert_int_eq(convert(at("src"), at("out"), -1, 1, 1, NULL), NN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "bees: no usable image in this class folder (1 file skipped)"));
    ck_assert_int_eq(count_entries(at("out")), 0);
}
END_TEST

START_TEST(hidden_files_are_ignored)
{
    if (!have_shared("hidden_files_are_ignored")) return;
    make_class(at("src"), "ants", 2);
    make_class(at("src"), "bees", 2);
    write_bytes(at("src/ants/.DS_Store"), "junk", 4);
    mkdirs(at("src/bees/.thumbs"));
    copy_file(photo("bees", 5), at("src/bees/.thumbs/t.jpg"));
    mkdirs(at("src/.git"));
    struct nn_convert_summary sum;
    ck_assert_msg(convert(at("src"), at("out"), 0, 1, 1, &sum) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(sum.hidden, 3);
    ck_assert_int_eq(sum.skipped, 0);
    ck_assert_int_eq(sum.examples[NN_SPLIT_TRAIN], 4);
    ck_assert_int_eq(sum.examples[NN_SPLIT_VALIDATION], 0);
    ck_assert_ptr_nonnull(strstr(log_text, "info: ignoring hidden"));
    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(at("out"), &d), NN_OK);
    ck_assert_int_eq(d.hidden_files, 3);
    ck_assert_int_eq(d.num_classes, 2); /* .git is not a class */
    ck_assert_int_eq(d.split[NN_SPLIT_VALIDATION].num_shards, 0);
    nn_dataset_desc_free(&d);
}
END_TEST

START_TEST(unusable_files_are_skipped)
{
    if (!have_shared("unusable_files_are_skipped")) return;
    make_class(at("src"), "ants", 2);
    make_class(at("src"), "bees", 2);
    write_bytes(at("src/ants/empty.jpg"), "", 0);
    write_bytes(at("src/ants/notes.txt"), "these are ants\n", 15);
    /* A JPEG cut in half. */
    char *data;
    size_t len;
    ck_assert_int_eq(nn_read_file(photo("bees", 3), &data, &len), NN_OK);
    write_bytes(at("src/bees/cut.jpg"), data, len / 2);
    free(data);
    struct nn_convert_summary sum;
    ck_assert_msg(convert(at("src"), at("out"), 0, 1, 2, &sum) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(sum.skipped, 3);
    ck_assert_int_eq(sum.files_seen, 7);
    ck_assert_int_eq(sum.examples[NN_SPLIT_TRAIN], 4);
    ck_assert_ptr_nonnull(strstr(log_text, "warning: skipping ants/empty.jpg: empty file (0 bytes)"));
    ck_assert_ptr_nonnull(strstr(log_text, "warning: skipping ants/notes.txt: "));
    ck_assert_ptr_nonnull(strstr(log_text, "warning: skipping bees/cut.jpg: "));
    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(at("out"), &d), NN_OK);
    ck_assert_int_eq(d.num_skipped, 3);
    ck_assert_str_eq(skip_reason(&d, "ants/empty.jpg"), "empty file (0 bytes)");
    ck_assert_ptr_nonnull(skip_reason(&d, "ants/notes.txt"));
    ck_assert_ptr_nonnull(skip_reason(&d, "bees/cut.jpg"));
    nn_dataset_desc_free(&d);
    struct nn_verify_report rep;
    ck_assert_int_eq(nn_dataset_verify(at("out"), 1, NULL, NULL, &rep), NN_OK);
}
END_TEST

START_TEST(odd_names_and_symlinks)
{
    if (!have_shared("odd_names_and_symlinks")) return;
    make_class(at("src"), "ants", 2);
    make_class(at("src"), "bees", 2);
    copy_file(photo("ants", 4), at("src/ants/bad\xff name.jpg"));
    copy_file(photo("ants", 5), at("src/ants/fourmi-\xc3\xa9.jpg"));      /* valid UTF-8: kept */
    char target[4096];
    ck_assert_ptr_nonnull(realpath(photo("bees", 6), target));
    ck_assert_int_eq(symlink(target, at("src/bees/linked.jpg")), 0);             /* followed */
    ck_assert_int_eq(symlink(at("src/ants"), at("src/bees/loop")), 0);          /* not followed */
    ck_assert_int_eq(symlink(at("src/nothing.jpg"), at("src/bees/broken.jpg")), 0);
    mkdirs(at("src/bees/nested/deeper"));
    copy_file(photo("bees", 7), at("src/bees/nested/deeper/n.jpg"));         /* found recursively */
    struct nn_convert_summary sum;
    ck_assert_msg(convert(at("src"), at("out"), 0, 1, 1, &sum) == NN_OK, "%s", nn_last_error());
    ck_assert_msg(sum.examples[NN_SPLIT_TRAIN] == 2 + 1 + 2 + 1 + 1, "%s", log_text);
    ck_assert_int_eq(sum.skipped, 3);
    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(at("out"), &d), NN_OK);
    ck_assert_str_eq(skip_reason(&d, "ants/bad\\xff name.jpg"), "file name is not valid UTF-8");
    ck_assert_ptr_nonnull(strstr(skip_reason(&d, "bees/loop"), "not followed"));
    ck_assert_str_eq(skip_reason(&d, "bees/broken.jpg"), "broken symbolic link");
    ck_assert_int_eq(d.split[NN_SPLIT_TRAIN].per_class[1], 4);
    nn_dataset_desc_free(&d);
    char *paths = split_paths(at("out"), NN_SPLIT_TRAIN);
    ck_assert_ptr_nonnull(strstr(paths, "bees/nested/deeper/n.jpg\n"));
    ck_assert_ptr_nonnull(strstr(paths, "bees/linked.jpg\n"));
    ck_assert_ptr_nonnull(strstr(paths, "ants/fourmi-\xc3\xa9.jpg\n"));
    free(paths);
}
END_TEST

START_TEST(unwritable_output_is_an_error)
{
    if (!have_shared("unwritable_output_is_an_error")) return;
    make_class(at("src"), "ants", 1);
    make_class(at("src"), "bees", 1);
    /* A path below a regular file cannot be created, even by root. */
    write_bytes(at("file"), "x", 1);
    ck_assert_int_eq(convert(at("src"), at("file/out"), 0, 1, 1, NULL), NN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "file/out"));
    ck_assert_int_eq(count_entries(tmp), 2); /* src and file, nothing else */
    /* The output exists and is a file. */
    ck_assert_int_eq(convert(at("src"), at("file"), 0, 1, 1, NULL), NN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "not a directory"));
    /* Permissions bind everyone but root. */
    if (geteuid() != 0) {
        mkdirs(at("ro"));
        ck_assert_int_eq(chmod(at("ro"), 0555), 0);
        ck_assert_int_eq(convert(at("src"), at("ro"), 0, 1, 1, NULL), NN_ERR_IO);
        ck_assert_ptr_nonnull(strstr(nn_last_error(), "not writable"));
        ck_assert_int_eq(count_entries(at("ro")), 0);
        chmod(at("ro"), 0755);
    }
    /* A directory holding something else is not overwritten. */
    mkdirs(at("busy"));
    write_bytes(at("busy/thesis.tex"), "x", 1);
    ck_assert_int_eq(convert(at("src"), at("busy"), 0, 1, 1, NULL), NN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "'thesis.tex' is not part of an nn dataset"));
    ck_assert_int_eq(count_entries(at("busy")), 1);
    /* Nor may the output sit inside the source. */
    ck_assert_int_eq(convert(at("src"), at("src/ants/out"), 0, 1, 1, NULL), NN_ERR_ARG);
    ck_assert(!exists(at("src/ants/out")));
}
END_TEST

START_TEST(split_folders_must_match)
{
    if (!have_shared("split_folders_must_match")) return;
    make_class(at("src/train"), "ants", 2);
    make_class(at("src/train"), "bees", 2);
    make_class(at("src/val"), "ants", 1);
    ck_assert_int_eq(convert(at("src"), at("out"), -1, 1, 1, NULL), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "class 'bees' has a folder in train/ but not in val/"));
    make_class(at("src/val"), "bees", 1);
    /* A split source keeps its split: a count or fraction is refused. */
    ck_assert_int_eq(convert(at("src"), at("out"), 1, 1, 1, NULL), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "already split"));
    struct nn_convert_summary sum;
    ck_assert_msg(convert(at("src"), at("out"), -1, 1, 1, &sum) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(sum.examples[NN_SPLIT_TRAIN], 4);
    ck_assert_int_eq(sum.examples[NN_SPLIT_VALIDATION], 2);
    /* Both val/ and validation/: which one? */
    make_class(at("src/validation"), "ants", 1);
    make_class(at("src/validation"), "bees", 1);
    ck_assert_int_eq(convert(at("src"), at("out2"), -1, 1, 1, NULL), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "both val/ and validation/"));
}
END_TEST

START_TEST(reconverting_replaces_the_dataset)
{
    if (!have_shared("reconverting_replaces_the_dataset")) return;
    make_class(at("src"), "ants", 3);
    make_class(at("src"), "bees", 3);
    struct nn_convert_options opt;
    nn_convert_options_default(&opt);
    opt.shards = 3;
    opt.validation_count = 0;
    opt.threads = 1;
    struct nn_convert_summary sum;
    ck_assert_int_eq(nn_dataset_convert(at("src"), at("out"), &opt, &sum), NN_OK);
    ck_assert(exists(at("out/train-00002-of-00003.rec")));
    /* Leftovers of an interrupted run are not "foreign" files either. */
    write_bytes(at("out/train-00000-of-00001.rec.tmp.AbCdEf"), "partial", 7);
    opt.shards = 1;
    ck_assert_msg(nn_dataset_convert(at("src"), at("out"), &opt, &sum) == NN_OK, "%s", nn_last_error());
    ck_assert(!exists(at("out/train-00002-of-00003.rec")));
    ck_assert(!exists(at("out/train-00000-of-00003.idx")));
    ck_assert(!exists(at("out/train-00000-of-00001.rec.tmp.AbCdEf")));
    ck_assert_int_eq(count_entries(at("out")), 4);
    struct nn_verify_report rep;
    ck_assert_int_eq(nn_dataset_verify(at("out"), 1, NULL, NULL, &rep), NN_OK);
    ck_assert_int_eq(rep.records, 6);
}
END_TEST

/* A PNG is kept as the PNG it was, byte for byte, and reads back as one. */
START_TEST(png_is_stored_as_png)
{
    if (!have_shared("png_is_stored_as_png")) return;
    make_class(at("src"), "ants", 1);
    mkdirs(at("src/bees"));
    unsigned char px[12 * 10 * 3];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (unsigned char)(i * 7);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = 12;
    img.height = 10;
    img.format = PNG_FORMAT_RGB;
    ck_assert(png_image_write_to_file(&img, at("src/bees/drawing.png"), 0, px, 0, NULL));
    ck_assert_msg(convert(at("src"), at("out"), 0, 1, 1, NULL) == NN_OK, "%s", nn_last_error());
    struct nn_dataset *ds;
    ck_assert_int_eq(nn_dataset_open(at("out"), &ds), NN_OK);
    struct nn_record_buf buf = {0};
    int found = 0;
    for (long i = 0; i < nn_dataset_count(ds, NN_SPLIT_TRAIN); i++) {
        struct nn_record rec;
        ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_TRAIN, i, &buf, &rec), NN_OK);
        if (strcmp(rec.path, "bees/drawing.png")) {
            ck_assert_int_eq(rec.format, NN_RECORD_JPEG);
            continue;
        }
        found = 1;
        ck_assert_int_eq(rec.format, NN_RECORD_PNG);
        ck_assert_int_eq(rec.width, 12);
        ck_assert_int_eq(rec.height, 10);
        ck_assert_int_eq(rec.label, 1);
        char *file;
        size_t len;
        ck_assert_int_eq(nn_read_file(at("src/bees/drawing.png"), &file, &len), NN_OK);
        ck_assert_uint_eq(rec.data_len, len);
        ck_assert(memcmp(rec.data, file, len) == 0);
        free(file);
    }
    ck_assert(found);
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);
}
END_TEST

/* ---- the drawn split ---- */

START_TEST(drawn_split_is_stratified_and_seeded)
{
    if (!have_shared("drawn_split_is_stratified_and_seeded")) return;
    make_class(at("src"), "ants", 8);
    make_class(at("src"), "bees", 6);
    struct nn_convert_summary sum;
    ck_assert_msg(convert(at("src"), at("a"), 4, 5, 1, &sum) == NN_OK, "%s", nn_last_error());
    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(at("a"), &d), NN_OK);
    /* 4 of 14: ants 8 * 4/14 = 2.3, bees 1.7: two each. */
    ck_assert_int_eq(d.split[NN_SPLIT_VALIDATION].per_class[0], 2);
    ck_assert_int_eq(d.split[NN_SPLIT_VALIDATION].per_class[1], 2);
    ck_assert_int_eq(d.split[NN_SPLIT_TRAIN].per_class[0], 6);
    ck_assert_int_eq(d.split[NN_SPLIT_TRAIN].per_class[1], 4);
    ck_assert_str_eq(d.split_mode, "count");
    ck_assert_int_eq(d.validation_count, 4);
    ck_assert_uint_eq(d.seed, 5);
    nn_dataset_desc_free(&d);

    /* Same seed, other thread count: the same dataset, byte for byte. */
    ck_assert_int_eq(convert(at("src"), at("b"), 4, 5, 2, NULL), NN_OK);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cmp -s '%s/train-00000-of-00001.rec' '%s/train-00000-of-00001.rec' && "
             "cmp -s '%s/validation-00000-of-00001.rec' '%s/validation-00000-of-00001.rec'",
             at("a"), at("b"), at("a"), at("b"));
    ck_assert_int_eq(run_command(cmd, NULL), 0);
    char *va = split_paths(at("a"), NN_SPLIT_VALIDATION), *vb = split_paths(at("b"), NN_SPLIT_VALIDATION);
    ck_assert_str_eq(va, vb);

    /* Another seed draws another split. */
    ck_assert_int_eq(convert(at("src"), at("c"), 4, 6, 2, NULL), NN_OK);
    char *vc = split_paths(at("c"), NN_SPLIT_VALIDATION);
    ck_assert_str_ne(va, vc);
    free(va);
    free(vb);
    free(vc);

    /* The default is a tenth: 1 of 14 (rounded), from the larger class. */
    ck_assert_int_eq(convert(at("src"), at("d"), -1, 1, 1, &sum), NN_OK);
    ck_assert_int_eq(sum.examples[NN_SPLIT_VALIDATION], 1);
    ck_assert_int_eq(nn_dataset_desc_read(at("d"), &d), NN_OK);
    ck_assert_str_eq(d.split_mode, "fraction");
    ck_assert(d.validation_fraction == 0.1);
    ck_assert_int_eq(d.split[NN_SPLIT_VALIDATION].per_class[0], 1);
    nn_dataset_desc_free(&d);

    /* Every class keeps a training example. */
    ck_assert_int_eq(convert(at("src"), at("e"), 13, 1, 1, NULL), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "cannot hold out 13"));
    ck_assert_int_eq(convert(at("src"), at("e"), 12, 1, 1, &sum), NN_OK);
    ck_assert_int_eq(sum.examples[NN_SPLIT_TRAIN], 2);
}
END_TEST

Suite *suite_dataset(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("hymenoptera");
    tcase_add_unchecked_fixture(tc, hymen_setup, hymen_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hymenoptera_converts);
    tcase_add_test(tc, hymenoptera_verifies);
    tcase_add_test(tc, verify_catches_a_flipped_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("convert");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, cli_convert_prints_classes);
    tcase_add_test(tc, empty_source_is_an_error);
    tcase_add_test(tc, missing_source_is_an_error);
    tcase_add_test(tc, empty_class_folder_is_an_error);
    tcase_add_test(tc, hidden_files_are_ignored);
    tcase_add_test(tc, unusable_files_are_skipped);
    tcase_add_test(tc, odd_names_and_symlinks);
    tcase_add_test(tc, unwritable_output_is_an_error);
    tcase_add_test(tc, split_folders_must_match);
    tcase_add_test(tc, reconverting_replaces_the_dataset);
    tcase_add_test(tc, png_is_stored_as_png);
    tcase_add_test(tc, drawn_split_is_stratified_and_seeded);
    suite_add_tcase(s, tc);
    return s;
}
