/* io/safetensors and io/half: the Inception checkpoint in ../shared, exact
 * half-precision conversion, round trips and malformed headers. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/half.h"
#include "io/safetensors.h"
#include "tests/testutil.h"

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes an 8-byte length, the header text and data_len bytes of data. */
static void write_st(const char *path, uint64_t claimed_len, const char *header, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(claimed_len >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 37 & 0xff), fp);
    fclose(fp);
}

static void expect_open_error(const char *path, enum nn_status want, const char *what)
{
    struct nn_safetensors *st = (struct nn_safetensors *)1;
    enum nn_status s = nn_safetensors_open(path, &st);
    ck_assert_msg(s == want, "%s: got %d (%s), want %d", path, s, nn_last_error(), want);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(nn_last_error(), path) != NULL, "message '%s' does not name the file", nn_last_error());
    ck_assert_msg(strstr(nn_last_error(), what) != NULL, "message '%s' lacks '%s'", nn_last_error(), what);
}

START_TEST(reads_inception_checkpoint)
{
    if (!have_shared("reads_inception_checkpoint")) return;
    struct nn_safetensors *st;
    ck_assert_msg(nn_safetensors_open(shared_path("golden/inception_v3/model.safetensors"), &st) == NN_OK, "%s",
                  nn_last_error());
    /* 485 header keys, one of them "__metadata__". */
    ck_assert_int_eq(nn_safetensors_count(st), 484);
    ck_assert_ptr_null(nn_safetensors_find(st, "__metadata__"));
    ck_assert_ptr_null(nn_safetensors_find(st, "no.such.tensor"));
    ck_assert_ptr_null(nn_safetensors_at(st, 484));
    ck_assert_ptr_null(nn_safetensors_at(st, -1));
    for (int i = 0; i < nn_safetensors_count(st); i++) {
        const struct nn_st_tensor *t = nn_safetensors_at(st, i);
        ck_assert_int_eq(t->dtype, NN_DTYPE_F16);
        ck_assert_ptr_eq(nn_safetensors_find(st, t->name), t);
    }

    /* Expected values: numpy's float16 -> float32 of the same bytes. */
    const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
        float first[3], last;
    } want[] = {
        {"Conv2d_1a_3x3.conv.weight", 4, {32, 3, 3, 3}, {0x1.e5cp-6f, -0x1.f3p-9f, 0x1.b5cp-3f}, 0x1.894p-3f},
        {"fc.bias", 1, {10}, {0x1.01p-5f, -0x1.8cp-6f, -0x1.93p-5f}, -0x1.338p-3f},
        {"Mixed_7c.branch_pool.bn.running_var", 1, {192}, {0x1.29cp-3f, 0x1.b9cp-4f, 0x1.108p-3f}, 0x1.7ep-3f},
    };
    for (int k = 0; k < 3; k++) {
        const struct nn_st_tensor *t = nn_safetensors_find(st, want[k].name);
        ck_assert_msg(t != NULL, "%s missing", want[k].name);
        ck_assert_str_eq(t->name, want[k].name);
        ck_assert_int_eq(t->ndim, want[k].ndim);
        int64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_int_eq(t->shape[d], want[k].shape[d]);
            count *= t->shape[d];
        }
        ck_assert_int_eq(t->count, count);
        float *f = malloc((size_t)count * sizeof *f);
        nn_st_to_f32(t, f);
        for (int i = 0; i < 3; i++) ck_assert_msg(f[i] == want[k].first[i], "%s[%d] = %a", t->name, i, f[i]);
        ck_assert(f[count - 1] == want[k].last);
        free(f);
    }
    const struct nn_st_tensor *fc = nn_safetensors_find(st, "fc.weight");
    ck_assert_int_eq(fc->shape[0], 10);
    ck_assert_int_eq(fc->shape[1], 2048);
    nn_safetensors_close(st);
}
END_TEST

/* The reference: the value a binary16 pattern denotes, built with ldexp. */
static float f16_reference(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    double v;
    if (exp == 0) v = ldexp(mant, -24);
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = ldexp(1024 + mant, exp - 25);
    return (float)(sign ? -v : v);
}

static void check_f16(uint16_t h, float got, const char *path)
{
    float ref = f16_reference(h);
    if (isnan(ref)) {
        /* NaN keeps its sign and payload, and comes back quiet. */
        uint32_t want = (uint32_t)(h & 0x8000) << 16 | 0x7fc00000u | (uint32_t)(h & 1023) << 13;
        ck_assert_msg(bits_of(got) == want, "%s: f16 0x%04x -> 0x%08x, want 0x%08x", path, h, bits_of(got), want);
    } else {
        ck_assert_msg(bits_of(got) == bits_of(ref), "%s: f16 0x%04x -> %a, want %a", path, h, got, ref);
    }
}

