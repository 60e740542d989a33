/* io/npy: round trips, numpy's own files from ../shared, and broken files. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "io/npy.h"
#include "tests/testutil.h"

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* A .npy v1.0 file with this header dict and `data_len` bytes of data. */
static char *raw_npy(const char *dir, const char *name, const char *dict, size_t data_len)
{
    char *path = join(dir, name);
    size_t dlen = strlen(dict);
    size_t total = (10 + dlen + 1 + 63) / 64 * 64;
    unsigned char *buf = calloc(1, total + data_len + 1);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)((total - 10) & 0xff);
    buf[9] = (unsigned char)((total - 10) >> 8);
    memcpy(buf + 10, dict, dlen);
    memset(buf + 10 + dlen, ' ', total - 10 - dlen - 1);
    buf[total - 1] = '\n';
    for (size_t i = 0; i < data_len; i++) buf[total + i] = (unsigned char)i;
    write_bytes(path, buf, total + data_len);
    free(buf);
    return path;
}

static void expect_error(const char *path, enum nn_status want, const char *what)
{
    struct nn_npy a;
    enum nn_status st = nn_npy_read(path, &a);
    ck_assert_msg(st == want, "%s: got status %d (%s), want %d", path, st, nn_last_error(), want);
    ck_assert_msg(strstr(nn_last_error(), path) != NULL, "message '%s' does not name the file", nn_last_error());
    ck_assert_msg(strstr(nn_last_error(), what) != NULL, "message '%s' lacks '%s'", nn_last_error(), what);
    ck_assert_ptr_null(a.data);
}

START_TEST(roundtrip_f32_and_i32)
{
    char *dir = make_temp_dir();
    char *path = join(dir, "a.npy");
    const int64_t shapes[][4] = {{0}, {7}, {2, 3}, {2, 3, 4, 5}, {0, 3}, {1, 1, 1, 17}};
    const int ndims[] = {0, 1, 2, 4, 2, 4};
    for (int s = 0; s < 6; s++) {
        for (int dt = 0; dt < 2; dt++) {
            enum nn_dtype dtype = dt ? NN_DTYPE_I32 : NN_DTYPE_F32;
            int64_t count = 1;
            for (int i = 0; i < ndims[s]; i++) count *= shapes[s][i];
            float *f = malloc((size_t)(count + 1) * 4);
            int32_t *iv = (int32_t *)(void *)f;
            for (int64_t i = 0; i < count; i++) {
                if (dt) iv[i] = (int32_t)(i * 7919 - 100000);
                else f[i] = (float)i * 0.37f - 3.0f;
            }
            ck_assert_int_eq(nn_npy_write(path, dtype, shapes[s], ndims[s], f), NN_OK);

            /* numpy's layout: v1.0, the preamble padded to 64 bytes with a '\n'. */
            char *raw;
            size_t len;
            ck_assert_int_eq(nn_read_file(path, &raw, &len), NN_OK);
            ck_assert_int_eq(memcmp(raw, "\x93NUMPY\x01\x00", 8), 0);
            size_t hlen = (unsigned char)raw[8] | (size_t)(unsigned char)raw[9] << 8;
            ck_assert_uint_eq((10 + hlen) % 64, 0);
            ck_assert_int_eq(raw[10 + hlen - 1], '\n');
            ck_assert_uint_eq(len, 10 + hlen + (size_t)count * 4);
            free(raw);

            struct nn_npy a;
            ck_assert_msg(nn_npy_read(path, &a) == NN_OK, "%s", nn_last_error());
            ck_assert_int_eq(a.dtype, dtype);
            ck_assert_int_eq(a.ndim, ndims[s]);
            for (int i = 0; i < ndims[s]; i++) ck_assert_int_eq(a.shape[i], shapes[s][i]);
            ck_assert_int_eq(a.count, count);
            if (count) {
                ck_assert_uint_eq((uintptr_t)a.data % 64, 0);
                ck_assert_int_eq(memcmp(a.data, f, (size_t)count * 4), 0);
            }
            nn_npy_free(&a);
            ck_assert_ptr_null(a.data);
            free(f);
        }
    }
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(write_rejects_bad_arguments)
{
    char *dir = make_temp_dir();
    char *path = join(dir, "a.npy");
    float x[4] = {0};
    int64_t neg[1] = {-1}, ok[1] = {4};
    ck_assert_int_eq(nn_npy_write(path, NN_DTYPE_F16, ok, 1, x), NN_ERR_ARG);
    ck_assert_int_eq(nn_npy_write(path, NN_DTYPE_F32, neg, 1, x), NN_ERR_ARG);
    ck_assert_int_eq(nn_npy_write(path, NN_DTYPE_F32, ok, 9, x), NN_ERR_ARG);
    ck_assert_int_eq(nn_npy_write(path, NN_DTYPE_F32, ok, 1, NULL), NN_ERR_ARG);
    char *nodir = join(dir, "missing/a.npy");
    ck_assert_int_eq(nn_npy_write(nodir, NN_DTYPE_F32, ok, 1, x), NN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), nodir));
    free(nodir);
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(reads_numpy_golden_files)
{
    if (!have_shared("reads_numpy_golden_files")) return;
    struct nn_npy a;
    ck_assert_msg(nn_npy_read(shared_path("golden/inception_v3/input.npy"), &a) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(a.dtype, NN_DTYPE_F32);
    ck_assert_int_eq(a.ndim, 4);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 3);
    ck_assert_int_eq(a.shape[2], 299);
    ck_assert_int_eq(a.shape[3], 299);
    ck_assert_int_eq(a.count, 2 * 3 * 299 * 299);
    const float *x = a.data;
    /* Values from numpy: x[0,0,0,0], x[1,2,298,298], x[0,1,150,100]. */
    ck_assert(x[0] == 0x1.8117fcp-1f);
    ck_assert(x[a.count - 1] == -0x1.1736d4p-2f);
    ck_assert(x[(0 * 3 + 1) * 299 * 299 + 150 * 299 + 100] == -0x1.1d4f44p-1f);
    nn_npy_free(&a);

    ck_assert_int_eq(nn_npy_read(shared_path("golden/inception_v3/labels.npy"), &a), NN_OK);
    ck_assert_int_eq(a.dtype, NN_DTYPE_I32);
    ck_assert_int_eq(a.ndim, 1);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(((int32_t *)a.data)[0], 6);
    ck_assert_int_eq(((int32_t *)a.data)[1], 8);
    nn_npy_free(&a);

    ck_assert_int_eq(nn_npy_read(shared_path("golden/inception_v3/logits_eval.npy"), &a), NN_OK);
    ck_assert_int_eq(a.dtype, NN_DTYPE_F32);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 10);
    ck_assert(((float *)a.data)[0] == -0x1.81838cp+0f);
    ck_assert(((float *)a.data)[19] == 0x1.c75106p-4f);
    nn_npy_free(&a);
}
END_TEST

