/* The layout is documented byte by byte in docs/model-format.md; keep the
 * two in step. */
#include "io/modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/fileio.h"
#include "base/sort.h"
#include "io/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model data is little-endian float32 used in place: a big-endian port needs byte swaps here"
#endif

/* Version 2 adds the bfloat16 and int8 dtypes; files without them are
 * still written as version 1, byte for byte as before. */
#define MF_VERSION 2
#define MF_HEADER_SIZE 88
#define MF_DATA_ALIGN 64
#define MF_MAX_NAME 4096
/* The smallest table entry: name length, a 1-byte name, dtype, ndim, offset, length, CRC. */
#define MF_MIN_ENTRY (4 + 1 + 4 + 4 + 8 + 8 + 4)

static const char mf_magic[8] = {'N', 'N', 'M', 'O', 'D', 'E', 'L', '\0'};

/* Header field offsets. */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_FLAGS = 12,
    H_FILE_SIZE = 16,
    H_META_OFFSET = 24,
    H_META_LENGTH = 32,
    H_TABLE_OFFSET = 40,
    H_TABLE_LENGTH = 48,
    H_DATA_OFFSET = 56,
    H_TENSOR_COUNT = 64,
    H_META_CRC = 68,
    H_TABLE_CRC = 72,
    H_RESERVED = 76, /* 8 bytes, zero */
    H_HEADER_CRC = 84,
};

struct nn_modelfile {
    struct nn_mapped_file file; /* tensors point into it */
    const char *meta;
    int count;
    struct nn_mf_tensor *tensors;
    char *names;        /* all names, NUL-terminated, one block */
    int *by_name;       /* indices sorted by name */
};

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* True when [off, off + len) lies inside [0, size), without overflow. */
static bool in_bounds(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

/* Indices into the tensor table (ctx) by name. */
static int cmp_by_name(const void *a, const void *b, void *ctx)
{
    const struct nn_mf_tensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

/* Sorts idx[0..n) by tensor name; returns the index of a name that appears
 * twice, or -1. */
static int sort_names(const struct nn_mf_tensor *t, int *idx, int n)
{
    for (int i = 0; i < n; i++) idx[i] = i;
    nn_sort(idx, (size_t)n, sizeof *idx, cmp_by_name, (void *)t);
    for (int i = 1; i < n; i++)
        if (!strcmp(t[idx[i - 1]].name, t[idx[i]].name)) return idx[i];
    return -1;
}

int nn_mf_dtype_size(enum nn_mf_dtype dtype)
{
    switch (dtype) {
    case NN_MF_F32: return 4;
    case NN_MF_BF16: return 2;
    case NN_MF_I8: return 1;
    }
    return 4;
}

/* ---------- writing ---------- */

static enum nn_status check_tensor(const char *path, const struct nn_mf_tensor *t, uint64_t *bytes)
{
    if (!t->name || !*t->name) return nn_fail(NN_ERR_ARG, "%s: a tensor has no name", path);
    if (strlen(t->name) > MF_MAX_NAME)
        return nn_fail(NN_ERR_ARG, "%s: tensor name longer than %d bytes: %.40s...", path, MF_MAX_NAME, t->name);
    if (t->dtype != NN_MF_F32 && t->dtype != NN_MF_BF16 && t->dtype != NN_MF_I8)
        return nn_fail(NN_ERR_ARG, "%s: tensor '%s': unknown dtype %d", path, t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > NN_NPY_MAX_DIMS)
        return nn_fail(NN_ERR_ARG, "%s: tensor '%s': bad ndim %d", path, t->name, t->ndim);
    int64_t count = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return nn_fail(NN_ERR_ARG, "%s: tensor '%s': negative dimension", path, t->name);
        if (t->shape[i] && count > INT64_MAX / 4 / t->shape[i])
            return nn_fail(NN_ERR_ARG, "%s: tensor '%s': shape too large", path, t->name);
        count *= t->shape[i];
    }
    if (count > 0 && !t->data) return nn_fail(NN_ERR_ARG, "%s: tensor '%s': data is NULL", path, t->name);
    *bytes = (uint64_t)count * (uint64_t)nn_mf_dtype_size(t->dtype);
    return NN_OK;
}

struct layout {
    uint64_t meta_len, table_off, data_off, file_size;
    uint64_t *offsets, *bytes;
    uint32_t *crcs;
};

/* Builds the table (and the layout it records) in memory. */
static enum nn_status build_table(const char *path, const struct nn_mf_tensor *tensors, int count,
                                  struct layout *lay, struct nn_strbuf *table)
{
    uint64_t table_len = 0;
    for (int i = 0; i < count; i++) {
        NN_TRY(check_tensor(path, &tensors[i], &lay->bytes[i]));
        table_len += 4 + strlen(tensors[i].name) + 4 + 4 + 8 * (uint64_t)tensors[i].ndim + 8 + 8 + 4;
    }
    lay->table_off = align_up(MF_HEADER_SIZE + lay->meta_len, 8);
    uint64_t off = lay->data_off = align_up(lay->table_off + table_len, MF_DATA_ALIGN);
    for (int i = 0; i < count; i++) {
        off = align_up(off, MF_DATA_ALIGN);
        lay->offsets[i] = off;
        off += lay->bytes[i];
        /* The CRC is stored in the table, which precedes the data: compute
         * it now, in one extra pass over memory. */
        lay->crcs[i] = lay->bytes[i] ? nn_crc32c(0, tensors[i].data, (size_t)lay->bytes[i]) : 0;
    }
    lay->file_size = off;
    for (int i = 0; i < count; i++) {
        const struct nn_mf_tensor *t = &tensors[i];
        unsigned char fixed[8 + 8 * NN_NPY_MAX_DIMS + 8 + 8 + 4];
        uint32_t name_len = (uint32_t)strlen(t->name);
        put_u32(fixed, name_len);
        nn_strbuf_append(table, (const char *)fixed, 4);
        nn_strbuf_append(table, t->name, name_len);
        put_u32(fixed, (uint32_t)t->dtype);
        put_u32(fixed + 4, (uint32_t)t->ndim);
        size_t n = 8;
        for (int d = 0; d < t->ndim; d++, n += 8) put_u64(fixed + n, (uint64_t)t->shape[d]);
        put_u64(fixed + n, lay->offsets[i]);
        put_u64(fixed + n + 8, lay->bytes[i]);
        put_u32(fixed + n + 16, lay->crcs[i]);
        nn_strbuf_append(table, (const char *)fixed, n + 20);
    }
    if (table->failed) return nn_fail(NN_ERR_NOMEM, "%s: out of memory for the tensor table", path);
    if (table->len != table_len) return nn_fail(NN_ERR_INTERNAL, "%s: table size mismatch", path);
    return NN_OK;
}

static enum nn_status write_zeros(struct nn_atomic_file *af, uint64_t n)
{
    static const unsigned char zeros[MF_DATA_ALIGN];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        NN_TRY(nn_write_all(af, zeros, k));
        n -= k;
    }
    return NN_OK;
}

