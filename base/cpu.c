#include "base/cpu.h"

#include <stdlib.h>
#include <string.h>

static enum nn_simd detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return NN_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return NN_SIMD_AVX2;
#endif
    return NN_SIMD_SCALAR;
}

enum nn_simd nn_simd_level(void)
{
    static int cached = -1;
    if (cached >= 0) return (enum nn_simd)cached;
    enum nn_simd level = detect();
    const char *env = getenv("NN_SIMD");
    if (env) {
        enum nn_simd want = level;
        if (!strcmp(env, "scalar")) want = NN_SIMD_SCALAR;
        else if (!strcmp(env, "avx2")) want = NN_SIMD_AVX2;
        else if (!strcmp(env, "avx512")) want = NN_SIMD_AVX512;
        if (want < level) level = want;
    }
    cached = (int)level;
    return level;
}

const char *nn_simd_name(enum nn_simd level)
{
    switch (level) {
    case NN_SIMD_SCALAR: return "scalar";
    case NN_SIMD_AVX2: return "avx2";
    case NN_SIMD_AVX512: return "avx512";
    }
    return "?";
}
