/* nn_gemm_lowp: the definition (nn_gemm_lowp_ref) against independent naive
 * loops and known values, then every kernel set this CPU can run against
 * the definition, bit for bit (NaN equals any NaN), on many shapes, with and
 * without the epilogue, and 1 against 2 threads. Kernel sets the CPU lacks
 * are skipped with a visible line naming the missing feature. Under
 * NN_SIMD=avx2 or scalar, the sets above that level skip too. */
#include <check.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp.h"
#include "ops/gemm_lowp_internal.h"
#include "tests/testutil.h"

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static bool same(float a, float b) { return bits_of(a) == bits_of(b) || (isnan(a) && isnan(b)); }

/* ---- the definition on known values ---- */

START_TEST(bf16_round_known)
{
    static const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: a tie, to even (down) */
        {0x3f818000u, 0x3f82}, /* 1 + 3 * 2^-8: a tie, to even (up) */
        {0x3f808001u, 0x3f81}, /* just above the tie */
        {0x3f807fffu, 0x3f80}, /* just below */
        {0xbf818000u, 0xbf82}, /* negative tie */
        {0x7f800000u, 0x7f80}, /* inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x00000001u, 0x0000}, /* the smallest denormal */
        {0x007fffffu, 0x0080}, /* the largest denormal rounds up to 2^-126 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x7fc00000u, 0x7fc0}, /* quiet NaN */
        {0x7f800001u, 0x7fc0}, /* signalling NaN, quieted, not rounded into inf */
        {0xffffffffu, 0xffff}, /* NaN with all bits: no carry out */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(nn_bf16_round(float_of(cases[i].in)) == cases[i].out, "bf16(%08x) = %04x, want %04x",
                      cases[i].in, nn_bf16_round(float_of(cases[i].in)), cases[i].out);
}
END_TEST

START_TEST(quantize_known)
{
    ck_assert_int_eq(nn_lowp_quantize_activation(2.5f, 1.0f), 2);  /* ties to even */
    ck_assert_int_eq(nn_lowp_quantize_activation(3.5f, 1.0f), 4);
    ck_assert_int_eq(nn_lowp_quantize_activation(1.0f, 10.0f), 10);
    ck_assert_int_eq(nn_lowp_quantize_activation(-1.0f, 1.0f), 0);
    ck_assert_int_eq(nn_lowp_quantize_activation(NAN, 1.0f), 0);
    ck_assert_int_eq(nn_lowp_quantize_activation(INFINITY, 1.0f), 255);
    ck_assert_int_eq(nn_lowp_quantize_activation(-INFINITY, 1.0f), 0);
    ck_assert_int_eq(nn_lowp_quantize_activation(254.5f, 1.0f), 254);
    ck_assert_int_eq(nn_lowp_quantize_activation(254.6f, 1.0f), 255);
    ck_assert_int_eq(nn_lowp_quantize_activation(1e30f, 1.0f), 255);

    /* Column 0: max 1 -> scale 1/127; 0.5 * 127 = 63.5 -> 64 (even); 0.25 *
     * 127 = 31.75 -> 32. Column 1 all zero: scale 1. Column 2: max 2.54. */
    const float w[3 * 3] = {0.5f, 0.0f, 2.54f, -1.0f, 0.0f, -0.01f, 0.25f, 0.0f, 1.27f};
    int8_t q[9];
    float scale[3];
    nn_lowp_quantize_weights(w, 3, 3, q, scale);
    ck_assert(scale[0] == 1.0f / 127.0f && scale[1] == 1.0f && scale[2] == 2.54f / 127.0f);
    const int8_t want[9] = {64, 0, 127, -127, 0, (int8_t)rintf(-0.01f / (2.54f / 127.0f)), 32, 0,
                            (int8_t)rintf(1.27f / (2.54f / 127.0f))};
    ck_assert_int_eq(want[5], 0);
    ck_assert_int_eq(want[8], 64);
    for (int i = 0; i < 9; i++) ck_assert_int_eq(q[i], want[i]);

    /* Deeper than the int32 sums allow: refused. */
    struct nn_lowp_weights *deep = (struct nn_lowp_weights *)1;
    ck_assert_int_eq(nn_lowp_pack_int8(q, NN_LOWP_INT8_MAX_K + 1, 1, &deep), NN_ERR_ARG);
    ck_assert_ptr_null(deep);
    ck_assert(255L * 127L * NN_LOWP_INT8_MAX_K < (1L << 31));
}
END_TEST

/* The step's flush: tininess after rounding to 24 bits (vdpbf16ps' rule,
 * measured): the sum is rounded as if the exponent were unbounded, then
 * flushed if below 2^-126. */
