/* Memory planning: given buffers with sizes and lifetimes (first and last
 * step at which they are used), choose offsets in one arena so that buffers
 * alive at the same time never overlap. Greedy by size, largest first, each
 * at the lowest offset that fits: simple and close to optimal for the
 * few hundred buffers of one network. */
#ifndef NN_PLAN_H
#define NN_PLAN_H

#include <stddef.h>

#include "base/status.h"

struct nn_plan_buf {
    size_t bytes;
    int first, last;    /* inclusive step range; bytes == 0 buffers are ignored */
    size_t offset;      /* out */
};

/* Assigns offsets (multiples of 64 bytes); returns the arena size in *total. */
enum nn_status nn_plan_assign(struct nn_plan_buf *bufs, int count, size_t *total);

#endif
