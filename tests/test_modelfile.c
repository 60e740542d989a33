/* io/modelfile: round trip, zero-copy alignment, and every kind of damage. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "io/modelfile.h"
#include "tests/testutil.h"

#define META "{\"arch\": \"inception_v3\", \"classes\": [\"cat\", \"dog\"], \"note\": \"caf\xC3\xA9\"}"

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

struct fixture {
    float w[3 * 5 * 7], b[5], s, big[1000];
    struct nn_mf_tensor t[5];
};

static void make_fixture(struct fixture *f)
{
    fill_uniform(f->w, 105, -1, 1, 1);
    fill_uniform(f->b, 5, -1, 1, 2);
    fill_uniform(f->big, 1000, -3, 3, 3);
    f->s = 0.5f;
    f->t[0] = (struct nn_mf_tensor){.name = "conv.weight", .ndim = 3, .shape = {3, 5, 7}, .data = f->w};
    f->t[1] = (struct nn_mf_tensor){.name = "conv.bias", .ndim = 1, .shape = {5}, .data = f->b};
    f->t[2] = (struct nn_mf_tensor){.name = "scale", .ndim = 0, .data = &f->s};
    f->t[3] = (struct nn_mf_tensor){.name = "empty", .ndim = 2, .shape = {4, 0}, .data = NULL};
    f->t[4] = (struct nn_mf_tensor){.name = "fc.weight", .ndim = 2, .shape = {10, 100}, .data = f->big};
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *data;
    ck_assert_int_eq(nn_read_file(path, &data, len), NN_OK);
    return (unsigned char *)data;
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static void expect_open_error(const char *path, enum nn_status want, const char *what)
{
    struct nn_modelfile *mf = (struct nn_modelfile *)1;
    enum nn_status st = nn_modelfile_open(path, &mf);
    ck_assert_msg(st == want, "%s: got %d (%s), want %d (%s)", path, st, nn_last_error(), want, what);
    ck_assert_ptr_null(mf);
    ck_assert_msg(strstr(nn_last_error(), path) != NULL, "message '%s' does not name the file", nn_last_error());
    ck_assert_msg(strstr(nn_last_error(), what) != NULL, "message '%s' lacks '%s'", nn_last_error(), what);
}

static void check_matches(const struct nn_modelfile *mf, const struct fixture *f)
{
    ck_assert_str_eq(nn_modelfile_meta(mf), META);
    ck_assert_int_eq(nn_modelfile_count(mf), 5);
    for (int k = 0; k < 5; k++) {
        const struct nn_mf_tensor *t = nn_modelfile_at(mf, k);
        ck_assert_str_eq(t->name, f->t[k].name);
        ck_assert_ptr_eq(nn_modelfile_find(mf, f->t[k].name), t);
        ck_assert_int_eq(t->ndim, f->t[k].ndim);
        int64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_int_eq(t->shape[d], f->t[k].shape[d]);
            count *= t->shape[d];
        }
        /* Zero copy: the data lives in the mapping, 64-byte aligned. */
        ck_assert_uint_eq((uintptr_t)t->data % 64, 0);
        if (count) ck_assert_int_eq(memcmp(t->data, f->t[k].data, (size_t)count * 4), 0);
    }
    ck_assert_ptr_null(nn_modelfile_find(mf, "nope"));
    ck_assert_ptr_null(nn_modelfile_at(mf, 5));
}

