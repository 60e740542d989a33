#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/sort.h"
#include "io/half.h"
#include "io/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and is used in place: a big-endian port needs byte swaps here"
#endif

struct nn_safetensors {
    struct nn_mapped_file file; /* tensor data points into it */
    struct nn_json *header;     /* owns the tensor names */
    int count;
    struct nn_st_tensor *tensors;
    int *by_name;               /* indices sorted by name, for nn_safetensors_find */
};

/* nn_fail formats into the buffer nn_last_error() returns, so a message that
 * wraps the previous one must copy it first. */
static enum nn_status wrap_error(enum nn_status st, const char *path, const char *what)
{
    char inner[512];
    snprintf(inner, sizeof inner, "%s", nn_last_error());
    return nn_fail(st, "%s: %s: %s", path, what, inner);
}

static int dtype_size(enum nn_dtype dt) { return dt == NN_DTYPE_F32 ? 4 : 2; }

static bool dtype_from_name(const char *s, enum nn_dtype *out)
{
    if (!strcmp(s, "F32")) *out = NN_DTYPE_F32;
    else if (!strcmp(s, "F16")) *out = NN_DTYPE_F16;
    else if (!strcmp(s, "BF16")) *out = NN_DTYPE_BF16;
    else return false;
    return true;
}

/* Checks one header entry against the data area [0, data_len). */
static enum nn_status parse_entry(const char *path, const char *name, const struct nn_json *e, const char *data,
                                  uint64_t data_len, struct nn_st_tensor *t)
{
    t->name = name;
    if (nn_json_type(e) != NN_JSON_OBJECT)
        return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    const char *dt = nn_json_string(nn_json_get(e, "dtype"));
    if (!dt) return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': no \"dtype\" string", path, name);
    if (!dtype_from_name(dt, &t->dtype))
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %.32s; nn reads F32, F16 and BF16", path, name,
                       dt);

    const struct nn_json *shape = nn_json_get(e, "shape");
    if (nn_json_type(shape) != NN_JSON_ARRAY)
        return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': no \"shape\" array", path, name);
    size_t nd = nn_json_len(shape);
    if (nd > NN_NPY_MAX_DIMS)
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (at most %d)", path, name, nd,
                       NN_NPY_MAX_DIMS);
    t->ndim = (int)nd;
    /* The product is bounded by the data size, so it cannot overflow. */
    uint64_t count = 1;
    bool too_big = false;
    for (size_t i = 0; i < nd; i++) {
        int64_t d;
        if (!nn_json_int(nn_json_at(shape, i), &d) || d < 0)
            return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        t->shape[i] = d;
        if (d != 0 && count > data_len / (uint64_t)d) too_big = true;
        else count *= (uint64_t)d;
    }
    for (size_t i = 0; i < nd; i++)
        if (t->shape[i] == 0) too_big = false, count = 0;

    const struct nn_json *offs = nn_json_get(e, "data_offsets");
    int64_t begin, end;
    if (nn_json_type(offs) != NN_JSON_ARRAY || nn_json_len(offs) != 2 || !nn_json_int(nn_json_at(offs, 0), &begin) ||
        !nn_json_int(nn_json_at(offs, 1), &end))
        return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not a pair of integers", path, name);
    if (begin < 0 || end < begin)
        return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': bad data_offsets [%lld, %lld]", path, name, (long long)begin,
                       (long long)end);
    if ((uint64_t)end > data_len)
        return nn_fail(NN_ERR_CORRUPT,
                       "%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the data (%llu bytes): "
                       "truncated or corrupt file",
                       path, name, (long long)begin, (long long)end, (unsigned long long)data_len);
    uint64_t bytes = (uint64_t)(end - begin);
    if (too_big || count * (uint64_t)dtype_size(t->dtype) != bytes)
        return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': its shape needs %s%llu bytes of %s but data_offsets hold %llu",
                       path, name, too_big ? "more than " : "",
                       (unsigned long long)(too_big ? data_len : count * (uint64_t)dtype_size(t->dtype)), dt,
                       (unsigned long long)bytes);
    t->count = (int64_t)count;
    t->data = data + begin;
    return NN_OK;
}

