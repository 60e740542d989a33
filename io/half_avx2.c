#include "io/half.h"

#include <immintrin.h>
#include <string.h>

void nn_f16_to_f32_avx2(const void *src, float *dst, size_t n)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(s + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    if (i < n) {
        uint16_t tail[8] = {0};
        memcpy(tail, s + 2 * i, (n - i) * 2);
        float out[8];
        _mm256_storeu_ps(out, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)tail)));
        memcpy(dst + i, out, (n - i) * sizeof(float));
    }
}
