#include "base/rng.h"

#include <math.h>

void nn_rng_seed(struct nn_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    nn_rng_u32(r);
    r->state += seed;
    nn_rng_u32(r);
}

uint32_t nn_rng_u32(struct nn_rng *r)
{
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t nn_rng_below(struct nn_rng *r, uint32_t n)
{
    uint32_t threshold = (0u - n) % n; /* reject the short last bucket */
    for (;;) {
        uint32_t x = nn_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

float nn_rng_uniform(struct nn_rng *r) { return (float)(nn_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float nn_rng_normal(struct nn_rng *r)
{
    float u1 = nn_rng_uniform(r), u2 = nn_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}