static enum nn_status write_file(const char *path, const char *meta, const struct nn_mf_tensor *tensors, int count,
                                 const struct layout *lay, const struct nn_strbuf *table)
{
    unsigned char h[MF_HEADER_SIZE] = {0};
    memcpy(h + H_MAGIC, mf_magic, 8);
    uint32_t version = 1;
    for (int i = 0; i < count; i++)
        if (tensors[i].dtype != NN_MF_F32) version = 2;
    put_u32(h + H_VERSION, version);
    put_u32(h + H_FLAGS, 0);
    put_u64(h + H_FILE_SIZE, lay->file_size);
    put_u64(h + H_META_OFFSET, MF_HEADER_SIZE);
    put_u64(h + H_META_LENGTH, lay->meta_len);
    put_u64(h + H_TABLE_OFFSET, lay->table_off);
    put_u64(h + H_TABLE_LENGTH, table->len);
    put_u64(h + H_DATA_OFFSET, lay->data_off);
    put_u32(h + H_TENSOR_COUNT, (uint32_t)count);
    put_u32(h + H_META_CRC, nn_crc32c(0, meta, (size_t)lay->meta_len));
    put_u32(h + H_TABLE_CRC, nn_crc32c(0, table->data, table->len));
    put_u32(h + H_HEADER_CRC, nn_crc32c(0, h, H_HEADER_CRC));

    struct nn_atomic_file af;
    NN_TRY(nn_atomic_open(&af, path));
    uint64_t pos = MF_HEADER_SIZE + lay->meta_len;
    enum nn_status st = nn_write_all(&af, h, sizeof h);
    if (st == NN_OK) st = nn_write_all(&af, meta, (size_t)lay->meta_len);
    if (st == NN_OK) st = write_zeros(&af, lay->table_off - pos);
    if (st == NN_OK) st = nn_write_all(&af, table->data, table->len);
    pos = lay->table_off + table->len;
    for (int i = 0; i < count && st == NN_OK; i++) {
        st = write_zeros(&af, lay->offsets[i] - pos);
        if (st == NN_OK) st = nn_write_all(&af, tensors[i].data, (size_t)lay->bytes[i]);
        pos = lay->offsets[i] + lay->bytes[i];
    }
    if (st == NN_OK) st = write_zeros(&af, lay->file_size - pos);
    if (st != NN_OK) {
        nn_atomic_abort(&af);
        return st;
    }
    return nn_atomic_commit(&af);
}

