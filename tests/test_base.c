/* The small base: status messages, aligned memory, CRC-32C, RNG, thread pool. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/sort.h"
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

/* Indices ordered by keys[index] (the context), ties by index. */
static int by_key(const void *a, const void *b, void *ctx)
{
    const int *keys = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (keys[i] != keys[j]) return keys[i] < keys[j] ? -1 : 1;
    return (i > j) - (i < j);
}

struct rec {
    char name[5];
    double weight;
};

static int by_name_then_weight(const void *a, const void *b, void *ctx)
{
    const struct rec *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    ck_assert_ptr_eq(ctx, NULL);
    return (x->weight > y->weight) - (x->weight < y->weight);
}

START_TEST(sort_passes_context)
{
    struct nn_rng rng;
    nn_rng_seed(&rng, 7, 1);
    for (size_t n = 0; n < 300; n = n * 2 + 1) {
        int keys[300], idx[300];
        for (size_t i = 0; i < n; i++) {
            keys[i] = (int)nn_rng_below(&rng, 10); /* many ties */
            idx[i] = (int)(n - 1 - i);
        }
        nn_sort(idx, n, sizeof *idx, by_key, keys);
        bool seen[300] = {false};
        for (size_t i = 0; i < n; i++) {
            ck_assert(!seen[idx[i]]);
            seen[idx[i]] = true;
            if (i) ck_assert_int_lt(by_key(&idx[i - 1], &idx[i], keys), 0);
        }
    }
    /* elements wider than a word */
    struct rec r[64];
    for (int i = 0; i < 64; i++) {
        snprintf(r[i].name, sizeof r[i].name, "%c%c", 'a' + (int)nn_rng_below(&rng, 3), 'a' + (int)nn_rng_below(&rng, 3));
        r[i].weight = nn_rng_uniform(&rng);
    }
    nn_sort(r, 64, sizeof *r, by_name_then_weight, NULL);
    for (int i = 1; i < 64; i++) ck_assert_int_le(by_name_then_weight(&r[i - 1], &r[i], NULL), 0);
}
END_TEST

/* nn_threads_set from one thread while others run parallel loops: every
 * loop must still cover its range exactly once (a loop that read the old
 * thread count could hand a chunk to a worker that no longer exists). Under
 * ThreadSanitizer (make test TSAN=1) this also checks the pool's state is
 * synchronised. */
struct loop_job {
    atomic_int *stop;
    int rounds, wrong;
};

static void *loop_main(void *arg)
{
    struct loop_job *j = arg;
    static const long sizes[] = {1, 2, 5, 17, 64};
    while (!atomic_load(j->stop) || j->rounds < 50) {
        long n = sizes[j->rounds % 5];
        int v[64] = {0};
        nn_parallel_for(n, 1, add_index, v);
        for (long i = 0; i < 64; i++) j->wrong += v[i] != (i < n ? (int)i : 0);
        j->rounds++;
    }
    return NULL;
}

START_TEST(threads_set_while_loops_run)
{
    atomic_int stop = 0;
    struct loop_job jobs[3];
    pthread_t tids[3];
    for (int t = 0; t < 3; t++) {
        jobs[t] = (struct loop_job){.stop = &stop};
        ck_assert_int_eq(pthread_create(&tids[t], NULL, loop_main, &jobs[t]), 0);
    }
    for (int r = 0; r < 40; r++) {
        ck_assert_int_eq(nn_threads_set(1 + r % 4), NN_OK);
        int got = nn_threads_get();
        ck_assert(got >= 1 && got <= 4);
        if (r % 10 == 9) nn_threads_shutdown();
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < 3; t++) {
        pthread_join(tids[t], NULL);
        ck_assert_msg(jobs[t].wrong == 0, "thread %d: %d wrong elements in %d loops", t, jobs[t].wrong, jobs[t].rounds);
    }
    nn_threads_set(0);
}
END_TEST

/* Threads logging while another swaps the callback: each message reaches a
 * callback whole, with that callback's own argument. */
static void count_log(enum nn_log_level level, const char *msg, void *user)
{
    ck_assert_int_eq(level, NN_LOG_WARN);
    ck_assert_str_eq(msg, "message 7");
    atomic_fetch_add((atomic_int *)user, 1);
}

static void *log_main(void *arg)
{
    for (int i = 0; i < 2000; i++) nn_warn("message %d", 7);
    (void)arg;
    return NULL;
}

START_TEST(log_set_while_threads_log)
{
    atomic_int a = 0, b = 0;
    nn_log_set(count_log, &a, NN_LOG_WARN);
    pthread_t tids[3];
    for (int t = 0; t < 3; t++) ck_assert_int_eq(pthread_create(&tids[t], NULL, log_main, NULL), 0);
    for (int r = 0; r < 200; r++) nn_log_set(count_log, r % 2 ? &a : &b, NN_LOG_WARN);
    for (int t = 0; t < 3; t++) pthread_join(tids[t], NULL);
    nn_log_set(NULL, NULL, NN_LOG_WARN);
    ck_assert_int_eq(atomic_load(&a) + atomic_load(&b), 3 * 2000);
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
    tcase_add_test(tc, sort_passes_context);
    suite_add_tcase(s, tc);
    /* The concurrency tests, also run under ThreadSanitizer (CK_RUN_CASE=concurrency). */
    TCase *conc = tcase_create("concurrency");
    tcase_add_test(conc, threads_set_while_loops_run);
    tcase_add_test(conc, log_set_while_threads_log);
    suite_add_tcase(s, conc);
    return s;
}