/* Indices into the tensor table (ctx) by name. */
static int cmp_by_name(const void *a, const void *b, void *ctx)
{
    const struct nn_st_tensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static void sort_names(const struct nn_st_tensor *tensors, int *idx, int n)
{
    nn_sort(idx, (size_t)n, sizeof *idx, cmp_by_name, (void *)tensors);
}

static enum nn_status parse_header(const char *path, struct nn_safetensors *st)
{
    const unsigned char *b = st->file.data;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    uint64_t avail = st->file.len - 8;
    if (hlen > avail)
        return nn_fail(NN_ERR_FORMAT, "%s: header length %llu is larger than the file (%zu bytes): not a safetensors file?",
                       path, (unsigned long long)hlen, st->file.len);
    if (hlen < 2) return nn_fail(NN_ERR_FORMAT, "%s: header length %llu is too small", path, (unsigned long long)hlen);
    const char *text = (const char *)b + 8;
    if (text[0] != '{') return nn_fail(NN_ERR_FORMAT, "%s: header does not start with '{': not a safetensors file", path);
    enum nn_status s = nn_json_parse(text, (size_t)hlen, &st->header);
    if (s != NN_OK) return wrap_error(s, path, "bad header");
    if (nn_json_type(st->header) != NN_JSON_OBJECT)
        return nn_fail(NN_ERR_FORMAT, "%s: header is not a JSON object", path);

    size_t n = nn_json_len(st->header);
    if (n > (size_t)INT32_MAX) return nn_fail(NN_ERR_UNSUPPORTED, "%s: too many tensors", path);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    st->by_name = calloc(n ? n : 1, sizeof *st->by_name);
    if (!st->tensors || !st->by_name) return nn_fail(NN_ERR_NOMEM, "%s: out of memory for %zu tensors", path, n);
    const char *data = text + hlen;
    uint64_t data_len = avail - hlen;
    for (size_t i = 0; i < n; i++) {
        const char *name = nn_json_key(st->header, i);
        if (!strcmp(name, "__metadata__")) continue;
        NN_TRY(parse_entry(path, name, nn_json_at(st->header, i), data, data_len, &st->tensors[st->count]));
        st->by_name[st->count] = st->count;
        st->count++;
    }
    sort_names(st->tensors, st->by_name, st->count);
    for (int i = 1; i < st->count; i++)
        if (!strcmp(st->tensors[st->by_name[i - 1]].name, st->tensors[st->by_name[i]].name))
            return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                           st->tensors[st->by_name[i]].name);
    return NN_OK;
}

enum nn_status nn_safetensors_open(const char *path, struct nn_safetensors **out)
{
    if (!path || !out) return nn_fail(NN_ERR_ARG, "nn_safetensors_open: NULL argument");
    *out = NULL;
    struct nn_mapped_file file;
    NN_TRY(nn_map_file(path, &file));
    if (file.len < 10) {
        nn_unmap_file(&file);
        return nn_fail(NN_ERR_FORMAT, "%s: %zu bytes is too small for a safetensors file", path, file.len);
    }
    struct nn_safetensors *st = calloc(1, sizeof *st);
    if (!st) {
        nn_unmap_file(&file);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    }
    st->file = file;
    enum nn_status s = parse_header(path, st);
    if (s != NN_OK) {
        nn_safetensors_close(st);
        return s;
    }
    *out = st;
    return NN_OK;
}

void nn_safetensors_close(struct nn_safetensors *st)
{
    if (!st) return;
    nn_unmap_file(&st->file);
    nn_json_free(st->header);
    free(st->tensors);
    free(st->by_name);
    free(st);
}

int nn_safetensors_count(const struct nn_safetensors *st) { return st ? st->count : 0; }

const struct nn_st_tensor *nn_safetensors_at(const struct nn_safetensors *st, int index)
{
    if (!st || index < 0 || index >= st->count) return NULL;
    return &st->tensors[index];
}

