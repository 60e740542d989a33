#include "io/npy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nn reads and writes little-endian files by copying bytes: a big-endian port needs byte swaps here"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* The header is a Python dict literal, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * parsed by this small scanner rather than trusted. */
struct dict_scan {
    const char *s;
    size_t len, pos;
    const char *path;
};

static void dict_ws(struct dict_scan *d)
{
    while (d->pos < d->len && (d->s[d->pos] == ' ' || d->s[d->pos] == '\t' || d->s[d->pos] == '\n'))
        d->pos++;
}

static bool dict_eat(struct dict_scan *d, char c)
{
    dict_ws(d);
    if (d->pos < d->len && d->s[d->pos] == c) {
        d->pos++;
        return true;
    }
    return false;
}

static enum nn_status dict_bad(const struct dict_scan *d, const char *what)
{
    return nn_fail(NN_ERR_FORMAT, "%s: .npy header: %s at header byte %zu", d->path, what, d->pos);
}

/* A quoted Python string without escapes (npy keys and descrs have none). */
static enum nn_status dict_string(struct dict_scan *d, char *out, size_t cap)
{
    dict_ws(d);
    if (d->pos >= d->len || (d->s[d->pos] != '\'' && d->s[d->pos] != '"')) return dict_bad(d, "expected a string");
    char q = d->s[d->pos++];
    size_t n = 0;
    while (d->pos < d->len && d->s[d->pos] != q) {
        if (d->s[d->pos] == '\\' || n + 1 >= cap) return dict_bad(d, "unexpected string");
        out[n++] = d->s[d->pos++];
    }
    if (d->pos >= d->len) return dict_bad(d, "unterminated string");
    d->pos++;
    out[n] = '\0';
    return NN_OK;
}

static enum nn_status dict_shape(struct dict_scan *d, struct nn_npy *out)
{
    if (!dict_eat(d, '(')) return dict_bad(d, "expected a shape tuple");
    out->ndim = 0;
    for (;;) {
        if (dict_eat(d, ')')) return NN_OK;
        dict_ws(d);
        if (d->pos >= d->len || d->s[d->pos] < '0' || d->s[d->pos] > '9') return dict_bad(d, "expected a dimension");
        int64_t v = 0;
        while (d->pos < d->len && d->s[d->pos] >= '0' && d->s[d->pos] <= '9') {
            if (v > (INT64_MAX - 9) / 10) return dict_bad(d, "dimension too large");
            v = v * 10 + (d->s[d->pos++] - '0');
        }
        if (d->pos < d->len && d->s[d->pos] == 'L') d->pos++;  /* Python 2 long */
        if (out->ndim == NN_NPY_MAX_DIMS)
            return nn_fail(NN_ERR_UNSUPPORTED, "%s: .npy array has more than %d dimensions", d->path,
                           NN_NPY_MAX_DIMS);
        out->shape[out->ndim++] = v;
        if (dict_eat(d, ',')) continue;
        if (dict_eat(d, ')')) return NN_OK;
        return dict_bad(d, "expected ',' or ')' in the shape");
    }
}