START_TEST(bf16_step_known)
{
    /* -2^-126 + 2^-152 rounds to -2^-126 (not tiny, kept). */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(-0x1p-126f, 0x1p-76f, 0x1p-76f)), bits_of(-0x1p-126f));
    /* + 2^-151: a tie between -2^-126 and -(2^-126 - 2^-150): to even, kept. */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(-0x1p-126f, 0x1p-75f, 0x1p-76f)), bits_of(-0x1p-126f));
    /* + 1.25 * 2^-151 rounds to -(2^-126 - 2^-150): tiny, -0, although a
     * rounding to the denormal grid would give -2^-126. */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(-0x1p-126f, 0x1.4p-75f, 0x1p-76f)), 0x80000000u);
    /* a product far below: 2^-126 - 2^-249 rounds to 2^-126 */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(0x1p-126f, -0x1p-125f, 0x1p-124f)), bits_of(0x1p-126f));
    /* -2^-126 - 2^-152 is not tiny: stays. */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(-0x1p-126f, -0x1p-76f, 0x1p-76f)), bits_of(-0x1p-126f));
    /* +0 + tiny negative product: -0 (the exact sum's sign). */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(0.0f, -0x1p-100f, 0x1p-100f)), 0x80000000u);
    /* exact cancellation: +0 */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(-6.0f, 2.0f, 3.0f)), 0u);
    /* the product is exact: 2^100 * 2^100 overflows float, -inf + it stays -inf */
    ck_assert_uint_eq(bits_of(nn_lowp_bf16_step(-INFINITY, 0x1p100f, 0x1p100f)), bits_of(-INFINITY));
    /* a product below float's range still counts: 1 + 2^-200 rounds to 1, 2^-125 - 2^-200 stays normal */
    ck_assert(nn_lowp_bf16_step(0x1p-125f, -0x1p-100f, 0x1p-100f) == 0x1p-125f);
}
END_TEST

/* ---- vdpbf16ps itself against the step, where the CPU has it ---- */

