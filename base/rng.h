/* Small, seedable, serialisable random number generator (PCG32). Its whole
 * state is two integers, so checkpoints can save and restore it exactly. */
#ifndef NN_BASE_RNG_H
#define NN_BASE_RNG_H

#include <stdint.h>

struct nn_rng {
    uint64_t state;
    uint64_t inc;
};

/* Independent streams for one seed: pass a different `stream` per consumer. */
void nn_rng_seed(struct nn_rng *r, uint64_t seed, uint64_t stream);
uint32_t nn_rng_u32(struct nn_rng *r);
/* Uniform integer in [0, n), unbiased. n must be > 0. */
uint32_t nn_rng_below(struct nn_rng *r, uint32_t n);
/* Uniform float in [0, 1). */
float nn_rng_uniform(struct nn_rng *r);
/* Standard normal (Box-Muller). */
float nn_rng_normal(struct nn_rng *r);

#endif
