#include "base/sort.h"

/* Heapsort: in place and O(n log n) in the worst case, so it needs no
 * scratch memory (no failure path) and no input makes it quadratic. The
 * arrays sorted here are small (tensor tables, activation buffers), so its
 * poorer locality than a merge sort does not matter. */

static void swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
    while (size--) {
        unsigned char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

/* Moves element `root` down the max-heap base[0..n) until both children are
 * not greater. */
static void sift_down(unsigned char *base, size_t root, size_t n, size_t size, nn_sort_cmp cmp, void *ctx)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size, ctx) < 0) child++;
        if (cmp(base + root * size, base + child * size, ctx) >= 0) return;
        swap_bytes(base + root * size, base + child * size, size);
        root = child;
    }
}

void nn_sort(void *base, size_t n, size_t size, nn_sort_cmp cmp, void *ctx)
{
    if (n < 2 || size == 0) return;
    unsigned char *b = base;
    for (size_t i = n / 2; i-- > 0;) sift_down(b, i, n, size, cmp, ctx);
    for (size_t end = n - 1; end > 0; end--) {
        swap_bytes(b, b + end * size, size);
        sift_down(b, 0, end, size, cmp, ctx);
    }
}