enum nn_status nn_modelfile_write(const char *path, const char *meta_json, const struct nn_mf_tensor *tensors,
                                  int count)
{
    if (!path) return nn_fail(NN_ERR_ARG, "nn_modelfile_write: path is NULL");
    if (count < 0 || (count > 0 && !tensors)) return nn_fail(NN_ERR_ARG, "%s: bad tensor list", path);
    const char *meta = meta_json ? meta_json : "{}";
    struct nn_json *j;
    enum nn_status st = nn_json_parse(meta, strlen(meta), &j);
    if (st != NN_OK) {
        char inner[512];
        snprintf(inner, sizeof inner, "%s", nn_last_error());
        return nn_fail(NN_ERR_ARG, "%s: metadata is not valid JSON: %s", path, inner);
    }
    bool is_object = nn_json_type(j) == NN_JSON_OBJECT;
    nn_json_free(j);
    if (!is_object) return nn_fail(NN_ERR_ARG, "%s: metadata is not a JSON object", path);

    struct layout lay = {.meta_len = strlen(meta) + 1};
    size_t n = (size_t)(count ? count : 1);
    lay.offsets = malloc(n * sizeof *lay.offsets);
    lay.bytes = malloc(n * sizeof *lay.bytes);
    lay.crcs = malloc(n * sizeof *lay.crcs);
    int *idx = malloc(n * sizeof *idx);
    struct nn_strbuf table;
    nn_strbuf_init(&table);
    if (!lay.offsets || !lay.bytes || !lay.crcs || !idx) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    if (st == NN_OK) st = build_table(path, tensors, count, &lay, &table);
    if (st == NN_OK) {
        int dup = sort_names(tensors, idx, count);
        if (dup >= 0) st = nn_fail(NN_ERR_ARG, "%s: tensor '%s' given twice", path, tensors[dup].name);
    }
    if (st == NN_OK) st = write_file(path, meta, tensors, count, &lay, &table);
    nn_strbuf_free(&table);
    free(lay.offsets);
    free(lay.bytes);
    free(lay.crcs);
    free(idx);
    return st;
}

/* ---------- reading ---------- */

/* A bounded cursor over the table: every read is checked. */
struct cursor {
    const unsigned char *p;
    uint64_t left;
};

