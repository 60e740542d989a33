#include "io/half.h"

#include <string.h>

#include "base/cpu.h"

static float from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float nn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) /* infinity, or NaN with its payload kept and the quiet bit set */
        return from_bits(sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0));
    if (exp == 0) {
        if (mant == 0) return from_bits(sign);
        /* Subnormal: mant * 2^-24. Shift the leading 1 up to the implicit
         * bit position; each shift halves the exponent. */
        uint32_t e = 127 - 15 + 1;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return from_bits(sign | (e << 23) | ((mant & 0x3ffu) << 13));
    }
    return from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

float nn_bf16_to_f32(uint16_t h) { return from_bits((uint32_t)h << 16); }

int nn_f16_has_f16c(void)
{
#if defined(__x86_64__)
    return nn_simd_level() >= NN_SIMD_AVX2 && nn_cpu_has_f16c();
#else
    return 0;
#endif
}

void nn_f16_to_f32_array(const void *src, float *dst, size_t n)
{
#if defined(__x86_64__)
    if (nn_f16_has_f16c()) {
        nn_f16_to_f32_avx2(src, dst, n);
        return;
    }
#endif
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) dst[i] = nn_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}

void nn_bf16_to_f32_array(const void *src, float *dst, size_t n)
{
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) dst[i] = nn_bf16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}
