/* The small base: status messages, aligned memory, CRC-32C, RNG, thread pool. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/threads.h"

START_TEST(status_message_is_kept)
{
    enum nn_status st = nn_fail(NN_ERR_FORMAT, "%s: bad magic", "x.bin");
    ck_assert_int_eq(st, NN_ERR_FORMAT);
    ck_assert_str_eq(nn_last_error(), "x.bin: bad magic");
    ck_assert_str_eq(nn_status_str(NN_ERR_CORRUPT), "corrupt data");
}
END_TEST

START_TEST(alloc_is_aligned)
{
    ck_assert_ptr_null(nn_alloc(0));
    for (size_t n = 1; n < 5000; n += 333) {
        void *p = nn_alloc(n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % NN_ALIGN, 0);
        nn_free(p);
    }
    struct nn_arena a = {0};
    size_t o1 = nn_arena_reserve(&a, 10), o2 = nn_arena_reserve(&a, 100);
    ck_assert_uint_eq(o1, 0);
    ck_assert_uint_eq(o2 % NN_ALIGN, 0);
    ck_assert_int_eq(nn_arena_commit(&a), NN_OK);
    ck_assert_uint_eq((uintptr_t)nn_arena_at(&a, o2) % NN_ALIGN, 0);
    ck_assert_int_eq(((char *)nn_arena_at(&a, o2))[99], 0);
    nn_arena_release(&a);
}
END_TEST

START_TEST(crc32c_known_values)
{
    /* The check value of CRC-32C, and one split across two calls. */
    ck_assert_uint_eq(nn_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(nn_crc32c(nn_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    unsigned char zeros[32] = {0};
    ck_assert_uint_eq(nn_crc32c(0, zeros, 32), 0x8A9136AAu);
}
END_TEST

START_TEST(rng_is_reproducible_and_uniform)
{
    struct nn_rng a, b;
    nn_rng_seed(&a, 42, 1);
    nn_rng_seed(&b, 42, 1);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(nn_rng_u32(&a), nn_rng_u32(&b));
    nn_rng_seed(&b, 42, 2);
    ck_assert_uint_ne(nn_rng_u32(&a), nn_rng_u32(&b));
    double sum = 0;
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        float u = nn_rng_uniform(&a);
        ck_assert(u >= 0.0f && u < 1.0f);
        sum += u;
        counts[nn_rng_below(&a, 7)]++;
    }
    ck_assert_double_eq_tol(sum / 70000, 0.5, 0.01);
    for (int i = 0; i < 7; i++) ck_assert_int_gt(counts[i], 9000);
}
END_TEST

static void add_index(void *ctx, long begin, long end)
{
    int *v = ctx;
    for (long i = begin; i < end; i++) v[i] += (int)i;
}

START_TEST(parallel_for_covers_range_once)
{
    for (int threads = 1; threads <= 4; threads++) {
        ck_assert_int_eq(nn_threads_set(threads), NN_OK);
        ck_assert_int_eq(nn_threads_get(), threads);
        for (long n = 0; n < 100; n += 7) {
            int v[100] = {0};
            nn_parallel_for(n, 3, add_index, v);
            for (long i = 0; i < 100; i++) ck_assert_int_eq(v[i], i < n ? (int)i : 0);
        }
    }
    nn_threads_set(0);
}
END_TEST

Suite *suite_base(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tcase_create("base");
    tcase_add_test(tc, status_message_is_kept);
    tcase_add_test(tc, alloc_is_aligned);
    tcase_add_test(tc, crc32c_known_values);
    tcase_add_test(tc, rng_is_reproducible_and_uniform);
    tcase_add_test(tc, parallel_for_covers_range_once);
    suite_add_tcase(s, tc);
    return s;
}