START_TEST(roundtrip)
{
    char *dir = make_temp_dir();
    char *path = join(dir, "m.nnm");
    struct fixture f;
    make_fixture(&f);
    ck_assert_msg(nn_modelfile_write(path, META, f.t, 5) == NN_OK, "%s", nn_last_error());
    struct nn_modelfile *mf;
    ck_assert_msg(nn_modelfile_open(path, &mf) == NN_OK, "%s", nn_last_error());
    check_matches(mf, &f);
    nn_modelfile_close(mf);

    /* The header as docs/model-format.md describes it. */
    size_t len;
    unsigned char *raw = slurp(path, &len);
    ck_assert_int_eq(memcmp(raw, "NNMODEL\0", 8), 0);
    ck_assert_int_eq(raw[8], 1);
    uint64_t fsize = 0;
    for (int i = 7; i >= 0; i--) fsize = fsize << 8 | raw[16 + i];
    ck_assert_uint_eq(fsize, len);
    uint32_t hcrc = (uint32_t)raw[84] | (uint32_t)raw[85] << 8 | (uint32_t)raw[86] << 16 | (uint32_t)raw[87] << 24;
    ck_assert_uint_eq(hcrc, nn_crc32c(0, raw, 84));
    ck_assert_str_eq((const char *)raw + 88, META);
    free(raw);

    /* No tensors, default metadata. */
    ck_assert_int_eq(nn_modelfile_write(path, NULL, NULL, 0), NN_OK);
    ck_assert_int_eq(nn_modelfile_open(path, &mf), NN_OK);
    ck_assert_str_eq(nn_modelfile_meta(mf), "{}");
    ck_assert_int_eq(nn_modelfile_count(mf), 0);
    nn_modelfile_close(mf);
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(write_refuses_bad_input)
{
    char *dir = make_temp_dir();
    char *path = join(dir, "m.nnm");
    struct fixture f;
    make_fixture(&f);
    ck_assert_int_eq(nn_modelfile_write(path, "{\"a\": ", f.t, 5), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "metadata"));
    ck_assert_int_eq(nn_modelfile_write(path, "[1, 2]", f.t, 5), NN_ERR_ARG);
    struct nn_mf_tensor t[2] = {f.t[0], f.t[0]};
    ck_assert_int_eq(nn_modelfile_write(path, META, t, 2), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "conv.weight"));
    t[1].name = "other";
    t[1].shape[0] = -3;
    ck_assert_int_eq(nn_modelfile_write(path, META, t, 2), NN_ERR_ARG);
    t[1].shape[0] = 3;
    t[1].ndim = 9;
    ck_assert_int_eq(nn_modelfile_write(path, META, t, 2), NN_ERR_ARG);
    t[1].ndim = 3;
    t[1].data = NULL;
    ck_assert_int_eq(nn_modelfile_write(path, META, t, 2), NN_ERR_ARG);
    t[1].name = "";
    ck_assert_int_eq(nn_modelfile_write(path, META, t, 2), NN_ERR_ARG);
    ck_assert_int_ne(access(path, F_OK), 0);  /* nothing was written */
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

