/* Record shards and their indices: round trips, and every kind of damage
 * (length, payload, index, truncation) caught with the shard and record. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "io/dataset.h"
#include "io/records.h"
#include "tests/testutil.h"

#define NREC 7

static char *dir;

static void quiet_log(enum nn_log_level level, const char *msg, void *user) {}

static void setup(void)
{
    nn_log_set(quiet_log, NULL, NN_LOG_WARN);
    dir = make_temp_dir();
}

static void teardown(void)
{
    rm_rf(dir);
    free(dir);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
}

/* Record i: its image bytes are (i * 31 + k) & 0xff, 100 + 37 i of them. */
static size_t fake_len(int i) { return 100 + 37 * (size_t)i; }

static uint8_t *fake_data(int i)
{
    uint8_t *d = malloc(fake_len(i));
    for (size_t k = 0; k < fake_len(i); k++) d[k] = (uint8_t)((size_t)i * 31 + k);
    return d;
}

static void fake_path(int i, char *buf, size_t n) { snprintf(buf, n, "class_%d/photo %d é.jpg", i % 3, i); }

static const char *path_in(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* Writes records first .. first+count-1 into shard `name` and publishes it. */
static void write_shard(const char *name, int first, int count)
{
    struct nn_shard_writer *w;
    ck_assert_int_eq(nn_shard_writer_open(path_in(name), &w), NN_OK);
    for (int i = first; i < first + count; i++) {
        char p[256];
        fake_path(i, p, sizeof p);
        uint8_t *d = fake_data(i);
        struct nn_record rec = {.label = i % 3, .height = 10 + i, .width = 20 + i,
                                .format = i % 2 ? NN_RECORD_PNG : NN_RECORD_JPEG, .path = p, .data = d,
                                .data_len = fake_len(i)};
        ck_assert_int_eq(nn_shard_writer_add(w, &rec), NN_OK);
        free(d);
    }
    ck_assert_int_eq(nn_shard_writer_count(w), count);
    ck_assert_int_eq(nn_shard_writer_finish(w), NN_OK);
    ck_assert_int_eq(nn_shard_writer_publish(w), NN_OK);
    nn_shard_writer_free(w);
}

static void check_record(const struct nn_record *rec, int i)
{
    char p[256];
    fake_path(i, p, sizeof p);
    ck_assert_str_eq(rec->path, p);
    ck_assert_int_eq(rec->label, i % 3);
    ck_assert_int_eq(rec->height, 10 + i);
    ck_assert_int_eq(rec->width, 20 + i);
    ck_assert_int_eq(rec->format, i % 2 ? NN_RECORD_PNG : NN_RECORD_JPEG);
    ck_assert_uint_eq(rec->data_len, fake_len(i));
    uint8_t *d = fake_data(i);
    ck_assert(memcmp(rec->data, d, fake_len(i)) == 0);
    free(d);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Flips one bit of `path` at byte `offset`. */
static void flip_byte(const char *path, long offset)
{
    FILE *fp = fopen(path, "r+b");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, offset, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, offset, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

/* Byte offset of record i in a shard of fake records. */
static long record_offset(int i)
{
    long off = 0;
    for (int k = 0; k < i; k++) {
        char p[256];
        fake_path(k, p, sizeof p);
        off += 16 + 20 + (long)strlen(p) + (long)fake_len(k);
    }
    return off;
}

START_TEST(payload_round_trip)
{
    uint8_t *d = fake_data(3);
    struct nn_record rec = {.label = 5, .height = 480, .width = 640, .format = NN_RECORD_JPEG,
                            .path = "ants/x.jpg", .data = d, .data_len = fake_len(3)};
    size_t n = nn_record_payload_size(&rec);
    ck_assert_uint_eq(n, 20 + 10 + fake_len(3));
    uint8_t *buf = malloc(n);
    ck_assert_int_eq(nn_record_payload_encode(&rec, buf), NN_OK);
    ck_assert_int_eq(buf[0], NN_RECORD_VERSION);
    char path[NN_RECORD_MAX_PATH + 1];
    struct nn_record back;
    ck_assert_int_eq(nn_record_payload_decode(buf, n, "test", path, &back), NN_OK);
    ck_assert_str_eq(back.path, "ants/x.jpg");
    ck_assert_int_eq(back.label, 5);
    ck_assert_int_eq(back.width, 640);
    ck_assert_int_eq(back.height, 480);
    ck_assert(memcmp(back.data, d, fake_len(3)) == 0);
    /* A payload one byte short does not add up; a future version is refused. */
    ck_assert_int_eq(nn_record_payload_decode(buf, n - 1, "test", path, &back), NN_ERR_FORMAT);
    buf[0] = 9;
    ck_assert_int_eq(nn_record_payload_decode(buf, n, "rec 3", path, &back), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "rec 3: record version 9"));
    /* Writing refuses records that could not be read back. */
    rec.path = "";
    ck_assert_int_eq(nn_record_payload_encode(&rec, buf), NN_ERR_ARG);
    rec.path = "a.jpg";
    rec.label = -1;
    ck_assert_int_eq(nn_record_payload_encode(&rec, buf), NN_ERR_ARG);
    free(buf);
    free(d);
}
END_TEST

START_TEST(shard_round_trip)
{
    write_shard("train-00000-of-00001.rec", 0, NREC);
    struct nn_shard_reader *r;
    ck_assert_int_eq(nn_shard_reader_open(path_in("train-00000-of-00001.rec"), &r), NN_OK);
    ck_assert_int_eq(nn_shard_reader_count(r), NREC);
    ck_assert_str_eq(nn_shard_reader_name(r), "train-00000-of-00001.rec");
    ck_assert_int_eq(file_size(path_in("train-00000-of-00001.rec")), record_offset(NREC));
    struct nn_record_buf buf = {0};
    /* Random access in any order. */
    for (int i = NREC - 1; i >= 0; i -= 2) {
        struct nn_record rec;
        ck_assert_int_eq(nn_shard_reader_read(r, i, &buf, &rec), NN_OK);
        check_record(&rec, i);
    }
    for (int i = 0; i < NREC; i++) {
        struct nn_record rec;
        ck_assert_int_eq(nn_shard_reader_read(r, i, &buf, &rec), NN_OK);
        check_record(&rec, i);
    }
    struct nn_record rec;
    ck_assert_int_eq(nn_shard_reader_read(r, NREC, &buf, &rec), NN_ERR_ARG);
    nn_record_buf_free(&buf);
    nn_shard_reader_close(r);
}
END_TEST

START_TEST(writer_uses_temporary_names)
{
    struct nn_shard_writer *w;
    ck_assert_int_eq(nn_shard_writer_open(path_in("a.rec"), &w), NN_OK);
    uint8_t d[10] = {1, 2, 3};
    struct nn_record rec = {.label = 0, .height = 1, .width = 1, .format = NN_RECORD_JPEG, .path = "x", .data = d,
                            .data_len = sizeof d};
    ck_assert_int_eq(nn_shard_writer_add(w, &rec), NN_OK);
    ck_assert_int_eq(nn_shard_writer_finish(w), NN_OK);
    /* Finished but not published: nothing under the final names. */
    ck_assert_int_eq(access(path_in("a.rec"), F_OK), -1);
    ck_assert_int_eq(access(path_in("a.idx"), F_OK), -1);
    nn_shard_writer_free(w);
    /* An unpublished shard leaves nothing behind. */
    char *out = NULL;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_str_eq(out, "");
    free(out);
}
END_TEST

static enum nn_status read_all(const char *name, long *bad_record)
{
    struct nn_shard_reader *r;
    NN_TRY(nn_shard_reader_open(path_in(name), &r));
    struct nn_record_buf buf = {0};
    enum nn_status first = NN_OK;
    for (long i = 0; i < nn_shard_reader_count(r); i++) {
        struct nn_record rec;
        enum nn_status st = nn_shard_reader_read(r, i, &buf, &rec);
        if (st != NN_OK && first == NN_OK) {
            first = st;
            *bad_record = i;
            break;
        }
    }
    nn_record_buf_free(&buf);
    nn_shard_reader_close(r);
    return first;
}

START_TEST(crc_catches_corrupt_length)
{
    write_shard("s.rec", 0, NREC);
    flip_byte(path_in("s.rec"), record_offset(4) + 2); /* inside record 4's length */
    long bad = -1;
    ck_assert_int_eq(read_all("s.rec", &bad), NN_ERR_CORRUPT);
    ck_assert_int_eq(bad, 4);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "s.rec: record 4: length CRC mismatch"));
}
END_TEST