static bool take(struct cursor *c, uint64_t n, const unsigned char **out)
{
    if (n > c->left) return false;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

static enum nn_status bad_table(const char *path, int i, const char *what)
{
    return nn_fail(NN_ERR_FORMAT, "%s: tensor table entry %d: %s", path, i, what);
}

static enum nn_status read_table(const char *path, struct nn_modelfile *mf, const unsigned char *base,
                                 uint64_t table_off, uint64_t table_len, uint64_t data_off, uint64_t file_size,
                                 uint32_t version)
{
    /* Each name needs its NUL; the table holds at least one byte per name
     * and names bytes, so table_len + count bounds the block. */
    mf->names = malloc((size_t)table_len + (size_t)mf->count + 1);
    mf->tensors = calloc((size_t)(mf->count ? mf->count : 1), sizeof *mf->tensors);
    mf->by_name = malloc((size_t)(mf->count ? mf->count : 1) * sizeof *mf->by_name);
    if (!mf->names || !mf->tensors || !mf->by_name)
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory for %d tensors", path, mf->count);
    struct cursor c = {base + table_off, table_len};
    char *names = mf->names;
    for (int i = 0; i < mf->count; i++) {
        struct nn_mf_tensor *t = &mf->tensors[i];
        const unsigned char *p;
        if (!take(&c, 4, &p)) return bad_table(path, i, "runs past the end of the table");
        uint32_t name_len = get_u32(p);
        if (name_len == 0 || name_len > MF_MAX_NAME) return bad_table(path, i, "bad name length");
        if (!take(&c, name_len, &p)) return bad_table(path, i, "name runs past the end of the table");
        if (memchr(p, '\0', name_len)) return bad_table(path, i, "name contains a NUL byte");
        memcpy(names, p, name_len);
        names[name_len] = '\0';
        t->name = names;
        names += name_len + 1;
        if (!take(&c, 8, &p)) return bad_table(path, i, "runs past the end of the table");
        uint32_t dtype = get_u32(p), ndim = get_u32(p + 4);
        if (dtype > (version >= 2 ? NN_MF_I8 : NN_MF_F32))
            return nn_fail(NN_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has dtype code %u; version %u files hold float32 (0)%s", path, t->name,
                           dtype, version, version >= 2 ? ", bfloat16 (1) and int8 (2)" : " only");
        t->dtype = (enum nn_mf_dtype)dtype;
        if (ndim > NN_NPY_MAX_DIMS)
            return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (at most %d)", path, t->name, ndim,
                           NN_NPY_MAX_DIMS);
        t->ndim = (int)ndim;
        if (!take(&c, 8 * (uint64_t)ndim + 20, &p)) return bad_table(path, i, "runs past the end of the table");
        /* The element count is bounded by the file size at every step, so
         * the product cannot overflow. */
        uint64_t count = 1;
        bool too_big = false, has_zero = false;
        for (uint32_t d = 0; d < ndim; d++) {
            uint64_t v = get_u64(p + 8 * d);
            if (v > (uint64_t)INT64_MAX)
                return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': dimension %u is too large", path, t->name, d);
            t->shape[d] = (int64_t)v;
            has_zero |= v == 0;
            if (v != 0 && count > file_size / v) too_big = true;
            else if (v != 0) count *= v;
        }
        if (has_zero) too_big = false, count = 0;
        p += 8 * (uint64_t)ndim;
        uint64_t off = get_u64(p), len = get_u64(p + 8);
        uint32_t crc = get_u32(p + 16);
        if (too_big || len != count * (uint64_t)nn_mf_dtype_size(t->dtype))
            return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': byte length %llu does not match its shape", path, t->name,
                           (unsigned long long)len);
        if (off % MF_DATA_ALIGN != 0 || off < data_off || !in_bounds(off, len, file_size))
            return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s': data at [%llu, +%llu) is misaligned or outside the data area",
                           path, t->name, (unsigned long long)off, (unsigned long long)len);
        if (nn_crc32c(0, base + off, (size_t)len) != crc)
            return nn_fail(NN_ERR_CORRUPT, "%s: CRC mismatch in tensor '%s': its data is corrupt", path, t->name);
        t->data = base + off;
    }
    if (c.left != 0)
        return nn_fail(NN_ERR_FORMAT, "%s: %llu unexplained bytes at the end of the tensor table", path,
                       (unsigned long long)c.left);
    int dup = sort_names(mf->tensors, mf->by_name, mf->count);
    if (dup >= 0) return nn_fail(NN_ERR_FORMAT, "%s: tensor '%s' appears twice", path, mf->tensors[dup].name);
    return NN_OK;
}