static uint32_t xorshift(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Random bf16 of a kind: 0 ordinary, 1 any exponent, 2 tiny and denormal,
 * 3 around 2^-75 (products near the float32 denormal boundary's rounding). */
static uint16_t random_bf16(uint32_t *s, int kind)
{
    uint32_t r = xorshift(s), e;
    switch (kind) {
    case 0: e = 120 + r % 10; break;
    case 1: e = (r >> 8) % 256; break;
    case 2: e = (r >> 8) % 4; break;
    default: e = 127 - 70 - (r >> 8) % 12; break;
    }
    if (e == 255) e = 254;
    return (uint16_t)(((r >> 20) & 1u) << 15 | e << 7 | (xorshift(s) & 0x7fu));
}

/* vfmadd under MXCSR FTZ + DAZ on the same pair, the AVX2 level's way; out
 * of line, through memory, so that the arithmetic stays between the MXCSR
 * writes. */
__attribute__((target("avx2,fma"), noinline)) static void fma_pair(const float *in, float *out)
{
    __m128 r = _mm_fmadd_ss(_mm_set_ss(in[1]), _mm_set_ss(in[2]), _mm_set_ss(in[0]));
    r = _mm_fmadd_ss(_mm_set_ss(in[3]), _mm_set_ss(in[4]), r);
    *out = _mm_cvtss_f32(r);
}

static float fma_ftz_pair(float acc, float x1, float y1, float x0, float y0)
{
    const float in[5] = {acc, x1, y1, x0, y0};
    float out;
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
    fma_pair(in, &out);
    _mm_setcsr(csr);
    return out;
}

__attribute__((target("avx512f,avx512bf16"))) static long dpbf16_mismatches(uint32_t seed, long *lanes, long *fma_bad)
{
    uint32_t s = seed;
    long bad = 0;
    for (int it = 0; it < 80000; it++) {
        const int kind = it % 4;
        uint16_t a[32], b[32];
        float acc[16], out[16];
        for (int i = 0; i < 32; i++) {
            a[i] = random_bf16(&s, kind);
            b[i] = random_bf16(&s, kind);
        }
        for (int i = 0; i < 16; i++) {
            /* cancel one of the products exactly, or a random start */
            float p0 = nn_bf16_value(a[2 * i]) * nn_bf16_value(b[2 * i]);
            float p1 = nn_bf16_value(a[2 * i + 1]) * nn_bf16_value(b[2 * i + 1]);
            uint32_t r = xorshift(&s) % 4;
            acc[i] = r == 0 ? -p0 : r == 1 ? -p1 : r == 2 ? nn_bf16_value(random_bf16(&s, kind)) : float_of(xorshift(&s) % 0x01000000u);
            /* just above or below +-2^-126 (a few steps of 2^-149) */
            if (kind == 3 && r >= 2) acc[i] = float_of((xorshift(&s) & 0x80000000u) | (0x00800000u + xorshift(&s) % 8));
            if (!isfinite(acc[i]) || (bits_of(acc[i]) & 0x7f800000u) == 0) acc[i] = 0.0f;
        }
        __m512bh va, vb;
        memcpy(&va, a, sizeof va);
        memcpy(&vb, b, sizeof vb);
        _mm512_storeu_ps(out, _mm512_dpbf16_ps(_mm512_loadu_ps(acc), va, vb));
        for (int i = 0; i < 16; i++) {
            float x1 = nn_bf16_value(nn_lowp_bf16_daz(a[2 * i + 1])), y1 = nn_bf16_value(nn_lowp_bf16_daz(b[2 * i + 1]));
            float x0 = nn_bf16_value(nn_lowp_bf16_daz(a[2 * i])), y0 = nn_bf16_value(nn_lowp_bf16_daz(b[2 * i]));
            float want = nn_lowp_bf16_step(nn_lowp_bf16_step(acc[i], x1, y1), x0, y0);
            if (!same(fma_ftz_pair(acc[i], x1, y1, x0, y0), want)) (*fma_bad)++;
            if (!same(out[i], want)) {
                if (bad < 5)
                    fprintf(stderr, "vdpbf16ps: acc %a + %a*%a + %a*%a = %a, definition %a\n", (double)acc[i],
                            (double)x1, (double)y1, (double)x0, (double)y0, (double)out[i], (double)want);
                bad++;
            }
            (*lanes)++;
        }
    }
    return bad;
}

START_TEST(bf16_step_is_vdpbf16ps)
{
    if (!nn_cpu_has_avx512_bf16()) {
        printf("SKIP gemm_lowp bf16_step_is_vdpbf16ps: CPU lacks avx512_bf16\n");
        return;
    }
    long lanes = 0, fma_bad = 0;
    ck_assert_int_eq(dpbf16_mismatches(12345u, &lanes, &fma_bad), 0);
    ck_assert_int_eq(fma_bad, 0);
    ck_assert_int_gt(lanes, 1000000);
}
END_TEST

/* ---- the definition against independent loops ---- */

/* Activations for int8: mostly in range, some negative, NaN, huge. */
static void fill_int8_activations(float *a, size_t n, unsigned seed)
{
    fill_uniform(a, n, -0.5f, 7.0f, seed);
    for (size_t i = 0; i < n; i += 7) a[i] = (i / 7) % 3 == 0 ? NAN : (i / 7) % 3 == 1 ? 1e9f : -1e9f;
}

static void random_int8(int8_t *q, size_t n, unsigned seed)
{
    struct nn_rng r;
    nn_rng_seed(&r, seed, 3);
    for (size_t i = 0; i < n; i++) q[i] = (int8_t)((int)(nn_rng_uniform(&r) * 255.0f) - 127);
}

START_TEST(ref_int8_is_integer_loops)
{
    const int M = 13, N = 45, K = 301, lda = K + 3;
    const float inv = 37.0f;
    float *a = malloc(sizeof(float) * M * lda), *c = malloc(sizeof(float) * M * N);
    int8_t *q = malloc((size_t)K * N);
    ck_assert(a && c && q);
    fill_int8_activations(a, (size_t)M * lda, 5);
    random_int8(q, (size_t)K * N, 6);
    struct nn_lowp_weights *w;
    ck_assert_int_eq(nn_lowp_pack_int8(q, K, N, &w), NN_OK);
    nn_gemm_lowp_ref(M, a, lda, inv, w, c, N, NULL);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            long sum = 0;
            for (int p = 0; p < K; p++) {
                float x = a[i * lda + p];
                long u = isnan(x) ? 0 : x * inv >= 255.0f ? 255 : x * inv <= 0.0f ? 0 : lrintf(x * inv);
                sum += u * q[p * N + j];
            }
            ck_assert_msg(c[i * N + j] == (float)sum, "C[%d][%d] = %g, want %ld", i, j, (double)c[i * N + j], sum);
        }
    }
    nn_lowp_weights_free(w);
    free(a);
    free(c);
    free(q);
}
END_TEST

/* The bf16 sum is within the classic bound of the exact sum of the rounded
 * operands: |err| <= gamma(n) * sum |a b| with gamma(n) = n u / (1 - n u),
 * u = 2^-24, n steps (no underflow on these values). */
