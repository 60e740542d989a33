/* Sorting with a context pointer for the comparator.
 *
 * qsort's comparator sees only the two elements, so sorting indices by a
 * property of the objects they name needs the objects in a global, which two
 * threads sorting at once overwrite for each other. C11 has no qsort with a
 * context (qsort_r is a GNU/BSD extension with incompatible signatures), so
 * the library sorts through this one. */
#ifndef NN_BASE_SORT_H
#define NN_BASE_SORT_H

#include <stddef.h>

/* Negative, zero or positive as a sorts before, equal to or after b. */
typedef int (*nn_sort_cmp)(const void *a, const void *b, void *ctx);

/* Sorts base[0..n) (elements of `size` bytes) in place, ascending by cmp,
 * which gets `ctx` as its third argument. O(n log n) comparisons in the worst
 * case, no allocation, so it cannot fail. Not stable: a comparator whose
 * ties must keep an order has to break them itself (by index, say). */
void nn_sort(void *base, size_t n, size_t size, nn_sort_cmp cmp, void *ctx);

#endif
