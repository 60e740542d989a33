/* Aligned allocation and the activation arena.
 *
 * All float buffers are 64-byte aligned (one cache line, one AVX-512
 * register) so SIMD kernels can use aligned loads on row starts that are
 * multiples of 16 floats. A network plans its buffers first (nn_arena_reserve
 * returns offsets), then makes one allocation (nn_arena_commit). */
#ifndef NN_BASE_MEM_H
#define NN_BASE_MEM_H

#include <stddef.h>

#include "base/status.h"

#define NN_ALIGN 64

/* 64-byte aligned, uninitialised; NULL on failure or bytes == 0. Free with nn_free. */
void *nn_alloc(size_t bytes);
/* As nn_alloc, zero-filled. */
void *nn_calloc(size_t bytes);
void nn_free(void *p);

/* Bump allocator over one block: reserve during planning, commit once. */
struct nn_arena {
    size_t size;   /* bytes reserved so far (a multiple of NN_ALIGN) */
    char *base;    /* NULL until committed */
};

/* Reserves `bytes` and returns the offset of the reservation. */
size_t nn_arena_reserve(struct nn_arena *a, size_t bytes);
/* Allocates the whole arena (zero-filled). */
enum nn_status nn_arena_commit(struct nn_arena *a);
/* Pointer to a reservation made earlier; valid after commit. */
static inline void *nn_arena_at(const struct nn_arena *a, size_t offset) { return a->base + offset; }
void nn_arena_release(struct nn_arena *a);

#endif