static enum nn_status parse_header(const char *path, const char *h, size_t len, struct nn_npy *out)
{
    struct dict_scan d = {h, len, 0, path};
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    char descr[32] = "";
    if (!dict_eat(&d, '{')) return dict_bad(&d, "expected '{'");
    while (!dict_eat(&d, '}')) {
        char key[32];
        NN_TRY(dict_string(&d, key, sizeof key));
        if (!dict_eat(&d, ':')) return dict_bad(&d, "expected ':'");
        if (!strcmp(key, "descr") && !have_descr) {
            dict_ws(&d);
            if (d.pos < d.len && d.s[d.pos] == '[')
                return nn_fail(NN_ERR_UNSUPPORTED, "%s: structured .npy dtypes are not supported (only '<f4' and '<i4')",
                               path);
            NN_TRY(dict_string(&d, descr, sizeof descr));
            have_descr = true;
        } else if (!strcmp(key, "fortran_order") && !have_order) {
            dict_ws(&d);
            if (d.len - d.pos >= 4 && !memcmp(d.s + d.pos, "True", 4)) {
                fortran = true;
                d.pos += 4;
            } else if (d.len - d.pos >= 5 && !memcmp(d.s + d.pos, "False", 5)) {
                d.pos += 5;
            } else {
                return dict_bad(&d, "fortran_order is not True or False");
            }
            have_order = true;
        } else if (!strcmp(key, "shape") && !have_shape) {
            NN_TRY(dict_shape(&d, out));
            have_shape = true;
        } else {
            return nn_fail(NN_ERR_FORMAT, "%s: .npy header has an unexpected or repeated key '%s'", path, key);
        }
        if (!dict_eat(&d, ',')) {
            if (!dict_eat(&d, '}')) return dict_bad(&d, "expected ',' or '}'");
            break;
        }
    }
    dict_ws(&d);
    if (d.pos != d.len) return dict_bad(&d, "unexpected text after the dict");
    if (!have_descr || !have_order || !have_shape)
        return nn_fail(NN_ERR_FORMAT, "%s: .npy header lacks '%s'", path,
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (descr[0] == '>' && (!strcmp(descr + 1, "f4") || !strcmp(descr + 1, "i4")))
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: big-endian data ('%s') is not supported; save it little-endian ('<%s')",
                       path, descr, descr + 1);
    if (!strcmp(descr, "<f4")) out->dtype = NN_DTYPE_F32;
    else if (!strcmp(descr, "<i4")) out->dtype = NN_DTYPE_I32;
    else
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: dtype '%s' is not supported (only '<f4' float32 and '<i4' int32)",
                       path, descr);
    if (fortran)
        return nn_fail(NN_ERR_UNSUPPORTED,
                       "%s: Fortran-order arrays are not supported; save with np.ascontiguousarray", path);
    return NN_OK;
}

static enum nn_status read_exact(FILE *fp, const char *path, void *buf, size_t n, const char *what)
{
    size_t got = fread(buf, 1, n, fp);
    if (got == n) return NN_OK;
    if (ferror(fp)) return nn_fail(NN_ERR_IO, "%s: read error: %s", path, strerror(errno));
    return nn_fail(NN_ERR_CORRUPT, "%s: truncated: %s needs %zu bytes, only %zu left", path, what, n, got);
}

static enum nn_status read_fp(FILE *fp, const char *path, struct nn_npy *out)
{
    unsigned char pre[10];
    size_t got = fread(pre, 1, 8, fp);
    if (ferror(fp)) return nn_fail(NN_ERR_IO, "%s: read error: %s", path, strerror(errno));
    if (got < 6 || memcmp(pre, npy_magic, 6) != 0)
        return nn_fail(NN_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
    if (got < 8) return nn_fail(NN_ERR_CORRUPT, "%s: truncated: the .npy preamble is cut short", path);
    unsigned major = pre[6], minor = pre[7];
    size_t hlen, pre_len;
    if (major == 1) {
        NN_TRY(read_exact(fp, path, pre + 8, 2, "the header length"));
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        pre_len = 10;
    } else if (major == 2 || major == 3) {  /* 3.0 only allows UTF-8 in the header: same layout */
        unsigned char l[4];
        NN_TRY(read_exact(fp, path, l, 4, "the header length"));
        hlen = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
        pre_len = 12;
    } else {
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: .npy format version %u.%u is not supported (1.0 to 3.0)", path, major,
                       minor);
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) return nn_fail(NN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return nn_fail(NN_ERR_IO, "%s: not a regular file", path);
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < pre_len) return nn_fail(NN_ERR_IO, "%s: the file shrank while being read", path);
    if (hlen > fsize - pre_len)
        return nn_fail(NN_ERR_CORRUPT, "%s: truncated: header of %zu bytes, file has %llu", path, hlen,
                       (unsigned long long)fsize);
    char *h = malloc(hlen + 1);
    if (!h) return nn_fail(NN_ERR_NOMEM, "%s: out of memory for a %zu-byte header", path, hlen);
    enum nn_status st = read_exact(fp, path, h, hlen, "the header");
    if (st == NN_OK) {
        h[hlen] = '\0';
        st = parse_header(path, h, hlen, out);
    }
    free(h);
    if (st != NN_OK) return st;

