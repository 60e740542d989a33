#include "base/cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

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
    /* Atomic: threads may ask at once; each computes the same answer. */
    static _Atomic int cached = -1;
    int seen = atomic_load_explicit(&cached, memory_order_relaxed);
    if (seen >= 0) return (enum nn_simd)seen;
    enum nn_simd level = detect();
    const char *env = getenv("NN_SIMD");
    if (env) {
        enum nn_simd want = level;
        if (!strcmp(env, "scalar")) want = NN_SIMD_SCALAR;
        else if (!strcmp(env, "avx2")) want = NN_SIMD_AVX2;
        else if (!strcmp(env, "avx512")) want = NN_SIMD_AVX512;
        if (want < level) level = want;
    }
    atomic_store_explicit(&cached, (int)level, memory_order_relaxed);
    return level;
}

bool nn_cpu_has_f16c(void)
{
#if defined(__x86_64__) || defined(__i386__)
    /* CPUID leaf 1, ECX bit 29. Read directly: __builtin_cpu_supports knows
     * "f16c" in gcc but not in clang 14. F16C needs the AVX register state,
     * which callers check through nn_simd_level() (that test includes the
     * operating system's support). */
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    return (ecx & bit_F16C) != 0;
#else
    return false;
#endif
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