START_TEST(f16_all_patterns)
{
    /* Stored one byte off alignment, as tensors inside a file may be. */
    unsigned char *raw = malloc(2 * 65536 + 1);
    float *out = malloc(65536 * sizeof *out);
    for (uint32_t h = 0; h < 65536; h++) {
        raw[1 + 2 * h] = (unsigned char)h;
        raw[2 + 2 * h] = (unsigned char)(h >> 8);
        check_f16((uint16_t)h, nn_f16_to_f32((uint16_t)h), "scalar");
    }
    /* Spot checks of the reference itself. */
    ck_assert(f16_reference(0x3c00) == 1.0f);
    ck_assert(f16_reference(0x0001) == 0x1p-24f);
    ck_assert(f16_reference(0x7bff) == 65504.0f);
    ck_assert(f16_reference(0xfc00) == -INFINITY);

    nn_f16_to_f32_array(raw + 1, out, 65536);
    for (uint32_t h = 0; h < 65536; h++) check_f16((uint16_t)h, out[h], "array");
    if (nn_f16_has_f16c()) {
        /* Odd lengths exercise the tail. */
        for (size_t n = 65536; n > 65520; n -= 3) {
            memset(out, 0, 65536 * sizeof *out);
            nn_f16_to_f32_avx2(raw + 1, out, n);
            for (uint32_t h = 0; h < n; h++) check_f16((uint16_t)h, out[h], "f16c");
            if (n < 65536) ck_assert(out[n] == 0.0f); /* nothing written past n */
        }
    } else {
        fprintf(stderr, "note f16_all_patterns: no F16C on this CPU (or NN_SIMD=scalar); scalar path only\n");
    }
    free(raw);
    free(out);
}
END_TEST