    int64_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        if (out->shape[i] != 0 && count > INT64_MAX / 4 / out->shape[i])
            return nn_fail(NN_ERR_FORMAT, "%s: .npy shape is too large", path);
        count *= out->shape[i];
    }
    out->count = count;
    uint64_t need = (uint64_t)count * 4, have = fsize - pre_len - hlen;
    if (have < need)
        return nn_fail(NN_ERR_CORRUPT, "%s: truncated: expected %llu data bytes, file has %llu", path,
                       (unsigned long long)need, (unsigned long long)have);
    if (have > need)
        nn_warn("%s: %llu unexpected bytes after the array data (ignored)", path,
                (unsigned long long)(have - need));
    if (need > SIZE_MAX) return nn_fail(NN_ERR_NOMEM, "%s: array too large for this machine", path);
    if (need == 0) return NN_OK;
    out->data = nn_alloc((size_t)need);
    if (!out->data)
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory for %llu bytes", path, (unsigned long long)need);
    return read_exact(fp, path, out->data, (size_t)need, "the array data");
}

enum nn_status nn_npy_read(const char *path, struct nn_npy *out)
{
    if (!path || !out) return nn_fail(NN_ERR_ARG, "nn_npy_read: NULL argument");
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return nn_fail(NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    enum nn_status st = read_fp(fp, path, out);
    fclose(fp);
    if (st != NN_OK) nn_npy_free(out);
    return st;
}

void nn_npy_free(struct nn_npy *a)
{
    if (!a) return;
    nn_free(a->data);
    memset(a, 0, sizeof *a);
}

enum nn_status nn_npy_write(const char *path, enum nn_dtype dtype, const int64_t *shape, int ndim,
                            const void *data)
{
    if (!path) return nn_fail(NN_ERR_ARG, "nn_npy_write: path is NULL");
    if (dtype != NN_DTYPE_F32 && dtype != NN_DTYPE_I32)
        return nn_fail(NN_ERR_ARG, "%s: .npy writing supports float32 and int32 only", path);
    if (ndim < 0 || ndim > NN_NPY_MAX_DIMS || (ndim > 0 && !shape))
        return nn_fail(NN_ERR_ARG, "%s: bad number of dimensions %d", path, ndim);
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return nn_fail(NN_ERR_ARG, "%s: negative dimension %lld", path, (long long)shape[i]);
        if (shape[i] != 0 && count > INT64_MAX / 4 / shape[i])
            return nn_fail(NN_ERR_ARG, "%s: shape too large", path);
        count *= shape[i];
    }
    if (count > 0 && !data) return nn_fail(NN_ERR_ARG, "%s: data is NULL", path);

    /* numpy's own layout: the dict, spaces, '\n', the whole preamble a
     * multiple of 64 bytes so the data starts aligned. */
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype == NN_DTYPE_F32 ? "<f4" : "<i4");
    for (int i = 0; i < ndim; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s", (long long)shape[i],
                      ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t total = ((10 + (size_t)n + 1 + 63) / 64) * 64;
    size_t hlen = total - 10;
    unsigned char header[512];
    memcpy(header, npy_magic, 6);
    header[6] = 1;
    header[7] = 0;
    header[8] = (unsigned char)(hlen & 0xff);
    header[9] = (unsigned char)(hlen >> 8);
    memcpy(header + 10, dict, (size_t)n);
    memset(header + 10 + n, ' ', hlen - (size_t)n - 1);
    header[total - 1] = '\n';

    struct nn_atomic_file af;
    NN_TRY(nn_atomic_open(&af, path));
    enum nn_status st = nn_write_all(&af, header, total);
    if (st == NN_OK) st = nn_write_all(&af, data, (size_t)count * 4);
    if (st != NN_OK) {
        nn_atomic_abort(&af);
        return st;
    }
    return nn_atomic_commit(&af);
}
