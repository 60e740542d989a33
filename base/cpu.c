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

/* ---- extension bits ----
 * Feature bits of cpuid leaf 7 (subleaf 0: ebx, ecx; subleaf 1: eax), kept
 * only when the OS saves the state they need (xgetbv: ymm for AVX-VNNI,
 * zmm and opmask too for the AVX-512 ones). Cached in an atomic: the
 * answer is the same for every thread. */
enum { EXT_AVX512_BF16 = 1, EXT_AVX512_VNNI = 2, EXT_AVX_VNNI = 4, EXT_KNOWN = 1 << 30 };

static _Atomic int ext_cache;

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static int ext_bits(void)
{
    int bits = atomic_load(&ext_cache);
    if (bits & EXT_KNOWN) return bits;
    bits = EXT_KNOWN;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27)) /* osxsave */ && __get_cpuid_max(0, NULL) >= 7) {
        unsigned long long xcr0 = xgetbv0();
        bool ymm = (xcr0 & 0x6) == 0x6, zmm = ymm && (xcr0 & 0xe0) == 0xe0;
        unsigned b7 = 0, c7 = 0, a71 = 0;
        __cpuid_count(7, 0, a, b7, c7, d);
        unsigned max_sub = a;
        if (max_sub >= 1) __cpuid_count(7, 1, a71, b, c, d);
        bool avx512f = zmm && (b7 & (1u << 16));
        if (avx512f && (a71 & (1u << 5))) bits |= EXT_AVX512_BF16;
        if (avx512f && (c7 & (1u << 11))) bits |= EXT_AVX512_VNNI;
        if (ymm && (a71 & (1u << 4))) bits |= EXT_AVX_VNNI;
    }
#endif
    atomic_store(&ext_cache, bits);
    return bits;
}

bool nn_cpu_has_avx512_bf16(void) { return ext_bits() & EXT_AVX512_BF16; }
bool nn_cpu_has_avx512_vnni(void) { return ext_bits() & EXT_AVX512_VNNI; }
bool nn_cpu_has_avx_vnni(void) { return ext_bits() & EXT_AVX_VNNI; }