START_TEST(crc_catches_corrupt_payload)
{
    write_shard("s.rec", 0, NREC);
    /* A byte of the image data, then (separately) a byte of the path. */
    flip_byte(path_in("s.rec"), record_offset(5) + 12 + 20 + 30);
    long bad = -1;
    ck_assert_int_eq(read_all("s.rec", &bad), NN_ERR_CORRUPT);
    ck_assert_int_eq(bad, 5);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "s.rec: record 5: payload CRC mismatch"));

    write_shard("t.rec", 0, NREC);
    flip_byte(path_in("t.rec"), record_offset(0) + 12 + 20 + 1);
    ck_assert_int_eq(read_all("t.rec", &bad), NN_ERR_CORRUPT);
    ck_assert_int_eq(bad, 0);

    /* The stored payload CRC itself. */
    write_shard("u.rec", 0, NREC);
    flip_byte(path_in("u.rec"), record_offset(NREC) - 1);
    ck_assert_int_eq(read_all("u.rec", &bad), NN_ERR_CORRUPT);
    ck_assert_int_eq(bad, NREC - 1);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "record 6: payload CRC mismatch"));
}
END_TEST

START_TEST(truncated_shard_is_an_error)
{
    write_shard("s.rec", 0, NREC);
    ck_assert_int_eq(truncate(path_in("s.rec"), record_offset(3) + 40), 0);
    struct nn_shard_reader *r = NULL;
    ck_assert_int_eq(nn_shard_reader_open(path_in("s.rec"), &r), NN_ERR_CORRUPT);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "s.rec: truncated"));
    /* Bytes appended after the last record are caught too. */
    write_shard("t.rec", 0, 2);
    FILE *fp = fopen(path_in("t.rec"), "ab");
    fputs("junk", fp);
    fclose(fp);
    ck_assert_int_eq(nn_shard_reader_open(path_in("t.rec"), &r), NN_ERR_CORRUPT);
}
END_TEST