START_TEST(ref_bf16_within_bound)
{
    const int M = 9, N = 37, K = 1001;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N), *c = malloc(sizeof(float) * M * N);
    ck_assert(a && b && c);
    fill_uniform(a, (size_t)M * K, -2.0f, 2.0f, 8);
    fill_uniform(b, (size_t)K * N, -1.0f, 1.0f, 9);
    struct nn_lowp_weights *w;
    ck_assert_int_eq(nn_lowp_pack_bf16(b, K, N, &w), NN_OK);
    nn_gemm_lowp_ref(M, a, K, 0.0f, w, c, N, NULL);
    const double u = 0x1p-24, n = w->kpad, gamma = n * u / (1.0 - n * u);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double sum = 0, mag = 0;
            for (int p = 0; p < K; p++) {
                double x = nn_bf16_value(nn_bf16_round(a[i * K + p])), y = nn_bf16_value(nn_bf16_round(b[p * N + j]));
                sum += x * y;
                mag += fabs(x * y);
            }
            ck_assert_msg(fabs(c[i * N + j] - sum) <= gamma * mag, "C[%d][%d] = %.9g, exact %.9g", i, j,
                          (double)c[i * N + j], sum);
        }
    }
    nn_lowp_weights_free(w);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* ---- every kernel set against the definition ---- */

struct kset {
    const struct nn_lowp_kernels *k;
    const char *name;
};

static const struct kset ksets[] = {
    {&nn_lowp_kernels_scalar, "scalar"},
    {&nn_lowp_kernels_avx2, "avx2"},
    {&nn_lowp_kernels_avx2_vnni, "avx2-vnni"},
    {&nn_lowp_kernels_avx512, "avx512"},
};

/* Whether the set runs here; prints the SKIP line naming what is missing. */
static bool kset_usable(int i, enum nn_lowp type)
{
    if (nn_lowp_kernels_usable(ksets[i].k, type)) return true;
    const char *why = "NN_SIMD or the CPU caps the level below it";
    if (i == 1 || i == 2) {
        if (nn_simd_level() < NN_SIMD_AVX2) why = "avx2/fma (or NN_SIMD caps the level)";
        else why = "avx_vnni";
    } else if (i == 3) {
        if (nn_simd_level() < NN_SIMD_AVX512) why = "avx512f/bw/vl/dq (or NN_SIMD caps the level)";
        else why = type == NN_LOWP_BF16 ? "avx512_bf16" : "avx512_vnni";
    }
    printf("SKIP gemm_lowp %s %s kernels: CPU lacks %s\n", ksets[i].name, type == NN_LOWP_BF16 ? "bf16" : "int8",
           why);
    return false;
}

struct shape {
    int M, N, K, pad_a, pad_c;
    bool ep;
};

static const struct shape shapes[] = {
    {1, 1, 1, 0, 0, false},    {1, 1, 1, 2, 3, true},     {2, 3, 5, 1, 1, false},     {7, 31, 3, 0, 2, true},
    {13, 32, 4, 5, 0, false},  {14, 33, 7, 0, 0, true},   {15, 17, 9, 3, 1, false},   {28, 64, 16, 0, 0, false},
    {29, 65, 38, 1, 7, true},  {64, 96, 130, 0, 0, true}, {65, 100, 255, 2, 3, false}, {3, 100, 1000, 0, 1, true},
    {200, 19, 77, 4, 0, true}, {171, 100, 390, 1, 2, false}, {43, 47, 769, 0, 0, true}, {6, 40, 4099, 3, 1, false},
    {5, 9, 5000, 1, 1, true},  {100, 32, 1153, 0, 4, true}, {16, 16, 2, 0, 0, false},  {60, 8, 400, 2, 2, true},    {31, 70, 2501, 1, 3, true},
};

/* Data kinds for bf16: 0 ordinary, 1 with denormals and tiny values (the
 * AVX2 level's exact fallback, flushing), 2 wide exponents (overflow, inf,
 * NaN). */
static void fill_bf16_operand(float *x, size_t n, unsigned seed, int kind)
{
    fill_uniform(x, n, -1.0f, 1.0f, seed);
    if (kind == 0) return;
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = xorshift(&s);
        if (kind == 1) {
            if (r % 4 == 0) x[i] = ldexpf(x[i], -70 - (int)(r >> 8) % 60); /* tiny products, some underflow */
            else if (r % 4 == 1) x[i] = float_of((r >> 4) & 0x807fffffu); /* denormals */
        } else {
            if (r % 5 == 0) x[i] = ldexpf(x[i], (int)((r >> 8) % 200) - 100);
            else if (r % 97 == 1) x[i] = r % 2 ? INFINITY : NAN;
        }
    }
}