const struct nn_st_tensor *nn_safetensors_find(const struct nn_safetensors *st, const char *name)
{
    if (!st || !name) return NULL;
    int lo = 0, hi = st->count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const struct nn_st_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

void nn_st_to_f32(const struct nn_st_tensor *t, float *dst)
{
    size_t n = (size_t)t->count;
    if (n == 0) return;
    switch (t->dtype) {
    case NN_DTYPE_F32: memcpy(dst, t->data, n * sizeof(float)); break;
    case NN_DTYPE_F16: nn_f16_to_f32_array(t->data, dst, n); break;
    case NN_DTYPE_BF16: nn_bf16_to_f32_array(t->data, dst, n); break;
    default: break;  /* open() admits no other dtype */
    }
}

static enum nn_status tensor_bytes(const char *path, const struct nn_st_tensor *t, uint64_t *bytes)
{
    if (!t->name || !*t->name) return nn_fail(NN_ERR_ARG, "%s: a tensor has no name", path);
    if (!strcmp(t->name, "__metadata__"))
        return nn_fail(NN_ERR_ARG, "%s: \"__metadata__\" is reserved, not a tensor name", path);
    if (t->dtype != NN_DTYPE_F32)
        return nn_fail(NN_ERR_ARG, "%s: tensor '%s': only float32 tensors can be written", path, t->name);
    if (t->ndim < 0 || t->ndim > NN_NPY_MAX_DIMS)
        return nn_fail(NN_ERR_ARG, "%s: tensor '%s': bad ndim %d", path, t->name, t->ndim);
    int64_t count = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return nn_fail(NN_ERR_ARG, "%s: tensor '%s': negative dimension", path, t->name);
        if (t->shape[i] && count > INT64_MAX / 4 / t->shape[i])
            return nn_fail(NN_ERR_ARG, "%s: tensor '%s': shape too large", path, t->name);
        count *= t->shape[i];
    }
    if (t->count != 0 && t->count != count)
        return nn_fail(NN_ERR_ARG, "%s: tensor '%s': count %lld does not match its shape (%lld)", path, t->name,
                       (long long)t->count, (long long)count);
    if (count > 0 && !t->data) return nn_fail(NN_ERR_ARG, "%s: tensor '%s': data is NULL", path, t->name);
    *bytes = (uint64_t)count * 4;
    return NN_OK;
}

enum nn_status nn_safetensors_write(const char *path, const struct nn_st_tensor *tensors, int count)
{
    if (!path || count < 0 || (count > 0 && !tensors)) return nn_fail(NN_ERR_ARG, "nn_safetensors_write: bad arguments");
    int *idx = malloc((size_t)(count ? count : 1) * sizeof *idx);
    if (!idx) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    struct nn_strbuf h;
    nn_strbuf_init(&h);
    enum nn_status s = NN_OK;
    uint64_t offset = 0;
    nn_strbuf_append(&h, "{", 1);
    for (int i = 0; i < count && s == NN_OK; i++) {
        const struct nn_st_tensor *t = &tensors[i];
        uint64_t bytes;
        s = tensor_bytes(path, t, &bytes);
        if (s != NN_OK) break;
        if (i) nn_strbuf_append(&h, ",", 1);
        nn_strbuf_json_string(&h, t->name);
        nn_strbuf_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) nn_strbuf_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        nn_strbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                         (unsigned long long)(offset + bytes));
        offset += bytes;
        idx[i] = i;
    }
    nn_strbuf_append(&h, "}", 1);
    if (s == NN_OK) {
        /* Readers may not accept a name twice; catch it here. */
        sort_names(tensors, idx, count);
        for (int i = 1; i < count; i++)
            if (!strcmp(tensors[idx[i - 1]].name, tensors[idx[i]].name)) {
                s = nn_fail(NN_ERR_ARG, "%s: tensor '%s' given twice", path, tensors[idx[i]].name);
                break;
            }
    }
    free(idx);
    /* Pad with spaces so the data starts 8-byte aligned, as the format advises. */
    while (s == NN_OK && (8 + h.len) % 8 != 0) nn_strbuf_append(&h, " ", 1);
    if (s == NN_OK && h.failed) s = nn_fail(NN_ERR_NOMEM, "%s: out of memory for the header", path);
    if (s != NN_OK) {
        nn_strbuf_free(&h);
        return s;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    struct nn_atomic_file af;
    s = nn_atomic_open(&af, path);
    if (s == NN_OK) s = nn_write_all(&af, len8, 8);
    if (s == NN_OK) s = nn_write_all(&af, h.data, h.len);
    for (int i = 0; i < count && s == NN_OK; i++) {
        uint64_t bytes = 0;
        tensor_bytes(path, &tensors[i], &bytes);
        s = nn_write_all(&af, tensors[i].data, (size_t)bytes);
    }
    nn_strbuf_free(&h);
    if (s != NN_OK) {
        nn_atomic_abort(&af);
        return s;
    }
    return nn_atomic_commit(&af);
}