static enum nn_status check_file(const char *path, struct nn_modelfile *mf)
{
    const unsigned char *b = mf->file.data;
    uint64_t size = mf->file.len;
    if (size < 8 || memcmp(b, mf_magic, 8) != 0) {
        if (size < 8 && size > 0 && memcmp(b, mf_magic, (size_t)size) == 0)
            return nn_fail(NN_ERR_CORRUPT, "%s: truncated: the file has only %llu bytes", path,
                           (unsigned long long)size);
        return nn_fail(NN_ERR_FORMAT, "%s: not an nn model file (no NNMODEL magic)", path);
    }
    if (size < H_FLAGS)
        return nn_fail(NN_ERR_CORRUPT, "%s: truncated: the file has only %llu bytes", path, (unsigned long long)size);
    uint32_t version = get_u32(b + H_VERSION);
    if (version > MF_VERSION)
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: model file version %u is newer than this nn supports (%d)", path,
                       version, MF_VERSION);
    if (version == 0) return nn_fail(NN_ERR_FORMAT, "%s: model file version 0 is not valid", path);
    if (size < MF_HEADER_SIZE)
        return nn_fail(NN_ERR_CORRUPT, "%s: truncated: expected at least the %d-byte header, file has %llu bytes", path,
                       MF_HEADER_SIZE, (unsigned long long)size);
    if (nn_crc32c(0, b, H_HEADER_CRC) != get_u32(b + H_HEADER_CRC))
        return nn_fail(NN_ERR_CORRUPT, "%s: header CRC mismatch: the header is corrupt", path);
    uint64_t recorded = get_u64(b + H_FILE_SIZE);
    if (size < recorded)
        return nn_fail(NN_ERR_CORRUPT, "%s: truncated: expected %llu bytes, file has %llu", path,
                       (unsigned long long)recorded, (unsigned long long)size);
    if (size > recorded)
        return nn_fail(NN_ERR_CORRUPT, "%s: %llu unexpected bytes after the recorded end (%llu bytes)", path,
                       (unsigned long long)(size - recorded), (unsigned long long)recorded);
    uint32_t flags = get_u32(b + H_FLAGS);
    if (flags != 0)
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: header flags 0x%x are unknown to this nn", path, flags);

    uint64_t meta_off = get_u64(b + H_META_OFFSET), meta_len = get_u64(b + H_META_LENGTH);
    uint64_t table_off = get_u64(b + H_TABLE_OFFSET), table_len = get_u64(b + H_TABLE_LENGTH);
    uint64_t data_off = get_u64(b + H_DATA_OFFSET);
    uint32_t count = get_u32(b + H_TENSOR_COUNT);
    if (meta_off < MF_HEADER_SIZE || meta_len == 0 || !in_bounds(meta_off, meta_len, size))
        return nn_fail(NN_ERR_FORMAT, "%s: metadata block [%llu, +%llu) is outside the file", path,
                       (unsigned long long)meta_off, (unsigned long long)meta_len);
    if (table_off < meta_off + meta_len || !in_bounds(table_off, table_len, size))
        return nn_fail(NN_ERR_FORMAT, "%s: tensor table [%llu, +%llu) is outside the file", path,
                       (unsigned long long)table_off, (unsigned long long)table_len);
    if (data_off < table_off + table_len || data_off > size || data_off % MF_DATA_ALIGN != 0)
        return nn_fail(NN_ERR_FORMAT, "%s: bad data offset %llu", path, (unsigned long long)data_off);
    if (count > table_len / MF_MIN_ENTRY || count > (uint32_t)INT32_MAX)
        return nn_fail(NN_ERR_FORMAT, "%s: %u tensors cannot fit in a %llu-byte table", path, count,
                       (unsigned long long)table_len);

    const char *meta = (const char *)b + meta_off;
    if (nn_crc32c(0, meta, (size_t)meta_len) != get_u32(b + H_META_CRC))
        return nn_fail(NN_ERR_CORRUPT, "%s: metadata CRC mismatch: the metadata is corrupt", path);
    if (meta[meta_len - 1] != '\0' || strlen(meta) != meta_len - 1)
        return nn_fail(NN_ERR_FORMAT, "%s: metadata is not one NUL-terminated text", path);
    mf->meta = meta;
    if (nn_crc32c(0, b + table_off, (size_t)table_len) != get_u32(b + H_TABLE_CRC))
        return nn_fail(NN_ERR_CORRUPT, "%s: tensor table CRC mismatch: the table is corrupt", path);
    mf->count = (int)count;
    return read_table(path, mf, b, table_off, table_len, data_off, size, version);
}

enum nn_status nn_modelfile_open(const char *path, struct nn_modelfile **out)
{
    if (!path || !out) return nn_fail(NN_ERR_ARG, "nn_modelfile_open: NULL argument");
    *out = NULL;
    struct nn_mapped_file file;
    NN_TRY(nn_map_file(path, &file));
    if (file.len == 0) return nn_fail(NN_ERR_FORMAT, "%s: empty file, not an nn model file", path);
    struct nn_modelfile *mf = calloc(1, sizeof *mf);
    if (!mf) {
        nn_unmap_file(&file);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    }
    mf->file = file;
    enum nn_status st = check_file(path, mf);
    if (st != NN_OK) {
        nn_modelfile_close(mf);
        return st;
    }
    *out = mf;
    return NN_OK;
}

void nn_modelfile_close(struct nn_modelfile *mf)
{
    if (!mf) return;
    nn_unmap_file(&mf->file);
    free(mf->tensors);
    free(mf->names);
    free(mf->by_name);
    free(mf);
}

const char *nn_modelfile_meta(const struct nn_modelfile *mf) { return mf ? mf->meta : NULL; }

int nn_modelfile_count(const struct nn_modelfile *mf) { return mf ? mf->count : 0; }

const struct nn_mf_tensor *nn_modelfile_at(const struct nn_modelfile *mf, int index)
{
    if (!mf || index < 0 || index >= mf->count) return NULL;
    return &mf->tensors[index];
}

const struct nn_mf_tensor *nn_modelfile_find(const struct nn_modelfile *mf, const char *name)
{
    if (!mf || !name) return NULL;
    int lo = 0, hi = mf->count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const struct nn_mf_tensor *t = &mf->tensors[mf->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