START_TEST(bf16_conversion)
{
    ck_assert(nn_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(nn_bf16_to_f32(0xc000) == -2.0f);
    ck_assert(nn_bf16_to_f32(0x4049) == 0x1.92p+1f);
    ck_assert(nn_bf16_to_f32(0x0001) == 0x1p-133f);
    ck_assert(nn_bf16_to_f32(0x7f80) == INFINITY);
    ck_assert(isnan(nn_bf16_to_f32(0x7fc0)));
    ck_assert_uint_eq(bits_of(nn_bf16_to_f32(0x8000)), 0x80000000u);
    unsigned char *raw = malloc(2 * 65536);
    float *out = malloc(65536 * sizeof *out);
    for (uint32_t h = 0; h < 65536; h++) {
        raw[2 * h] = (unsigned char)h;
        raw[2 * h + 1] = (unsigned char)(h >> 8);
    }
    nn_bf16_to_f32_array(raw, out, 65536);
    for (uint32_t h = 0; h < 65536; h++) ck_assert_uint_eq(bits_of(out[h]), h << 16);

    /* Through a tensor, as nn_st_to_f32 sees it. */
    struct nn_st_tensor t = {.name = "b", .dtype = NN_DTYPE_BF16, .ndim = 1, .shape = {65536}, .count = 65536,
                             .data = raw};
    memset(out, 0, 65536 * sizeof *out);
    nn_st_to_f32(&t, out);
    ck_assert(out[0x3f80] == 1.0f);
    ck_assert_uint_eq(bits_of(out[0xbeef]), 0xbeef0000u);
    free(raw);
    free(out);
}
END_TEST

START_TEST(write_then_open)
{
    char *dir = make_temp_dir();
    char *path = join(dir, "w.safetensors");
    float a[6] = {1, -2, 3.5f, 0x1p-140f, -0.0f, 1e30f}, b[24], s = 42.5f;
    for (int i = 0; i < 24; i++) b[i] = (float)i / 7.0f;
    struct nn_st_tensor in[4] = {
        {.name = "layer.weight", .dtype = NN_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "x\"q\\u\xC3\xA9", .dtype = NN_DTYPE_F32, .ndim = 4, .shape = {1, 2, 3, 4}, .count = 24, .data = b},
        {.name = "scalar", .dtype = NN_DTYPE_F32, .ndim = 0, .data = &s},
        {.name = "empty", .dtype = NN_DTYPE_F32, .ndim = 2, .shape = {0, 5}, .data = NULL},
    };
    ck_assert_msg(nn_safetensors_write(path, in, 4) == NN_OK, "%s", nn_last_error());

    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    ck_assert_uint_eq(fread(len8, 1, 8, fp), 8);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    ck_assert_uint_eq((8 + hlen) % 8, 0);

    struct nn_safetensors *st;
    ck_assert_msg(nn_safetensors_open(path, &st) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(nn_safetensors_count(st), 4);
    for (int k = 0; k < 4; k++) {
        const struct nn_st_tensor *t = nn_safetensors_at(st, k);
        ck_assert_str_eq(t->name, in[k].name);  /* the given order is kept */
        ck_assert_ptr_eq(nn_safetensors_find(st, in[k].name), t);
        ck_assert_int_eq(t->dtype, NN_DTYPE_F32);
        ck_assert_int_eq(t->ndim, in[k].ndim);
        int64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_int_eq(t->shape[d], in[k].shape[d]);
            count *= in[k].shape[d];
        }
        ck_assert_int_eq(t->count, count);
        if (count) {
            float *f = malloc((size_t)count * sizeof *f);
            nn_st_to_f32(t, f);
            ck_assert_int_eq(memcmp(f, in[k].data, (size_t)count * 4), 0);
            free(f);
        }
    }
    nn_safetensors_close(st);

    /* Refusals: duplicate names, non-F32, a count that contradicts the shape. */
    struct nn_st_tensor dup[2] = {in[0], in[0]};
    ck_assert_int_eq(nn_safetensors_write(path, dup, 2), NN_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(nn_last_error(), "layer.weight"));
    struct nn_st_tensor bad = in[0];
    bad.dtype = NN_DTYPE_F16;
    ck_assert_int_eq(nn_safetensors_write(path, &bad, 1), NN_ERR_ARG);
    bad = in[0];
    bad.count = 5;
    ck_assert_int_eq(nn_safetensors_write(path, &bad, 1), NN_ERR_ARG);
    bad = in[0];
    bad.name = "__metadata__";
    ck_assert_int_eq(nn_safetensors_write(path, &bad, 1), NN_ERR_ARG);
    /* The file written first is still there and whole. */
    ck_assert_int_eq(nn_safetensors_open(path, &st), NN_OK);
    ck_assert_int_eq(nn_safetensors_count(st), 4);
    nn_safetensors_close(st);

    /* No tensors at all is a valid file. */
    ck_assert_int_eq(nn_safetensors_write(path, NULL, 0), NN_OK);
    ck_assert_int_eq(nn_safetensors_open(path, &st), NN_OK);
    ck_assert_int_eq(nn_safetensors_count(st), 0);
    nn_safetensors_close(st);

    char *nodir = join(dir, "missing/w.safetensors");
    ck_assert_int_eq(nn_safetensors_write(nodir, in, 1), NN_ERR_IO);
    free(nodir);
    free(path);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(malformed_headers)
{
    char *dir = make_temp_dir();
    char *p = join(dir, "bad.safetensors");
    const char *ok_entry = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    write_st(p, strlen(ok_entry), ok_entry, 16);
    struct nn_safetensors *st;
    ck_assert_msg(nn_safetensors_open(p, &st) == NN_OK, "%s", nn_last_error());
    nn_safetensors_close(st);

    /* Metadata is skipped; trailing spaces are padding. */
    const char *meta = "{\"__metadata__\":{\"format\":\"pt\"},\"t\":{\"dtype\":\"F16\",\"shape\":[3],"
                       "\"data_offsets\":[0,6]}}     ";
    write_st(p, strlen(meta), meta, 6);
    ck_assert_msg(nn_safetensors_open(p, &st) == NN_OK, "%s", nn_last_error());
    ck_assert_int_eq(nn_safetensors_count(st), 1);
    ck_assert_int_eq(nn_safetensors_at(st, 0)->count, 3);
    nn_safetensors_close(st);

    write_st(p, strlen(ok_entry), ok_entry, 15);
    expect_open_error(p, NN_ERR_CORRUPT, "run past the end of the data");

    const char *far = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[4000,4016]}}";
    write_st(p, strlen(far), far, 16);
    expect_open_error(p, NN_ERR_CORRUPT, "'t'");

    const char *mismatch = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(mismatch), mismatch, 16);
    expect_open_error(p, NN_ERR_FORMAT, "needs 24 bytes");

    const char *reversed = "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}";
    write_st(p, strlen(reversed), reversed, 16);
    expect_open_error(p, NN_ERR_FORMAT, "bad data_offsets");

    const char *huge = "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                       "\"data_offsets\":[0,16]}}";
    write_st(p, strlen(huge), huge, 16);
    expect_open_error(p, NN_ERR_FORMAT, "more than");

    const char *neg = "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(neg), neg, 16);
    expect_open_error(p, NN_ERR_FORMAT, "shape[0]");

    const char *frac = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2.5],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(frac), frac, 16);
    expect_open_error(p, NN_ERR_FORMAT, "shape[1]");

    const char *f64 = "{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(f64), f64, 16);
    expect_open_error(p, NN_ERR_UNSUPPORTED, "tensor 't' has dtype F64");

    const char *unknown = "{\"w\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,16]}}";
    write_st(p, strlen(unknown), unknown, 16);
    expect_open_error(p, NN_ERR_UNSUPPORTED, "'w'");

    const char *nodtype = "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_st(p, strlen(nodtype), nodtype, 8);
    expect_open_error(p, NN_ERR_FORMAT, "dtype");

    const char *dup = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    write_st(p, strlen(dup), dup, 8);
    expect_open_error(p, NN_ERR_FORMAT, "twice");

    const char *badjson = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";
    write_st(p, strlen(badjson), badjson, 8);
    expect_open_error(p, NN_ERR_FORMAT, "bad header: JSON");

    const char *arr = "[1, 2]  ";
    write_st(p, strlen(arr), arr, 0);
    expect_open_error(p, NN_ERR_FORMAT, "'{'");

    write_st(p, 1000, ok_entry, 16);
    expect_open_error(p, NN_ERR_FORMAT, "larger than the file");
    write_st(p, UINT64_MAX, ok_entry, 16);
    expect_open_error(p, NN_ERR_FORMAT, "larger than the file");

    FILE *fp = fopen(p, "wb");
    fwrite("\x05\0\0", 1, 3, fp);
    fclose(fp);
    expect_open_error(p, NN_ERR_FORMAT, "too small");

    char *missing = join(dir, "missing.safetensors");
    expect_open_error(missing, NN_ERR_IO, "cannot open");
    free(missing);
    free(p);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* Every truncation and many random byte flips of a valid file: any status
 * is fine, a crash or a sanitizer report is not. */