START_TEST(failed_write_keeps_old_file)
{
    char *dir = make_temp_dir();
    char *path = join(dir, "m.nnm");
    struct fixture f;
    make_fixture(&f);
    ck_assert_int_eq(nn_modelfile_write(path, META, f.t, 5), NN_OK);
    size_t len0;
    unsigned char *before = slurp(path, &len0);

    char *nodir = join(dir, "no/such/dir/m.nnm");
    ck_assert_int_eq(nn_modelfile_write(nodir, META, f.t, 5), NN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), nodir));
    free(nodir);

    /* A write that fails midway: the file-size limit makes write() fail
     * with EFBIG once the temporary file passes 4 KiB. */
    static float huge[64 * 1024];
    struct nn_mf_tensor t = {.name = "huge", .ndim = 1, .shape = {64 * 1024}, .data = huge};
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    struct rlimit small = {4096, old.rlim_max};
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    enum nn_status st = nn_modelfile_write(path, "{\"v\": 2}", &t, 1);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    ck_assert_int_eq(st, NN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), path));

    size_t len1;
    unsigned char *after = slurp(path, &len1);
    ck_assert_uint_eq(len1, len0);
    ck_assert_int_eq(memcmp(before, after, len0), 0);
    ck_assert_int_eq(count_entries(dir), 1);  /* no temporary file left behind */
    struct nn_modelfile *mf;
    ck_assert_int_eq(nn_modelfile_open(path, &mf), NN_OK);
    check_matches(mf, &f);
    nn_modelfile_close(mf);
    free(before);
    free(after);
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(corruption_is_detected)
{
    char *dir = make_temp_dir();
    char *good = join(dir, "good.nnm"), *p = join(dir, "bad.nnm");
    struct fixture f;
    make_fixture(&f);
    ck_assert_int_eq(nn_modelfile_write(good, META, f.t, 5), NN_OK);
    size_t len;
    unsigned char *raw = slurp(good, &len);
    unsigned char *m = malloc(len);

    /* Truncation at several lengths. */
    const size_t cuts[] = {4, 10, 50, 87, 88, 200, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(p, raw, cuts[i]);
        expect_open_error(p, NN_ERR_CORRUPT, "truncated");
    }
    spit(p, raw, len - 1);
    char want[128];
    snprintf(want, sizeof want, "truncated: expected %zu bytes, file has %zu", len, len - 1);
    expect_open_error(p, NN_ERR_CORRUPT, want);
    spit(p, raw, 0);
    expect_open_error(p, NN_ERR_FORMAT, "not an nn model file");

    /* One flipped byte in each tensor's data names that tensor. The file
     * offset of tensor k is data_offset + (its pointer - tensor 0's). */
    uint64_t data_off = 0;
    for (int i = 7; i >= 0; i--) data_off = data_off << 8 | raw[56 + i];
    struct nn_modelfile *mf;
    ck_assert_int_eq(nn_modelfile_open(good, &mf), NN_OK);
    for (int k = 0; k < 5; k++) {
        const struct nn_mf_tensor *t = nn_modelfile_at(mf, k);
        int64_t count = 1;
        for (int d = 0; d < t->ndim; d++) count *= t->shape[d];
        if (!count) continue;
        size_t off = (size_t)data_off + (size_t)((const char *)t->data - (const char *)nn_modelfile_at(mf, 0)->data);
        ck_assert_int_eq(memcmp(raw + off, f.t[k].data, (size_t)count * 4), 0);
        memcpy(m, raw, len);
        m[off + (size_t)count * 2] ^= 0x10;
        spit(p, m, len);
        char name[96];
        snprintf(name, sizeof name, "CRC mismatch in tensor '%s'", f.t[k].name);
        expect_open_error(p, NN_ERR_CORRUPT, name);
    }
    nn_modelfile_close(mf);

    /* A flipped byte in the metadata. */
    memcpy(m, raw, len);
    m[88 + 5] ^= 0x01;
    spit(p, m, len);
    expect_open_error(p, NN_ERR_CORRUPT, "metadata CRC mismatch");

    /* ... in the tensor table, and in the header. */
    uint64_t table_off = 0;
    for (int i = 7; i >= 0; i--) table_off = table_off << 8 | raw[40 + i];
    memcpy(m, raw, len);
    m[table_off + 6] ^= 0x01;
    spit(p, m, len);
    expect_open_error(p, NN_ERR_CORRUPT, "table CRC mismatch");
    memcpy(m, raw, len);
    m[30] ^= 0x01;
    spit(p, m, len);
    expect_open_error(p, NN_ERR_CORRUPT, "header CRC mismatch");

    /* Wrong magic; other formats. */
    memcpy(m, raw, len);
    m[0] = 'X';
    spit(p, m, len);
    expect_open_error(p, NN_ERR_FORMAT, "not an nn model file");
    spit(p, "\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0", 20);
    expect_open_error(p, NN_ERR_FORMAT, "not an nn model file");
    const char *st_file = "\x10\0\0\0\0\0\0\0{}              ";
    spit(p, st_file, 8 + 16);
    expect_open_error(p, NN_ERR_FORMAT, "not an nn model file");

    /* A newer version (this nn reads 1 and 2). */
    memcpy(m, raw, len);
    m[8] = 3;
    spit(p, m, len);
    expect_open_error(p, NN_ERR_UNSUPPORTED, "version 3 is newer than this nn supports");

    char *missing = join(dir, "missing.nnm");
    expect_open_error(missing, NN_ERR_IO, "cannot open");
    free(missing);
    free(raw);
    free(m);
    free(good);
    free(p);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* Rewrites the header CRC so damage behind it reaches the deeper checks. */
static void fix_header_crc(unsigned char *m)
{
    uint32_t c = nn_crc32c(0, m, 84);
    for (int i = 0; i < 4; i++) m[84 + i] = (unsigned char)(c >> (8 * i));
}

/* Over the table where the undamaged file (`orig`) has it: the damaged
 * offsets may point anywhere. */
static void fix_table_crc(unsigned char *m, const unsigned char *orig)
{
    uint64_t off = 0, len = 0;
    for (int i = 7; i >= 0; i--) off = off << 8 | orig[40 + i];
    for (int i = 7; i >= 0; i--) len = len << 8 | orig[48 + i];
    uint32_t c = nn_crc32c(0, m + off, (size_t)len);
    for (int i = 0; i < 4; i++) m[72 + i] = (unsigned char)(c >> (8 * i));
}

/* Random damage with every CRC recomputed, so the bounds checks themselves
 * are what stands between the file and a crash. */
START_TEST(garbage_never_crashes)
{
    char *dir = make_temp_dir();
    char *good = join(dir, "good.nnm"), *p = join(dir, "fuzz.nnm");
    struct fixture f;
    make_fixture(&f);
    ck_assert_int_eq(nn_modelfile_write(good, "{}", f.t, 3), NN_OK);
    size_t len;
    unsigned char *raw = slurp(good, &len);
    unsigned char *m = malloc(len);
    uint64_t data_off = 0;
    for (int i = 7; i >= 0; i--) data_off = data_off << 8 | raw[56 + i];
    unsigned seed = 777;
    int opened = 0;
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(m, raw, len);
        for (int k = 0; k < 1 + trial % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = 8 + (seed >> 8) % (data_off - 8);  /* header fields and table, magic kept */
            seed = seed * 1103515245u + 12345u;
            m[at] = (unsigned char)(seed >> 16);
        }
        fix_table_crc(m, raw);
        fix_header_crc(m);
        /* Rewritten in place: truncating and refilling 3000 files is slow on some disks. */
        ck_assert_int_eq(pwrite(fd, m, len, 0), (ssize_t)len);
        struct nn_modelfile *mf;
        if (nn_modelfile_open(p, &mf) == NN_OK) {
            opened++;
            for (int i = 0; i < nn_modelfile_count(mf); i++) {
                const struct nn_mf_tensor *t = nn_modelfile_at(mf, i);
                int64_t count = 1;
                for (int d = 0; d < t->ndim; d++) count *= t->shape[d];
                volatile float sum = 0;
                for (int64_t j = 0; j < count; j++) sum += ((const float *)t->data)[j];
                (void)sum; /* only read to touch every byte; clang warns "set but not used" otherwise */
            }
            nn_modelfile_close(mf);
        } else {
            ck_assert_msg(strstr(nn_last_error(), p) != NULL, "'%s' does not name the file", nn_last_error());
        }
    }
    close(fd);
    ck_assert_int_gt(opened, 0);  /* bytes in padding change nothing */
    free(raw);
    free(m);
    free(good);
    free(p);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_modelfile(void)
{
    Suite *s = suite_create("modelfile");
    TCase *tc = tcase_create("modelfile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, roundtrip);
    tcase_add_test(tc, write_refuses_bad_input);
    tcase_add_test(tc, failed_write_keeps_old_file);
    tcase_add_test(tc, corruption_is_detected);
    tcase_add_test(tc, garbage_never_crashes);
    suite_add_tcase(s, tc);
    return s;
}
