#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

static size_t round_up(size_t n) { return (n + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN; }

void *nn_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > ((size_t)-1) - NN_ALIGN) return NULL;
    return aligned_alloc(NN_ALIGN, round_up(bytes));
}

void *nn_calloc(size_t bytes)
{
    void *p = nn_alloc(bytes);
    if (p) memset(p, 0, round_up(bytes));
    return p;
}

void nn_free(void *p) { free(p); }

size_t nn_arena_reserve(struct nn_arena *a, size_t bytes)
{
    size_t off = a->size;
    a->size += round_up(bytes);
    return off;
}

enum nn_status nn_arena_commit(struct nn_arena *a)
{
    if (a->base) return nn_fail(NN_ERR_INTERNAL, "arena committed twice");
    if (a->size == 0) return NN_OK;
    a->base = nn_calloc(a->size);
    if (!a->base) return nn_fail(NN_ERR_NOMEM, "cannot allocate %zu bytes for activations", a->size);
    return NN_OK;
}

void nn_arena_release(struct nn_arena *a)
{
    nn_free(a->base);
    a->base = NULL;
    a->size = 0;
}
