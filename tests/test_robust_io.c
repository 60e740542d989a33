/* Defects of issue 9 in what nn writes and parses, each with the case that
 * showed it: JSON output that was not JSON (NaN, names that are not
 * UTF-8), a class name refused only when saved, size arithmetic that
 * wraps (HTTP Content-Length, record index offsets), dataset.json numbers
 * cast without a check, duplicate JSON keys, and a class lookup that made
 * reading a large descriptor quadratic. */
#include <check.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/log.h"
#include "io/dataset.h"
#include "io/jpeg_write.h"
#include "io/json.h"
#include "io/records.h"
#include "nn/model.h"
#include "tests/testutil.h"
#include "tests/train_data.h"
/* The HTTP parser belongs to the nn command, not the library the tests
 * link: its one file is compiled into this test (it is pure: bytes in,
 * description out). */
#include "tools/http.c"

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    ck_assert_ptr_nonnull(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* ---- JSON output ---- */

START_TEST(json_string_output_is_always_utf8)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    /* Latin-1 e-acute, a lone continuation byte, a cut-short sequence, an
     * overlong '/', then valid two- and four-byte sequences */
    nn_strbuf_json_string(&b, "caf\xe9 \x80 \xe2\x82 \xc0\xaf ok \xc3\xa9\xf0\x9f\x98\x80");
    ck_assert(!b.failed);
    ck_assert_str_eq(b.data, "\"caf\\ufffd \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd ok \xc3\xa9\xf0\x9f\x98\x80\"");
    ck_assert(nn_utf8_valid(b.data, b.len));
    struct nn_json *j;
    ck_assert_msg(nn_json_parse(b.data, b.len, &j) == NN_OK, "%s", nn_last_error());
    nn_json_free(j);
    nn_strbuf_free(&b);

    ck_assert(nn_utf8_valid("", 0));
    ck_assert(!nn_utf8_valid("\xed\xa0\x80", 3)); /* a surrogate */
    ck_assert(!nn_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
}
END_TEST

/* nn_model_new took a name that nn_model_save refused much later. */
START_TEST(model_refuses_non_utf8_class_names_at_once)
{
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    const char *bad[] = {"ants", "b\xe9" "es"};
    struct nn_model *m = (struct nn_model *)1;
    ck_assert_int_eq(nn_model_new(&cfg, bad, 1, &m), NN_ERR_ARG);
    ck_assert_msg(strstr(nn_last_error(), "class name 1") && strstr(nn_last_error(), "UTF-8"), "%s",
                  nn_last_error());
    const char *good[] = {"ants", "b\xc3\xa9\x65s"};
    ck_assert_int_eq(nn_model_new(&cfg, good, 1, &m), NN_OK);
    ck_assert_int_eq(nn_model_set_class_names(m, bad, 2), NN_ERR_ARG);
    ck_assert_str_eq(nn_model_class_name(m, 1), "b\xc3\xa9\x65s"); /* unchanged */
    nn_model_free(m);
}
END_TEST

/* A labels file in Latin-1: nn init said nothing of the file, the model
 * refused the name later (or, before, only at save). */
START_TEST(labels_file_not_utf8_is_named)
{
    char *dir = make_temp_dir();
    char *labels = path_in(dir, "labels.txt"), *model = path_in(dir, "m.nnm");
    FILE *fp = fopen(labels, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("ants\nb\xe9" "es\n", fp);
    fclose(fp);
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' init -o '%s' --num-classes 2 --image-size 75 --labels '%s'", nn_bin(), model,
             labels);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 1 && out && strstr(out, labels) && strstr(out, "class 1") && strstr(out, "UTF-8"),
                  "rc %d: %s", rc, out ? out : "");
    ck_assert_int_ne(access(model, F_OK), 0);
    free(out);
    free(labels);
    free(model);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* nn predict --json printed "-nan" for a model of NaNs and a Latin-1 file
 * name raw: neither is JSON. */
START_TEST(predict_json_is_json_for_nan_and_latin1_names)
{
    char *dir = make_temp_dir();
    make_color_photos(dir, 1, 1, 0, 80, 21);
    char *from = path_in(dir, "train/class0/img000.jpg"), *to = path_in(dir, "caf\xe9.jpg");
    ck_assert_int_eq(rename(from, to), 0);
    struct nn_config cfg = nn_config_default(2);
    cfg.image_size = 75;
    struct nn_model *m;
    ck_assert_int_eq(nn_model_new(&cfg, NULL, 1, &m), NN_OK);
    int fc = nn_params_find(&m->params, "fc.weight");
    ck_assert_int_ge(fc, 0);
    for (size_t k = 0; k < m->params.items[fc].count; k++) nn_param_data(&m->params, fc)[k] = NAN;
    char *model = path_in(dir, "nan.nnm");
    ck_assert_int_eq(nn_model_save(m, model), NN_OK);
    nn_model_free(m);

    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' predict '%s' '%s' --json 2>/dev/null", nn_bin(), model, to);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_ptr_nonnull(out);
    struct nn_json *j;
    ck_assert_msg(nn_json_parse(out, strlen(out), &j) == NN_OK, "not JSON (%s): %s", nn_last_error(), out);
    ck_assert_ptr_nonnull(strstr(nn_json_string(nn_json_get(j, "image")), "caf\xef\xbf\xbd.jpg"));
    const struct nn_json *p = nn_json_get(j, "predictions");
    ck_assert_int_eq(nn_json_len(p), 2);
    ck_assert_int_eq(nn_json_type(nn_json_get(nn_json_at(p, 0), "probability")), NN_JSON_NULL);
    nn_json_free(j);
    free(out);
    free(model);
    free(from);
    free(to);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- JPEG encoding out of memory ---- */

static size_t vm_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (fp) {
        if (fscanf(fp, "%lu", &pages) != 1) pages = 0;
        fclose(fp);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* libjpeg's memory destination frees its first buffer when it grows it;
 * the error path then freed that first buffer again. Here the growth fails
 * (an address-space limit, in a child process) after the first buffer was
 * replaced: the child must come back with an error, not abort. */
START_TEST(jpeg_write_out_of_memory_frees_once)
{
    const char *san = getenv("NN_SAN");
    if (san && !strcmp(san, "1")) {
        /* the sanitizers reserve terabytes of address space: no limit fits */
        fprintf(stderr, "SKIP jpeg_write_out_of_memory_frees_once: needs RLIMIT_AS, which ASan cannot run under\n");
        return;
    }
    if (!getenv("NN_JPEG_OOM_CHILD")) {
        /* The limit only bites when the heap has no big free blocks left
         * by earlier tests (they would serve the growing buffer without new
         * address space): so the check runs in a fresh copy of this
         * program, this case alone. */
        char self[4096], cmd[8192], *out = NULL;
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        ck_assert_int_gt(n, 0);
        self[n] = 0;
        snprintf(cmd, sizeof cmd, "NN_JPEG_OOM_CHILD=1 CK_RUN_SUITE=robust_io CK_RUN_CASE=jpeg_oom '%s'", self);
        int rc = run_command(cmd, &out);
        ck_assert_msg(rc == 0, "rc %d: %s", rc, out ? out : "");
        free(out);
        return;
    }
    char *dir = make_temp_dir();
    char *out = path_in(dir, "noise.jpg");
    const int W = 1500, H = 1500; /* about 4.5 MB of JPEG: the buffer grows to 8 MB */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* big blocks from mmap: the address space tracks what is allocated */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        malloc_trim(0);
        uint8_t *rgb = malloc((size_t)W * H * 3);
        if (!rgb) _exit(3);
        uint32_t x = 12345;
        for (size_t k = 0; k < (size_t)W * H * 3; k++) {
            x = x * 1664525u + 1013904223u;
            rgb[k] = (uint8_t)(x >> 24);
        }
        /* noise compresses badly, so the destination grows many times; the
         * limit lets it reach a few MB, after its first buffer was replaced */
        struct rlimit rl = {.rlim_cur = vm_bytes() + (3u << 20), .rlim_max = RLIM_INFINITY};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
        enum nn_status st = nn_jpeg_write(out, rgb, W, H, 100);
        if (st == NN_ERR_NOMEM && strstr(nn_last_error(), "out of memory")) _exit(0);
        fprintf(stderr, "nn_jpeg_write: status %d: %s\n", (int)st, nn_last_error());
        _exit(5);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "the child died of signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ck_assert_msg(WEXITSTATUS(status) == 0, "the child exited %d", WEXITSTATUS(status));
    ck_assert_int_ne(access(out, F_OK), 0); /* nothing half-written */
    free(out);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- size arithmetic ---- */

/* A Content-Length past 2^64 wrapped around to a small length. */
START_TEST(http_content_length_never_wraps)
{
    struct http_response res;
    const char *wraps[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\n", /* 2^64 + 1 -> 1 */
        "HTTP/1.1 200 OK\r\nContent-Length: 20000000000000000000\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", /* INT64_MAX + 1 */
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", /* conflicting */
    };
    for (size_t i = 0; i < sizeof wraps / sizeof wraps[0]; i++)
        ck_assert_msg(http_parse_response(wraps[i], strlen(wraps[i]), &res) == HTTP_BAD, "accepted [%s] as %lld",
                      wraps[i], res.content_length);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n";
    ck_assert_int_eq(http_parse_response(ok, strlen(ok), &res), HTTP_COMPLETE);
    ck_assert(res.content_length == INT64_MAX);

    /* a request's length is held to max_body, and past SIZE_MAX too */
    struct http_request req;
    int status = 0;
    const char *why = NULL;
    const char *big = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551617\r\n\r\n";
    ck_assert_int_eq(http_parse_request(big, strlen(big), SIZE_MAX, &req, &status, &why), HTTP_BAD);
    ck_assert_int_eq(status, 413);
    const char *fine = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    ck_assert_int_eq(http_parse_request(fine, strlen(fine), 1000, &req, &status, &why), HTTP_COMPLETE);
    ck_assert_int_eq(req.content_length, 1000);
    ck_assert_int_eq(http_parse_request(fine, strlen(fine), 999, &req, &status, &why), HTTP_BAD);
    ck_assert_int_eq(status, 413);
}
END_TEST

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* An index offset near 2^64 made offsets[i] + FRAME_OVERHEAD wrap below the
 * shard's size and pass the bound check. */
START_TEST(record_index_offset_near_2_64_is_refused)
{
    char *dir = make_temp_dir();
    char *rec_path = path_in(dir, "s.rec"), *idx_path = path_in(dir, "s.idx");
    struct nn_shard_writer *w;
    ck_assert_int_eq(nn_shard_writer_open(rec_path, &w), NN_OK);
    const uint8_t img[64] = {1, 2, 3};
    for (int i = 0; i < 2; i++) {
        struct nn_record r = {.label = i, .height = 1, .width = 1, .format = NN_RECORD_JPEG, .path = "a.jpg",
                              .data = img, .data_len = sizeof img};
        ck_assert_int_eq(nn_shard_writer_add(w, &r), NN_OK);
    }
    ck_assert_int_eq(nn_shard_writer_finish(w), NN_OK);
    ck_assert_int_eq(nn_shard_writer_publish(w), NN_OK);
    nn_shard_writer_free(w);

    struct nn_shard_reader *r;
    ck_assert_int_eq(nn_shard_reader_open(rec_path, &r), NN_OK);
    nn_shard_reader_close(r);

    /* record 1 "starts" 8 bytes before 2^64, CRC made right */
    char *data;
    size_t len;
    ck_assert_int_eq(nn_read_file(idx_path, &data, &len), NN_OK);
    uint8_t *p = (uint8_t *)data;
    put_le64(p + 32 + 8, UINT64_MAX - 7);
    uint32_t crc = nn_crc32c_mask(nn_crc32c(0, p, len - 4));
    for (int k = 0; k < 4; k++) p[len - 4 + k] = (uint8_t)(crc >> (8 * k));
    FILE *fp = fopen(idx_path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fwrite(data, 1, len, fp), len);
    ck_assert_int_eq(fclose(fp), 0);
    free(data);

    r = NULL;
    ck_assert_int_eq(nn_shard_reader_open(rec_path, &r), NN_ERR_CORRUPT);
    ck_assert_msg(strstr(nn_last_error(), "record 1") && strstr(nn_last_error(), "past the shard's end"), "%s",
                  nn_last_error());
    ck_assert_ptr_null(r);
    free(rec_path);
    free(idx_path);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* The trainer wrote data[len - 1] of a metrics line before checking that
 * its buffer had not failed; a failed first allocation left data NULL. */
START_TEST(strbuf_end_object_on_a_failed_buffer)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    b.failed = true; /* what a failed first allocation leaves: no data at all */
    ck_assert(!nn_strbuf_end_object(&b));
    ck_assert_ptr_null(b.data);
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{\"a\":1,", 7);
    ck_assert(nn_strbuf_end_object(&b));
    ck_assert_str_eq(b.data, "{\"a\":1}");
    nn_strbuf_free(&b);
    nn_strbuf_append(&b, "{", 1);
    ck_assert(nn_strbuf_end_object(&b));
    ck_assert_str_eq(b.data, "{}");
    nn_strbuf_free(&b);
}
END_TEST

/* ---- dataset.json ---- */

/* Writes dir/dataset.json: `classes` classes c000000.. with one training
 * example each (no validation), in one shard, and `extra` spliced in as
 * more top-level members. */
static void write_descriptor(const char *dir, int classes, const char *extra)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_printf(&b, "{\"format\": \"nn dataset\", \"version\": 1, \"record_version\": 1, \"classes\": [");
    for (int c = 0; c < classes; c++) nn_strbuf_printf(&b, "%s\"c%06d\"", c ? "," : "", c);
    nn_strbuf_printf(&b, "], \"splits\": {\"train\": {\"examples\": %d, \"per_class\": {", classes);
    for (int c = 0; c < classes; c++) nn_strbuf_printf(&b, "%s\"c%06d\": 1", c ? "," : "", c);
    nn_strbuf_printf(&b, "}, \"shards\": [{\"file\": \"train-0.rec\", \"examples\": %d}]}, ", classes);
    nn_strbuf_printf(&b, "\"validation\": {\"examples\": 0, \"per_class\": {");
    for (int c = 0; c < classes; c++) nn_strbuf_printf(&b, "%s\"c%06d\": 0", c ? "," : "", c);
    nn_strbuf_printf(&b, "}, \"shards\": []}}%s}", extra);
    ck_assert(!b.failed);
    char *path = path_in(dir, "dataset.json");
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fwrite(b.data, 1, b.len, fp), b.len);
    ck_assert_int_eq(fclose(fp), 0);
    free(path);
    nn_strbuf_free(&b);
}

/* 80,000 classes took 33 s in nn dataset info: every per-class count was a
 * linear search of its object (n^2 / 2 string comparisons per split). Now
 * object lookups are binary searches; this runs in well under a second
 * (before: minutes under the sanitizers). */
START_TEST(dataset_desc_80k_classes_reads_in_near_linear_time)
{
    char *dir = make_temp_dir();
    write_descriptor(dir, 80000, "");
    struct nn_dataset_desc d;
    ck_assert_msg(nn_dataset_desc_read(dir, &d) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(d.num_classes, 80000);
    ck_assert_int_eq(d.split[NN_SPLIT_TRAIN].count, 80000);
    ck_assert_int_eq(d.split[NN_SPLIT_TRAIN].per_class[79999], 1);
    ck_assert_str_eq(d.classes[12345], "c012345");
    nn_dataset_desc_free(&d);

    /* the command too */
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' dataset info '%s' 2>&1 | head -c 2000", nn_bin(), dir);
    ck_assert_int_eq(run_command(cmd, &out), 0);
    ck_assert_msg(out && strstr(out, "80000"), "%s", out ? out : "");
    free(out);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* Informational numbers were cast from double to int unchecked: (int)1e300
 * is undefined (x86 gives INT_MIN). */
START_TEST(dataset_desc_odd_numbers_are_not_cast)
{
    char *dir = make_temp_dir();
    write_descriptor(dir, 2,
                     ", \"image_size\": {\"width\": {\"min\": 1e300, \"max\": -1e300, \"mean\": 1e300}, "
                     "\"height\": {\"min\": 2.5, \"max\": 99999999999, \"mean\": -4}}, "
                     "\"converter\": {\"shards\": 1e30, \"validation_fraction\": 7, \"validation_count\": -5}");
    struct nn_dataset_desc d;
    ck_assert_msg(nn_dataset_desc_read(dir, &d) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(d.min_width, 0);
    ck_assert_int_eq(d.max_width, 0);
    ck_assert(d.mean_width == 0);
    ck_assert_int_eq(d.min_height, 0);
    ck_assert_int_eq(d.max_height, 0);
    ck_assert(d.mean_height == 0);
    ck_assert_int_eq(d.shards_option, 0);
    ck_assert(d.validation_fraction == -1);
    ck_assert_int_eq(d.validation_count, -1);
    nn_dataset_desc_free(&d);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* Shard counts of up to 2^47 each, summed in a long: 131,073 of them
 * wrapped past 2^63 (undefined behaviour) around to the split's count. */
START_TEST(dataset_desc_shard_sum_cannot_wrap)
{
    char *dir = make_temp_dir();
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    const long big = 0x7fffffffffffL; /* the largest count get_long takes */
    nn_strbuf_printf(&b, "{\"format\": \"nn dataset\", \"version\": 1, \"record_version\": 1, \"classes\": "
                         "[\"a\", \"b\"], \"splits\": {\"train\": {\"examples\": 2, \"per_class\": {\"a\": 1, "
                         "\"b\": 1}, \"shards\": [");
    /* 131072 * big = 2^64 - 131072; one more shard of 131072 + 2 makes 2 mod 2^64 */
    for (int i = 0; i < 131072; i++) nn_strbuf_printf(&b, "{\"file\": \"s\", \"examples\": %ld},", big);
    nn_strbuf_printf(&b, "{\"file\": \"s\", \"examples\": 131074}]}, \"validation\": {\"examples\": 0, "
                         "\"per_class\": {\"a\": 0, \"b\": 0}, \"shards\": []}}}");
    ck_assert(!b.failed);
    char *path = path_in(dir, "dataset.json");
    FILE *fp = fopen(path, "wb");
    ck_assert_int_eq(fwrite(b.data, 1, b.len, fp), b.len);
    ck_assert_int_eq(fclose(fp), 0);
    nn_strbuf_free(&b);
    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(dir, &d), NN_ERR_FORMAT);
    ck_assert_msg(strstr(nn_last_error(), "dataset.json") && strstr(nn_last_error(), "shards hold more than"), "%s",
                  nn_last_error());
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* {"a": 1, "a": 2} was read as whichever came first. */
START_TEST(json_duplicate_keys_are_refused)
{
    struct nn_json *j = (struct nn_json *)1;
    const char *text = "{\"x\": {\"a\": 1, \"b\": 2, \"a\": 3}}";
    ck_assert_int_eq(nn_json_parse(text, strlen(text), &j), NN_ERR_FORMAT);
    ck_assert_ptr_null(j);
    ck_assert_msg(strstr(nn_last_error(), "key \"a\" appears twice") && strstr(nn_last_error(), "byte 23"), "%s",
                  nn_last_error());
    /* distinct keys in any order are all found */
    text = "{\"m\": 1, \"b\": 2, \"z\": 3, \"a\": 4, \"\": 5}";
    ck_assert_int_eq(nn_json_parse(text, strlen(text), &j), NN_OK);
    const char *keys[] = {"m", "b", "z", "a", ""};
    for (int i = 0; i < 5; i++) ck_assert_int_eq((int)nn_json_number(nn_json_get(j, keys[i])), i + 1);
    ck_assert_ptr_null(nn_json_get(j, "c"));
    ck_assert_str_eq(nn_json_key(j, 2), "z"); /* the document's order is kept */
    nn_json_free(j);

    /* and a dataset.json with a class counted twice names the file */
    char *dir = make_temp_dir();
    write_descriptor(dir, 2, ", \"hidden_files\": 0, \"hidden_files\": 3");
    struct nn_dataset_desc d;
    ck_assert_int_eq(nn_dataset_desc_read(dir, &d), NN_ERR_FORMAT);
    ck_assert_msg(strstr(nn_last_error(), "dataset.json") && strstr(nn_last_error(), "appears twice"), "%s",
                  nn_last_error());
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_robust_io(void)
{
    Suite *s = suite_create("robust_io");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, json_string_output_is_always_utf8);
    tcase_add_test(tc, model_refuses_non_utf8_class_names_at_once);
    tcase_add_test(tc, predict_json_is_json_for_nan_and_latin1_names);
    tcase_add_test(tc, labels_file_not_utf8_is_named);
    tcase_add_test(tc, http_content_length_never_wraps);
    tcase_add_test(tc, record_index_offset_near_2_64_is_refused);
    tcase_add_test(tc, strbuf_end_object_on_a_failed_buffer);
    tcase_add_test(tc, dataset_desc_80k_classes_reads_in_near_linear_time);
    tcase_add_test(tc, dataset_desc_odd_numbers_are_not_cast);
    tcase_add_test(tc, dataset_desc_shard_sum_cannot_wrap);
    tcase_add_test(tc, json_duplicate_keys_are_refused);
    suite_add_tcase(s, tc);
    /* its own case, so that it can run alone in a fresh process */
    TCase *oom = tcase_create("jpeg_oom");
    tcase_set_timeout(oom, 120);
    tcase_add_test(oom, jpeg_write_out_of_memory_frees_once);
    suite_add_tcase(s, oom);
    return s;
}
