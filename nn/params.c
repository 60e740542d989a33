#include "nn/params.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

int nn_params_add(struct nn_params *t, const char *name, enum nn_param_kind kind, int ndim, const int *shape)
{
    if (t->count == t->cap) {
        int cap = t->cap ? t->cap * 2 : 64;
        struct nn_param *items = realloc(t->items, (size_t)cap * sizeof *items);
        if (!items) return -1;
        t->items = items;
        t->cap = cap;
    }
    struct nn_param *p = &t->items[t->count];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    /* Each tensor starts on a 64-byte boundary so kernels see aligned rows. */
    p->offset = t->total;
    t->total += (p->count + 15) / 16 * 16;
    return t->count++;
}

enum nn_status nn_params_alloc(struct nn_params *t)
{
    nn_free(t->data);
    t->data = nn_calloc(t->total * sizeof(float));
    if (!t->data) return nn_fail(NN_ERR_NOMEM, "cannot allocate %zu parameters", t->total);
    return NN_OK;
}

void nn_params_free(struct nn_params *t)
{
    free(t->items);
    nn_free(t->data);
    memset(t, 0, sizeof *t);
}

enum nn_status nn_params_select(const struct nn_params *t, const char *prefixes, bool *selected)
{
    for (const char *s = prefixes; *s;) {
        while (*s == ',' || *s == ' ') s++;
        size_t len = strcspn(s, ", ");
        if (!len) break;
        int hits = 0;
        for (int i = 0; i < t->count; i++)
            if (!strncmp(t->items[i].name, s, len)) {
                selected[i] = true;
                hits++;
            }
        if (!hits)
            return nn_fail(NN_ERR_ARG, "trainable scope '%.*s' matches no parameter (names look like "
                           "'Mixed_7c.branch1x1.conv.weight', 'fc.weight', 'AuxLogits.fc.bias')", (int)len, s);
        s += len;
    }
    return NN_OK;
}

int nn_params_find(const struct nn_params *t, const char *name)
{
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->items[i].name, name)) return i;
    return -1;
}

int nn_params_first_nonfinite(const struct nn_params *t, float *value)
{
    for (int i = 0; i < t->count; i++) {
        const float *x = nn_param_data(t, i);
        const size_t n = t->items[i].count;
        /* a value is NaN or infinite when its exponent bits are all ones: an
         * integer OR over the tensor that the compiler vectorises (a float
         * test would not be, without -ffast-math); only a tensor that fails
         * is searched again */
        uint32_t bad = 0;
        for (size_t k = 0; k < n; k++) {
            uint32_t bits;
            memcpy(&bits, &x[k], sizeof bits);
            bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
        }
        if (!bad) continue;
        for (size_t k = 0; k < n; k++)
            if (!isfinite(x[k])) {
                if (value) *value = x[k];
                return i;
            }
    }
    return -1;
}

int nn_param_torch_shape(const struct nn_param *p, int shape[4])
{
    switch (p->kind) {
    case NN_PARAM_CONV_W: /* HWIO -> OIHW */
        shape[0] = p->shape[3];
        shape[1] = p->shape[2];
        shape[2] = p->shape[0];
        shape[3] = p->shape[1];
        return 4;
    case NN_PARAM_FC_W: /* IO -> OI */
        shape[0] = p->shape[1];
        shape[1] = p->shape[0];
        return 2;
    default:
        for (int i = 0; i < p->ndim; i++) shape[i] = p->shape[i];
        return p->ndim;
    }
}

/* HWIO <-> OIHW; `to_torch` picks the direction. */
static void conv_layout(const struct nn_param *p, const float *src, float *dst, bool to_torch)
{
    int kh = p->shape[0], kw = p->shape[1], ci = p->shape[2], co = p->shape[3];
    for (int o = 0; o < co; o++)
        for (int i = 0; i < ci; i++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++) {
                    size_t torch = (((size_t)o * ci + i) * kh + y) * kw + x;
                    size_t ours = (((size_t)y * kw + x) * ci + i) * co + o;
                    if (to_torch) dst[torch] = src[ours];
                    else dst[ours] = src[torch];
                }
}

static void transpose(const float *src, float *dst, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

void nn_param_from_torch(const struct nn_param *p, const float *src, float *dst)
{
    if (p->kind == NN_PARAM_CONV_W) conv_layout(p, src, dst, false);
    else if (p->kind == NN_PARAM_FC_W) transpose(src, dst, p->shape[1], p->shape[0]);
    else memcpy(dst, src, p->count * sizeof(float));
}

void nn_param_to_torch(const struct nn_param *p, const float *src, float *dst)
{
    if (p->kind == NN_PARAM_CONV_W) conv_layout(p, src, dst, true);
    else if (p->kind == NN_PARAM_FC_W) transpose(src, dst, p->shape[0], p->shape[1]);
    else memcpy(dst, src, p->count * sizeof(float));
}

int nn_params_find_sibling(const struct nn_params *t, const char *name, const char *suffix)
{
    const char *dot = strrchr(name, '.');
    int stem = dot ? (int)(dot - name) + 1 : 0;
    char full[2 * NN_PARAM_NAME_MAX];
    if (snprintf(full, sizeof full, "%.*s%s", stem, name, suffix) >= (int)sizeof full) return -1;
    return nn_params_find(t, full);
}