START_TEST(index_damage_is_caught)
{
    write_shard("s.rec", 0, NREC);
    flip_byte(path_in("s.idx"), 32 + 8 * 2 + 1); /* offset of record 2 */
    struct nn_shard_reader *r = NULL;
    ck_assert_int_eq(nn_shard_reader_open(path_in("s.rec"), &r), NN_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "s.idx: index CRC mismatch"));

    write_shard("t.rec", 0, NREC);
    ck_assert_int_eq(unlink(path_in("t.idx")), 0);
    ck_assert_int_ne(nn_shard_reader_open(path_in("t.rec"), &r), NN_OK);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "t.idx"));

    write_shard("u.rec", 0, NREC);
    flip_byte(path_in("u.idx"), 0);
    ck_assert_int_eq(nn_shard_reader_open(path_in("u.rec"), &r), NN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "not an nn record index"));
}
END_TEST

/* A two-shard split behind a hand-made descriptor: global example numbers
 * map to the right shard and record. */
START_TEST(dataset_maps_examples_to_shards)
{
    write_shard("train-00000-of-00002.rec", 0, 3);
    write_shard("train-00001-of-00002.rec", 3, NREC - 3);
    char *classes[] = {"a", "b", "c"};
    long per_class[3] = {0};
    for (int i = 0; i < NREC; i++) per_class[i % 3]++;
    long none[3] = {0};
    struct nn_dataset_shard shards[2] = {{"train-00000-of-00002.rec", 3}, {"train-00001-of-00002.rec", NREC - 3}};
    struct nn_dataset_desc d = {.version = 1, .num_classes = 3, .classes = classes, .source = "x",
                                .split_mode = "folders"};
    d.split[NN_SPLIT_TRAIN] = (struct nn_dataset_split){NREC, per_class, 2, shards};
    d.split[NN_SPLIT_VALIDATION] = (struct nn_dataset_split){0, none, 0, NULL};
    ck_assert_int_eq(nn_dataset_desc_write(dir, &d), NN_OK);

    struct nn_dataset *ds;
    ck_assert_int_eq(nn_dataset_open(dir, &ds), NN_OK);
    ck_assert_int_eq(nn_dataset_count(ds, NN_SPLIT_TRAIN), NREC);
    ck_assert_int_eq(nn_dataset_count(ds, NN_SPLIT_VALIDATION), 0);
    ck_assert_int_eq(nn_dataset_info(ds)->num_classes, 3);
    struct nn_record_buf buf = {0};
    for (int i = 0; i < NREC; i++) {
        struct nn_record rec;
        ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_TRAIN, i, &buf, &rec), NN_OK);
        check_record(&rec, i);
        const char *shard;
        long record;
        ck_assert_int_eq(nn_dataset_locate(ds, NN_SPLIT_TRAIN, i, &shard, &record), NN_OK);
        ck_assert_str_eq(shard, i < 3 ? "train-00000-of-00002.rec" : "train-00001-of-00002.rec");
        ck_assert_int_eq(record, i < 3 ? i : i - 3);
    }
    struct nn_record rec;
    ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_TRAIN, NREC, &buf, &rec), NN_ERR_ARG);
    ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_VALIDATION, 0, &buf, &rec), NN_ERR_ARG);
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);

    /* A corrupt record read through the dataset names its shard and its
     * record number within that shard. */
    flip_byte(path_in("train-00001-of-00002.rec"), record_offset(5) - record_offset(3) + 40);
    ck_assert_int_eq(nn_dataset_open(dir, &ds), NN_OK);
    ck_assert_int_eq(nn_dataset_read(ds, NN_SPLIT_TRAIN, 5, &buf, &rec), NN_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "train-00001-of-00002.rec: record 2: payload CRC mismatch"));
    nn_record_buf_free(&buf);
    nn_dataset_close(ds);

    /* The descriptor and the index must agree on a shard's count. */
    shards[1].count = NREC - 4;
    per_class[0]--;
    d.split[NN_SPLIT_TRAIN].count = NREC - 1;
    ck_assert_int_eq(nn_dataset_desc_write(dir, &d), NN_OK);
    ck_assert_int_eq(nn_dataset_open(dir, &ds), NN_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "dataset.json says 3"));

    /* No descriptor: not a (complete) dataset. */
    ck_assert_int_eq(unlink(path_in("dataset.json")), 0);
    ck_assert_int_eq(nn_dataset_open(dir, &ds), NN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "no dataset.json"));
}
END_TEST

START_TEST(split_names)
{
    enum nn_split s;
    ck_assert_int_eq(nn_split_parse("val", &s), NN_OK);
    ck_assert_int_eq(s, NN_SPLIT_VALIDATION);
    ck_assert_int_eq(nn_split_parse("train", &s), NN_OK);
    ck_assert_int_eq(s, NN_SPLIT_TRAIN);
    ck_assert_int_eq(nn_split_parse("test", &s), NN_ERR_ARG);
    ck_assert_str_eq(nn_split_name(NN_SPLIT_VALIDATION), "validation");
}
END_TEST

Suite *suite_records(void)
{
    Suite *s = suite_create("records");
    TCase *tc = tcase_create("records");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, payload_round_trip);
    tcase_add_test(tc, shard_round_trip);
    tcase_add_test(tc, writer_uses_temporary_names);
    tcase_add_test(tc, crc_catches_corrupt_length);
    tcase_add_test(tc, crc_catches_corrupt_payload);
    tcase_add_test(tc, truncated_shard_is_an_error);
    tcase_add_test(tc, index_damage_is_caught);
    tcase_add_test(tc, dataset_maps_examples_to_shards);
    tcase_add_test(tc, split_names);
    suite_add_tcase(s, tc);
    return s;
}