START_TEST(garbage_never_crashes)
{
    char *dir = make_temp_dir();
    char *good = join(dir, "good.safetensors"), *p = join(dir, "fuzz.safetensors");
    float a[6] = {1, 2, 3, 4, 5, 6};
    struct nn_st_tensor in[2] = {
        {.name = "a", .dtype = NN_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "bb", .dtype = NN_DTYPE_F32, .ndim = 1, .shape = {6}, .data = a},
    };
    ck_assert_int_eq(nn_safetensors_write(good, in, 2), NN_OK);
    FILE *fp = fopen(good, "rb");
    unsigned char buf[512];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    ck_assert_uint_lt(len, sizeof buf);
    int ok = 0;
    for (size_t cut = 0; cut < len; cut++) {
        fp = fopen(p, "wb");
        fwrite(buf, 1, cut, fp);
        fclose(fp);
        struct nn_safetensors *st;
        ck_assert_int_ne(nn_safetensors_open(p, &st), NN_OK);
    }
    unsigned seed = 12345;
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    for (int trial = 0; trial < 3000; trial++) {
        unsigned char m[512];
        memcpy(m, buf, len);
        int flips = 1 + trial % 3;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            m[at] = (unsigned char)(seed >> 16);
        }
        /* Rewritten in place: truncating and refilling 3000 files is slow on some disks. */
        ck_assert_int_eq(pwrite(fd, m, len, 0), (ssize_t)len);
        struct nn_safetensors *st;
        if (nn_safetensors_open(p, &st) == NN_OK) {
            ok++;
            for (int i = 0; i < nn_safetensors_count(st); i++) {
                const struct nn_st_tensor *t = nn_safetensors_at(st, i);
                float *f = malloc((size_t)(t->count + 1) * sizeof *f);
                nn_st_to_f32(t, f);
                free(f);
            }
            nn_safetensors_close(st);
        }
    }
    close(fd);
    ck_assert_int_gt(ok, 0);  /* flips in the data bytes leave a valid file */
    free(good);
    free(p);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *suite_safetensors(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, reads_inception_checkpoint);
    tcase_add_test(tc, f16_all_patterns);
    tcase_add_test(tc, bf16_conversion);
    tcase_add_test(tc, write_then_open);
    tcase_add_test(tc, malformed_headers);
    tcase_add_test(tc, garbage_never_crashes);
    suite_add_tcase(s, tc);
    return s;
}