/* Runs one shape through kernel set k and compares with the definition.
 * Returns the number of wrong elements (C's slack, NaN, must stay NaN). */
static long check_shape(const struct nn_lowp_kernels *k, enum nn_lowp type, const struct shape *sh, int kind,
                        unsigned seed)
{
    const int M = sh->M, N = sh->N, K = sh->K, lda = K + sh->pad_a, ldc = N + sh->pad_c;
    float *a = malloc(sizeof(float) * (size_t)M * lda), *b = malloc(sizeof(float) * (size_t)K * N);
    float *c = malloc(sizeof(float) * (size_t)M * ldc), *r = malloc(sizeof(float) * (size_t)M * ldc);
    float *scale = malloc(sizeof(float) * N), *shift = malloc(sizeof(float) * N);
    int8_t *q = malloc((size_t)K * N);
    ck_assert(a && b && c && r && scale && shift && q);
    struct nn_lowp_weights *w;
    float inv = 0.0f;
    if (type == NN_LOWP_BF16) {
        fill_bf16_operand(a, (size_t)M * lda, seed, kind);
        fill_bf16_operand(b, (size_t)K * N, seed + 1, kind);
        ck_assert_int_eq(nn_lowp_pack_bf16(b, K, N, &w), NN_OK);
    } else {
        fill_int8_activations(a, (size_t)M * lda, seed);
        random_int8(q, (size_t)K * N, seed + 1);
        inv = 31.0f;
        ck_assert_int_eq(nn_lowp_pack_int8(q, K, N, &w), NN_OK);
    }
    fill_uniform(scale, (size_t)N, 0.001f, 0.1f, seed + 2);
    fill_uniform(shift, (size_t)N, -1.0f, 1.0f, seed + 3);
    const struct nn_gemm_epilogue ep = {scale, shift, true};
    for (size_t i = 0; i < (size_t)M * ldc; i++) c[i] = r[i] = NAN;
    nn_gemm_lowp_ref(M, a, lda, inv, w, r, ldc, sh->ep ? &ep : NULL);
    nn_gemm_lowp_with(k, M, a, lda, inv, w, c, ldc, sh->ep ? &ep : NULL);
    long wrong = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < ldc; j++) {
            float got = c[(size_t)i * ldc + j], want = r[(size_t)i * ldc + j];
            if (j < N ? !same(got, want) : !isnan(got)) {
                if (wrong < 3)
                    fprintf(stderr, "gemm_lowp %s %s kind %d M=%d N=%d K=%d lda=%d ldc=%d ep=%d: C[%d][%d] = %a, want %a\n",
                            type == NN_LOWP_BF16 ? k->bf16_name : k->int8_name, type == NN_LOWP_BF16 ? "bf16" : "int8",
                            kind, M, N, K, lda, ldc, sh->ep, i, j, (double)got, (double)want);
                wrong++;
            }
        }
    }
    nn_lowp_weights_free(w);
    free(a);
    free(b);
    free(c);
    free(r);
    free(scale);
    free(shift);
    free(q);
    return wrong;
}