START_TEST(broken_files)
{
    char *dir = make_temp_dir();
    char *p;

    p = join(dir, "missing.npy");
    expect_error(p, NN_ERR_IO, "cannot open");
    free(p);

    p = join(dir, "magic.npy");
    write_bytes(p, "\x89PNG\r\n\x1a\n0123456789", 18);
    expect_error(p, NN_ERR_FORMAT, "not a .npy file");
    free(p);

    p = join(dir, "empty.npy");
    write_bytes(p, "", 0);
    expect_error(p, NN_ERR_FORMAT, "not a .npy file");
    free(p);

    p = raw_npy(dir, "fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    expect_error(p, NN_ERR_UNSUPPORTED, "Fortran");
    free(p);

    p = raw_npy(dir, "bigendian.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_error(p, NN_ERR_UNSUPPORTED, "big-endian");
    free(p);

    p = raw_npy(dir, "f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 24);
    expect_error(p, NN_ERR_UNSUPPORTED, "'<f8'");
    free(p);

    p = raw_npy(dir, "pipe_i4.npy", "{'descr': '|i4', 'fortran_order': False, 'shape': (3,), }", 12);
    expect_error(p, NN_ERR_UNSUPPORTED, "'|i4'");
    free(p);

    p = raw_npy(dir, "short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23);
    expect_error(p, NN_ERR_CORRUPT, "truncated: expected 24 data bytes, file has 23");
    free(p);

    p = raw_npy(dir, "nokey.npy", "{'descr': '<f4', 'shape': (2, 3), }", 24);
    expect_error(p, NN_ERR_FORMAT, "fortran_order");
    free(p);

    p = raw_npy(dir, "garbage.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 24);
    expect_error(p, NN_ERR_FORMAT, "dimension");
    free(p);

    p = raw_npy(dir, "huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", 8);
    expect_error(p, NN_ERR_FORMAT, "too large");
    free(p);

    p = raw_npy(dir, "ninedims.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4);
    expect_error(p, NN_ERR_UNSUPPORTED, "dimensions");
    free(p);

    /* A header length that runs past the end of the file. */
    p = join(dir, "hlen.npy");
    write_bytes(p, "\x93NUMPY\x01\x00\xff\x7f{'descr'", 18);
    expect_error(p, NN_ERR_CORRUPT, "truncated");
    free(p);

    p = join(dir, "version.npy");
    write_bytes(p, "\x93NUMPY\x09\x00\x10\x00{}              \n", 26);
    expect_error(p, NN_ERR_UNSUPPORTED, "version 9.0");
    free(p);

    /* Version 2.0 (4-byte header length) is read. */
    p = join(dir, "v2.npy");
    {
        const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }";
        unsigned char buf[256] = {0};
        size_t dlen = strlen(dict), hlen = 128 - 12;
        memcpy(buf, "\x93NUMPY\x02\x00", 8);
        buf[8] = (unsigned char)hlen;
        memcpy(buf + 12, dict, dlen);
        memset(buf + 12 + dlen, ' ', hlen - dlen - 1);
        buf[127] = '\n';
        int32_t v[2] = {-5, 123456};
        memcpy(buf + 128, v, 8);
        write_bytes(p, buf, 136);
        struct nn_npy a;
        ck_assert_msg(nn_npy_read(p, &a) == NN_OK, "%s", nn_last_error());
        ck_assert_int_eq(a.count, 2);
        ck_assert_int_eq(((int32_t *)a.data)[1], 123456);
        nn_npy_free(&a);
    }
    free(p);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_npy(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_test(tc, roundtrip_f32_and_i32);
    tcase_add_test(tc, write_rejects_bad_arguments);
    tcase_add_test(tc, reads_numpy_golden_files);
    tcase_add_test(tc, broken_files);
    suite_add_tcase(s, tc);
    return s;
}
