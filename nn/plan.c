#include "nn/plan.h"

#include <stdbool.h>
#include <stdlib.h>

#include "base/mem.h"
#include "base/sort.h"

static size_t round_up(size_t n) { return (n + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN; }

/* Indices into the buffer table (ctx), largest first, ties by index so the
 * plan does not depend on the sort's handling of equal keys. */
static int by_size_desc(const void *a, const void *b, void *ctx)
{
    const struct nn_plan_buf *bufs = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (bufs[i].bytes != bufs[j].bytes) return bufs[i].bytes > bufs[j].bytes ? -1 : 1;
    return (i > j) - (i < j);
}

enum nn_status nn_plan_assign(struct nn_plan_buf *bufs, int count, size_t *total)
{
    *total = 0;
    int *order = malloc((size_t)(count ? count : 1) * sizeof *order);
    int *placed = malloc((size_t)(count ? count : 1) * sizeof *placed);
    if (!order || !placed) {
        free(order);
        free(placed);
        return nn_fail(NN_ERR_NOMEM, "out of memory planning activations");
    }
    for (int i = 0; i < count; i++) order[i] = i;
    nn_sort(order, (size_t)count, sizeof *order, by_size_desc, bufs);
    int nplaced = 0;
    for (int k = 0; k < count; k++) {
        struct nn_plan_buf *b = &bufs[order[k]];
        if (b->bytes == 0) {
            b->offset = 0;
            continue;
        }
        size_t size = round_up(b->bytes);
        /* Try offset 0, then the end of every placed buffer that overlaps in
         * time, lowest first: a buffer fits at an offset if no live placed
         * buffer overlaps it in both time and address. */
        size_t best = (size_t)-1;
        for (int cand = -1; cand < nplaced; cand++) {
            size_t off = 0;
            if (cand >= 0) {
                const struct nn_plan_buf *c = &bufs[placed[cand]];
                if (c->last < b->first || c->first > b->last) continue;
                off = c->offset + round_up(c->bytes);
            }
            if (off >= best) continue;
            bool fits = true;
            for (int j = 0; j < nplaced && fits; j++) {
                const struct nn_plan_buf *o = &bufs[placed[j]];
                if (o->last < b->first || o->first > b->last) continue;
                size_t oend = o->offset + round_up(o->bytes);
                if (off < oend && o->offset < off + size) fits = false;
            }
            if (fits) best = off;
        }
        b->offset = best;
        if (best + size > *total) *total = best + size;
        placed[nplaced++] = order[k];
    }
    free(order);
    free(placed);
    return NN_OK;
}