static void check_all_shapes(int set, enum nn_lowp type, int kinds)
{
    if (!kset_usable(set, type)) return;
    long wrong = 0;
    for (int kind = 0; kind < kinds; kind++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            wrong += check_shape(ksets[set].k, type, &shapes[s], kind, 100u * (unsigned)s + (unsigned)kind);
    nn_gemm_release_scratch();
    ck_assert_int_eq(wrong, 0);
}

START_TEST(bf16_bit_exact) { check_all_shapes(_i, NN_LOWP_BF16, 3); }
END_TEST

START_TEST(int8_bit_exact) { check_all_shapes(_i, NN_LOWP_INT8, 1); }
END_TEST

/* 1 and 2 threads give the same bits (row split and column split). */
START_TEST(threads_identical)
{
    static const struct shape big[] = {{300, 96, 600, 0, 0, true}, {64, 384, 700, 0, 0, true}};
    for (int t = 0; t < 2; t++) {
        enum nn_lowp type = t ? NN_LOWP_INT8 : NN_LOWP_BF16;
        for (int s = 0; s < 2; s++) {
            const struct shape *sh = &big[s];
            float *a = malloc(sizeof(float) * sh->M * sh->K), *b = malloc(sizeof(float) * sh->K * sh->N);
            float *c1 = malloc(sizeof(float) * sh->M * sh->N), *c2 = malloc(sizeof(float) * sh->M * sh->N);
            int8_t *q = malloc((size_t)sh->K * sh->N);
            ck_assert(a && b && c1 && c2 && q);
            fill_uniform(a, (size_t)sh->M * sh->K, 0.0f, 2.0f, 40 + s);
            fill_uniform(b, (size_t)sh->K * sh->N, -1.0f, 1.0f, 50 + s);
            random_int8(q, (size_t)sh->K * sh->N, 60 + s);
            struct nn_lowp_weights *w;
            ck_assert_int_eq(t ? nn_lowp_pack_int8(q, sh->K, sh->N, &w) : nn_lowp_pack_bf16(b, sh->K, sh->N, &w), NN_OK);
            const int before = nn_threads_get();
            nn_threads_set(1);
            nn_gemm_lowp(sh->M, a, sh->K, 50.0f, w, c1, sh->N, NULL);
            nn_threads_set(2);
            nn_gemm_lowp(sh->M, a, sh->K, 50.0f, w, c2, sh->N, NULL);
            nn_threads_set(before);
            ck_assert_msg(memcmp(c1, c2, sizeof(float) * sh->M * sh->N) == 0, "%s M=%d: 1 and 2 threads differ",
                          nn_gemm_lowp_kernel(type), sh->M);
            nn_lowp_weights_free(w);
            free(a);
            free(b);
            free(c1);
            free(c2);
            free(q);
        }
    }
    nn_gemm_release_scratch();
}
END_TEST

/* ---- A already quantised: nn_gemm_lowp_u8 and nn_lowp_quantize ---- */

/* The same shapes with A quantised beforehand (by the definition's
 * quantiser): every set's u8 entry equals nn_gemm_lowp_ref on the floats.
 * The bytes past K in each row are 0xA5 (the packers must not read them
 * into the sums). */
static long check_shape_u8(const struct nn_lowp_kernels *k, const struct shape *sh, unsigned seed)
{
    const int M = sh->M, N = sh->N, K = sh->K, lda = K + sh->pad_a, ldc = N + sh->pad_c;
    const float inv = 29.0f;
    float *a = malloc(sizeof(float) * (size_t)M * lda);
    float *c = malloc(sizeof(float) * (size_t)M * ldc), *r = malloc(sizeof(float) * (size_t)M * ldc);
    float *scale = malloc(sizeof(float) * N), *shift = malloc(sizeof(float) * N);
    int8_t *q = malloc((size_t)K * N);
    uint8_t *a8 = malloc((size_t)M * lda);
    ck_assert(a && c && r && scale && shift && q && a8);
    fill_int8_activations(a, (size_t)M * lda, seed);
    for (int i = 0; i < M; i++)
        for (int p = 0; p < lda; p++)
            a8[(size_t)i * lda + p] = p < K ? nn_lowp_quantize_activation(a[(size_t)i * lda + p], inv) : 0xA5;
    random_int8(q, (size_t)K * N, seed + 1);
    struct nn_lowp_weights *w;
    ck_assert_int_eq(nn_lowp_pack_int8(q, K, N, &w), NN_OK);
    fill_uniform(scale, (size_t)N, 0.001f, 0.1f, seed + 2);
    fill_uniform(shift, (size_t)N, -1.0f, 1.0f, seed + 3);
    const struct nn_gemm_epilogue ep = {scale, shift, true};
    for (size_t i = 0; i < (size_t)M * ldc; i++) c[i] = r[i] = NAN;
    nn_gemm_lowp_ref(M, a, lda, inv, w, r, ldc, sh->ep ? &ep : NULL);
    nn_gemm_lowp_u8_with(k, M, a8, lda, w, c, ldc, sh->ep ? &ep : NULL);
    long wrong = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            float got = c[(size_t)i * ldc + j], want = r[(size_t)i * ldc + j];
            if (j < N ? !same(got, want) : !isnan(got)) {
                if (wrong < 3)
                    fprintf(stderr, "gemm_lowp_u8 %s M=%d N=%d K=%d lda=%d ldc=%d ep=%d: C[%d][%d] = %a, want %a\n",
                            k->int8_name, M, N, K, lda, ldc, sh->ep, i, j, (double)got, (double)want);
                wrong++;
            }
        }
    nn_lowp_weights_free(w);
    free(a), free(c), free(r), free(scale), free(shift), free(q), free(a8);
    return wrong;
}

START_TEST(u8_bit_exact)
{
    if (!kset_usable(_i, NN_LOWP_INT8)) return;
    long wrong = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        wrong += check_shape_u8(ksets[_i].k, &shapes[s], 300u + 7u * (unsigned)s);
    nn_gemm_release_scratch();
    ck_assert_int_eq(wrong, 0);
}
END_TEST

/* Through the public entry with 1 and 2 threads (row and column splits):
 * the same bits as nn_gemm_lowp on the floats; bf16 weights: C untouched. */
START_TEST(u8_threads_identical)
{
    static const struct shape big[] = {{300, 96, 600, 3, 0, true}, {64, 384, 700, 0, 1, true}};
    const int before = nn_threads_get();
    for (int s = 0; s < 2; s++) {
        const struct shape *sh = &big[s];
        const int M = sh->M, N = sh->N, K = sh->K, lda = K + sh->pad_a, ldc = N + sh->pad_c;
        float *a = malloc(sizeof(float) * M * lda), *c0 = malloc(sizeof(float) * M * ldc);
        float *c1 = malloc(sizeof(float) * M * ldc), *c2 = malloc(sizeof(float) * M * ldc);
        uint8_t *a8 = malloc((size_t)M * lda);
        int8_t *q = malloc((size_t)K * N);
        ck_assert(a && c0 && c1 && c2 && a8 && q);
        fill_int8_activations(a, (size_t)M * lda, 90 + s);
        nn_lowp_quantize((size_t)M * lda, a, 50.0f, a8);
        random_int8(q, (size_t)K * N, 95 + s);
        struct nn_lowp_weights *w;
        ck_assert_int_eq(nn_lowp_pack_int8(q, K, N, &w), NN_OK);
        const struct nn_gemm_epilogue ep = {NULL, NULL, true}, *e = sh->ep ? &ep : NULL;
        for (size_t i = 0; i < (size_t)M * ldc; i++) c0[i] = c1[i] = c2[i] = -3.0f;
        nn_threads_set(2);
        nn_gemm_lowp(M, a, lda, 50.0f, w, c0, ldc, e);
        nn_threads_set(1);
        nn_gemm_lowp_u8(M, a8, lda, w, c1, ldc, e);
        nn_threads_set(2);
        nn_gemm_lowp_u8(M, a8, lda, w, c2, ldc, e);
        nn_threads_set(before);
        ck_assert_msg(memcmp(c0, c1, sizeof(float) * M * ldc) == 0, "M=%d: u8 on 1 thread differs", M);
        ck_assert_msg(memcmp(c0, c2, sizeof(float) * M * ldc) == 0, "M=%d: u8 on 2 threads differs", M);
        nn_lowp_weights_free(w);
        float *b = malloc(sizeof(float) * K * N);
        ck_assert(b);
        fill_uniform(b, (size_t)K * N, -1.0f, 1.0f, 99);
        ck_assert_int_eq(nn_lowp_pack_bf16(b, K, N, &w), NN_OK);
        nn_gemm_lowp_u8(M, a8, lda, w, c2, ldc, e);
        ck_assert(memcmp(c0, c2, sizeof(float) * M * ldc) == 0);
        nn_lowp_weights_free(w);
        free(a), free(b), free(c0), free(c1), free(c2), free(a8), free(q);
    }
    nn_gemm_release_scratch();
}
END_TEST

/* Every set's vector quantiser against nn_lowp_quantize_activation on
 * NaN (both signs), infinities, -0, negatives, denormals, huge values,
 * ties (x.5 after scaling: to even), just below and above 255, at every
 * length and start offset that reaches the tails; then nn_lowp_quantize
 * over the pool on a long run. */
START_TEST(quantize_vector_is_scalar)
{
    enum { LEN = 1000 };
    float *a = malloc(sizeof(float) * (LEN + 64));
    uint8_t *q = malloc(LEN + 64);
    ck_assert(a && q);
    static const float invs[] = {1.0f, 0.5f, 37.0f, 1e-3f, 1e30f};
    const float special[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, -1.0f, -0.5f, -1e30f, 1e30f, 0x1p-149f,
                             -0x1p-149f, 0x1p-126f, 0.5f, 1.5f, 2.5f, 3.5f, 126.5f, 127.5f, 253.5f, 254.5f, 255.5f,
                             254.49998f, 254.50002f, 255.0f, 256.0f, 0.49999997f, 1.0f, 3e9f, -3e9f};
    const size_t ns = sizeof special / sizeof special[0];
    long wrong = 0;
    for (size_t set = 0; set < sizeof ksets / sizeof ksets[0]; set++) {
        const struct nn_lowp_kernels *k = ksets[set].k;
        if (!nn_lowp_kernels_usable(k, NN_LOWP_INT8) && !nn_lowp_kernels_usable(k, NN_LOWP_BF16)) {
            printf("SKIP gemm_lowp %s quantiser: not usable on this CPU\n", ksets[set].name);
            continue;
        }
        for (size_t v = 0; v < sizeof invs / sizeof invs[0]; v++) {
            const float inv = invs[v];
            uint32_t seed = 12345u + (uint32_t)v;
            for (int i = 0; i < LEN + 64; i++) {
                uint32_t r = xorshift(&seed);
                /* specials scaled back so that ties stay ties after * inv */
                if (r % 3 == 0) a[i] = special[(r >> 4) % ns] / (r % 2 ? 1.0f : inv);
                else a[i] = ((float)(r >> 8) / (float)(1u << 24) * 300.0f - 20.0f) / inv;
                if (r % 11 == 0) a[i] = floorf(a[i] * inv) / inv + 0.5f / inv; /* near ties */
            }
            for (int start = 0; start < 17; start++)
                for (int n = 0; n <= 200; n += (n < 70 ? 1 : 13)) {
                    memset(q, 0xA5, LEN + 64);
                    k->quantize((size_t)n, a + start, inv, q + start);
                    for (int i = 0; i < LEN + 64; i++) {
                        int want = i >= start && i < start + n ? nn_lowp_quantize_activation(a[i], inv) : 0xA5;
                        if (q[i] != want && wrong++ < 3)
                            fprintf(stderr, "quantize %s inv %g n %d start %d: q[%d] (%a) = %d, want %d\n",
                                    ksets[set].name, (double)inv, n, start, i, (double)a[i], q[i], want);
                    }
                }
        }
    }
    /* The pool's split: 1 and 2 threads, long enough for several tasks. */
    const size_t big = 200003;
    float *b = malloc(sizeof(float) * big);
    uint8_t *q1 = malloc(big), *q2 = malloc(big);
    ck_assert(b && q1 && q2);
    fill_int8_activations(b, big, 17);
    const int before = nn_threads_get();
    nn_threads_set(1);
    nn_lowp_quantize(big, b, 31.0f, q1);
    nn_threads_set(2);
    nn_lowp_quantize(big, b, 31.0f, q2);
    nn_threads_set(before);
    for (size_t i = 0; i < big; i++) {
        const uint8_t want = nn_lowp_quantize_activation(b[i], 31.0f);
        if ((q1[i] != want || q2[i] != want) && wrong++ < 3)
            fprintf(stderr, "nn_lowp_quantize [%zu] = %d / %d, want %d\n", i, q1[i], q2[i], want);
    }
    free(a), free(q), free(b), free(q1), free(q2);
    ck_assert_int_eq(wrong, 0);
}
END_TEST

/* Two caller threads at once (each with its own packing buffer; the pool
 * runs one of them, the other works alone): both equal the definition. */
struct concurrent_arg {
    enum nn_lowp type;
    long wrong;
};

static void *concurrent_worker(void *p)
{
    struct concurrent_arg *arg = p;
    static const struct shape sh = {150, 70, 900, 1, 2, true};
    for (int rep = 0; rep < 3; rep++)
        arg->wrong += check_shape(nn_lowp_kernels_select(arg->type), arg->type, &sh, 0, 77u + (unsigned)rep);
    nn_gemm_release_scratch();
    return NULL;
}

START_TEST(concurrent_callers)
{
    const int before = nn_threads_get();
    nn_threads_set(2);
    struct concurrent_arg args[2] = {{NN_LOWP_BF16, 0}, {NN_LOWP_INT8, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, concurrent_worker, &args[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    nn_threads_set(before);
    ck_assert_int_eq(args[0].wrong + args[1].wrong, 0);
}
END_TEST

Suite *suite_gemm_lowp(void)
{
    Suite *s = suite_create("gemm_lowp");
    TCase *tc = tcase_create("definition");
    tcase_add_test(tc, bf16_round_known);
    tcase_add_test(tc, quantize_known);
    tcase_add_test(tc, bf16_step_known);
    tcase_add_test(tc, bf16_step_is_vdpbf16ps);
    tcase_add_test(tc, ref_int8_is_integer_loops);
    tcase_add_test(tc, ref_bf16_within_bound);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 300);
    tcase_add_loop_test(tk, bf16_bit_exact, 0, 4);
    tcase_add_loop_test(tk, int8_bit_exact, 0, 4);
    tcase_add_test(tk, threads_identical);
    tcase_add_test(tk, concurrent_callers);
    tcase_add_loop_test(tk, u8_bit_exact, 0, 4);
    tcase_add_test(tk, u8_threads_identical);
    tcase_add_test(tk, quantize_vector_is_scalar);
    suite_add_tcase(s, tk);
    return s;
}
