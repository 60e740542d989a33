#include "io/records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/fileio.h"

/* Layouts (docs/dataset-format.md):
 *   frame:   u64 len | u32 mask(crc(len bytes)) | payload[len] | u32 mask(crc(payload))
 *   payload: u8 version | u8 format | u16 path_len | i32 label | u32 height | u32 width
 *            | u32 data_len | path[path_len] | data[data_len]
 *   index:   "NNRECIDX" | u32 version | u32 flags | u64 count | u64 shard_bytes
 *            | u64 offsets[count] | u32 mask(crc(everything before)) */
#define PAYLOAD_HEADER 20
#define FRAME_HEADER 12
#define FRAME_OVERHEAD 16
#define INDEX_HEADER 32
static const char index_magic[8] = {'N', 'N', 'R', 'E', 'C', 'I', 'D', 'X'};

/* Refused when read: a length this large is garbage, not a photo. */
#define MAX_PAYLOAD ((uint64_t)1 << 31)

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

static uint32_t masked_crc(const void *data, size_t len) { return nn_crc32c_mask(nn_crc32c(0, data, len)); }

void nn_record_buf_free(struct nn_record_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

/* ---- payloads ---- */

size_t nn_record_payload_size(const struct nn_record *rec)
{
    return PAYLOAD_HEADER + (rec->path ? strlen(rec->path) : 0) + rec->data_len;
}

enum nn_status nn_record_payload_encode(const struct nn_record *rec, uint8_t *out)
{
    if (!rec->path || !rec->data || rec->data_len == 0)
        return nn_fail(NN_ERR_ARG, "record: path and image data are required");
    size_t path_len = strlen(rec->path);
    if (path_len == 0 || path_len > NN_RECORD_MAX_PATH)
        return nn_fail(NN_ERR_ARG, "%s: path length %zu is outside 1..%d", rec->path, path_len, NN_RECORD_MAX_PATH);
    if (rec->data_len >= MAX_PAYLOAD - PAYLOAD_HEADER - path_len)
        return nn_fail(NN_ERR_ARG, "%s: image of %zu bytes is too large for a record", rec->path, rec->data_len);
    if (rec->format != NN_RECORD_JPEG && rec->format != NN_RECORD_PNG)
        return nn_fail(NN_ERR_ARG, "%s: unknown image format code %d", rec->path, rec->format);
    if (rec->label < 0 || rec->height <= 0 || rec->width <= 0)
        return nn_fail(NN_ERR_ARG, "%s: bad label %d or size %dx%d", rec->path, (int)rec->label,
                       (int)rec->width, (int)rec->height);
    out[0] = NN_RECORD_VERSION;
    out[1] = (uint8_t)rec->format;
    put_u16(out + 2, (uint16_t)path_len);
    put_u32(out + 4, (uint32_t)rec->label);
    put_u32(out + 8, (uint32_t)rec->height);
    put_u32(out + 12, (uint32_t)rec->width);
    put_u32(out + 16, (uint32_t)rec->data_len);
    memcpy(out + PAYLOAD_HEADER, rec->path, path_len);
    memcpy(out + PAYLOAD_HEADER + path_len, rec->data, rec->data_len);
    return NN_OK;
}

enum nn_status nn_record_payload_decode(const uint8_t *payload, size_t len, const char *where,
                                        char path[NN_RECORD_MAX_PATH + 1], struct nn_record *rec)
{
    if (len < PAYLOAD_HEADER) return nn_fail(NN_ERR_FORMAT, "%s: payload of %zu bytes is too short", where, len);
    if (payload[0] != NN_RECORD_VERSION)
        return nn_fail(NN_ERR_FORMAT, "%s: record version %d, this nn reads version %d", where, payload[0],
                       NN_RECORD_VERSION);
    size_t path_len = get_u16(payload + 2);
    uint32_t label = get_u32(payload + 4), height = get_u32(payload + 8), width = get_u32(payload + 12);
    size_t data_len = get_u32(payload + 16);
    if (payload[1] != NN_RECORD_JPEG && payload[1] != NN_RECORD_PNG)
        return nn_fail(NN_ERR_FORMAT, "%s: unknown image format code %d", where, payload[1]);
    if (path_len == 0 || path_len > NN_RECORD_MAX_PATH || PAYLOAD_HEADER + path_len + data_len != len || data_len == 0)
        return nn_fail(NN_ERR_FORMAT, "%s: payload layout does not add up (path %zu + image %zu bytes in %zu)",
                       where, path_len, data_len, len);
    if (label > INT32_MAX || height == 0 || width == 0 || height > INT32_MAX || width > INT32_MAX)
        return nn_fail(NN_ERR_FORMAT, "%s: bad label %u or size %ux%u", where, label, width, height);
    memcpy(path, payload + PAYLOAD_HEADER, path_len);
    path[path_len] = '\0';
    rec->label = (int32_t)label;
    rec->height = (int32_t)height;
    rec->width = (int32_t)width;
    rec->format = payload[1];
    rec->path = path;
    rec->data = payload + PAYLOAD_HEADER + path_len;
    rec->data_len = data_len;
    return NN_OK;
}

/* ---- writing ---- */

struct nn_shard_writer {
    char *rec_path, *idx_path;   /* final names */
    char *rec_tmp, *idx_tmp;     /* temporary names, NULL once renamed or removed */
    FILE *fp;
    uint64_t *offsets;
    long count, cap;
    uint64_t pos;
    int finished, published;
    uint8_t *scratch;
    size_t scratch_cap;
};

/* Creates `final`.tmp.XXXXXX and returns its name in *tmp. */
static enum nn_status make_temp(const char *final, char **tmp, int *fd)
{
    size_t n = strlen(final) + 16;
    *tmp = malloc(n);
    if (!*tmp) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", final);
    snprintf(*tmp, n, "%s.tmp.XXXXXX", final);
    *fd = mkstemp(*tmp);
    if (*fd < 0) {
        enum nn_status st = nn_fail(NN_ERR_IO, "%s: cannot create: %s", final, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return st;
    }
    fchmod(*fd, 0644);
    return NN_OK;
}

static char *replace_ext(const char *path, const char *ext)
{
    size_t n = strlen(path);
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) n = (size_t)(dot - path);
    char *out = malloc(n + strlen(ext) + 1);
    if (!out) return NULL;
    memcpy(out, path, n);
    strcpy(out + n, ext);
    return out;
}

enum nn_status nn_shard_writer_open(const char *rec_path, struct nn_shard_writer **out)
{
    *out = NULL;
    struct nn_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", rec_path);
    w->rec_path = strdup(rec_path);
    w->idx_path = replace_ext(rec_path, ".idx");
    if (!w->rec_path || !w->idx_path) {
        nn_shard_writer_free(w);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", rec_path);
    }
    int fd;
    enum nn_status st = make_temp(w->rec_path, &w->rec_tmp, &fd);
    if (st != NN_OK) {
        nn_shard_writer_free(w);
        return st;
    }
    w->fp = fdopen(fd, "wb");
    if (!w->fp) {
        close(fd);
        st = nn_fail(NN_ERR_IO, "%s: cannot open: %s", w->rec_tmp, strerror(errno));
        nn_shard_writer_free(w);
        return st;
    }
    *out = w;
    return NN_OK;
}

long nn_shard_writer_count(const struct nn_shard_writer *w) { return w->count; }

enum nn_status nn_shard_writer_add(struct nn_shard_writer *w, const struct nn_record *rec)
{
    if (w->finished) return nn_fail(NN_ERR_ARG, "%s: shard already finished", w->rec_path);
    size_t len = nn_record_payload_size(rec);
    size_t need = FRAME_HEADER + len + 4;
    if (need > w->scratch_cap) {
        uint8_t *bigger = realloc(w->scratch, need);
        if (!bigger) return nn_fail(NN_ERR_NOMEM, "%s: out of memory for a %zu-byte record", w->rec_path, need);
        w->scratch = bigger;
        w->scratch_cap = need;
    }
    if (w->count == w->cap) {
        long cap = w->cap ? 2 * w->cap : 256;
        uint64_t *bigger = realloc(w->offsets, (size_t)cap * sizeof *bigger);
        if (!bigger) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", w->rec_path);
        w->offsets = bigger;
        w->cap = cap;
    }
    uint8_t *p = w->scratch;
    NN_TRY(nn_record_payload_encode(rec, p + FRAME_HEADER));
    put_u64(p, (uint64_t)len);
    put_u32(p + 8, masked_crc(p, 8));
    put_u32(p + FRAME_HEADER + len, masked_crc(p + FRAME_HEADER, len));
    if (fwrite(p, 1, need, w->fp) != need)
        return nn_fail(NN_ERR_IO, "%s: write failed: %s", w->rec_tmp, strerror(errno));
    w->offsets[w->count++] = w->pos;
    w->pos += need;
    return NN_OK;
}

static enum nn_status close_synced(FILE *fp, const char *name)
{
    int bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    int err = errno;
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) return nn_fail(NN_ERR_IO, "%s: write failed: %s", name, strerror(err));
    return NN_OK;
}

enum nn_status nn_shard_writer_finish(struct nn_shard_writer *w)
{
    if (w->finished) return NN_OK;
    FILE *fp = w->fp;
    w->fp = NULL;
    NN_TRY(close_synced(fp, w->rec_tmp));

    size_t len = INDEX_HEADER + 8 * (size_t)w->count + 4;
    uint8_t *idx = malloc(len);
    if (!idx) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", w->idx_path);
    memcpy(idx, index_magic, 8);
    put_u32(idx + 8, NN_RECORD_INDEX_VERSION);
    put_u32(idx + 12, 0);
    put_u64(idx + 16, (uint64_t)w->count);
    put_u64(idx + 24, w->pos);
    for (long i = 0; i < w->count; i++) put_u64(idx + INDEX_HEADER + 8 * i, w->offsets[i]);
    put_u32(idx + len - 4, masked_crc(idx, len - 4));

    int fd;
    enum nn_status st = make_temp(w->idx_path, &w->idx_tmp, &fd);
    if (st == NN_OK) {
        fp = fdopen(fd, "wb");
        if (!fp) {
            close(fd);
            st = nn_fail(NN_ERR_IO, "%s: cannot open: %s", w->idx_tmp, strerror(errno));
        } else if (fwrite(idx, 1, len, fp) != len) {
            st = nn_fail(NN_ERR_IO, "%s: write failed: %s", w->idx_tmp, strerror(errno));
            fclose(fp);
        } else {
            st = close_synced(fp, w->idx_tmp);
        }
    }
    free(idx);
    if (st == NN_OK) w->finished = 1;
    return st;
}

enum nn_status nn_shard_writer_publish(struct nn_shard_writer *w)
{
    if (!w->finished) return nn_fail(NN_ERR_ARG, "%s: shard published before it was finished", w->rec_path);
    if (w->published) return NN_OK;
    if (rename(w->idx_tmp, w->idx_path) != 0)
        return nn_fail(NN_ERR_IO, "%s: cannot rename into place: %s", w->idx_path, strerror(errno));
    free(w->idx_tmp);
    w->idx_tmp = NULL;
    if (rename(w->rec_tmp, w->rec_path) != 0)
        return nn_fail(NN_ERR_IO, "%s: cannot rename into place: %s", w->rec_path, strerror(errno));
    free(w->rec_tmp);
    w->rec_tmp = NULL;
    w->published = 1;
    return NN_OK;
}

void nn_shard_writer_free(struct nn_shard_writer *w)
{
    if (!w) return;
    if (w->fp) fclose(w->fp);
    if (w->rec_tmp) unlink(w->rec_tmp);
    if (w->idx_tmp) unlink(w->idx_tmp);
    free(w->rec_tmp);
    free(w->idx_tmp);
    free(w->rec_path);
    free(w->idx_path);
    free(w->offsets);
    free(w->scratch);
    free(w);
}

/* ---- reading ---- */

struct nn_shard_reader {
    char *path;
    const char *name;   /* into path */
    int fd;
    long count;
    uint64_t size;
    uint64_t *offsets;  /* count + 1: the last is the shard size */
};

long nn_shard_reader_count(const struct nn_shard_reader *r) { return r->count; }
const char *nn_shard_reader_name(const struct nn_shard_reader *r) { return r->name; }

static enum nn_status read_index(struct nn_shard_reader *r, const char *idx_path)
{
    char *data;
    size_t len;
    NN_TRY(nn_read_file(idx_path, &data, &len));
    const uint8_t *p = (const uint8_t *)data;
    enum nn_status st = NN_OK;
    if (len < INDEX_HEADER + 4 || memcmp(p, index_magic, 8) != 0) {
        st = nn_fail(NN_ERR_FORMAT, "%s: not an nn record index", idx_path);
    } else if (get_u32(p + 8) != NN_RECORD_INDEX_VERSION) {
        st = nn_fail(NN_ERR_FORMAT, "%s: index version %u, this nn reads version %d", idx_path, get_u32(p + 8),
                     NN_RECORD_INDEX_VERSION);
    } else if (get_u64(p + 16) != (len - INDEX_HEADER - 4) / 8 || (len - INDEX_HEADER - 4) % 8 != 0) {
        st = nn_fail(NN_ERR_CORRUPT, "%s: index of %zu bytes cannot hold the %llu offsets it announces", idx_path,
                     len, (unsigned long long)get_u64(p + 16));
    } else if (get_u32(p + len - 4) != masked_crc(p, len - 4)) {
        st = nn_fail(NN_ERR_CORRUPT, "%s: index CRC mismatch", idx_path);
    }
    if (st == NN_OK) {
        r->count = (long)get_u64(p + 16);
        r->size = get_u64(p + 24);
        r->offsets = malloc(((size_t)r->count + 1) * sizeof *r->offsets);
        if (!r->offsets) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", idx_path);
    }
    for (long i = 0; st == NN_OK && i < r->count; i++) {
        r->offsets[i] = get_u64(p + INDEX_HEADER + 8 * i);
        /* offsets[i] + FRAME_OVERHEAD > size would wrap for an offset near
         * 2^64 and pass: compare by subtraction, offsets[i] <= size first.
         * Then offsets[i - 1] + FRAME_OVERHEAD <= size cannot wrap either. */
        uint64_t prev_end = i ? r->offsets[i - 1] + FRAME_OVERHEAD : 0;
        if (r->offsets[i] < prev_end || (i == 0 && r->offsets[0] != 0) || r->offsets[i] > r->size ||
            r->size - r->offsets[i] < FRAME_OVERHEAD)
            st = nn_fail(NN_ERR_CORRUPT, "%s: offset of record %ld is out of order or past the shard's end", idx_path, i);
    }
    if (st == NN_OK) {
        r->offsets[r->count] = r->size;
        if (r->count == 0 && r->size != 0)
            st = nn_fail(NN_ERR_CORRUPT, "%s: index lists no records for a shard of %llu bytes", idx_path,
                         (unsigned long long)r->size);
    }
    free(data);
    return st;
}

enum nn_status nn_shard_reader_open(const char *rec_path, struct nn_shard_reader **out)
{
    *out = NULL;
    struct nn_shard_reader *r = calloc(1, sizeof *r);
    if (!r) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", rec_path);
    r->fd = -1;
    r->path = strdup(rec_path);
    char *idx_path = replace_ext(rec_path, ".idx");
    if (!r->path || !idx_path) {
        free(idx_path);
        nn_shard_reader_close(r);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", rec_path);
    }
    const char *slash = strrchr(r->path, '/');
    r->name = slash ? slash + 1 : r->path;

    enum nn_status st = read_index(r, idx_path);
    free(idx_path);
    if (st == NN_OK) {
        r->fd = open(rec_path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) st = nn_fail(NN_ERR_IO, "%s: cannot open: %s", rec_path, strerror(errno));
    }
    struct stat sb;
    if (st == NN_OK && fstat(r->fd, &sb) != 0) st = nn_fail(NN_ERR_IO, "%s: cannot stat: %s", rec_path, strerror(errno));
    if (st == NN_OK && (uint64_t)sb.st_size != r->size) {
        if ((uint64_t)sb.st_size < r->size)
            st = nn_fail(NN_ERR_CORRUPT, "%s: truncated: %lld bytes, its index expects %llu", rec_path,
                         (long long)sb.st_size, (unsigned long long)r->size);
        else
            st = nn_fail(NN_ERR_CORRUPT, "%s: %lld bytes, but its index expects %llu", rec_path,
                         (long long)sb.st_size, (unsigned long long)r->size);
    }
    if (st != NN_OK) {
        nn_shard_reader_close(r);
        return st;
    }
    *out = r;
    return NN_OK;
}

/* pread until `len` bytes are in or the file ends. */
static enum nn_status read_at(const struct nn_shard_reader *r, long rec, void *dst, size_t len, uint64_t offset)
{
    char *p = dst;
    while (len > 0) {
        ssize_t got = pread(r->fd, p, len, (off_t)offset);
        if (got < 0) {
            if (errno == EINTR) continue;
            return nn_fail(NN_ERR_IO, "%s: record %ld: read failed: %s", r->path, rec, strerror(errno));
        }
        if (got == 0) return nn_fail(NN_ERR_CORRUPT, "%s: record %ld: shard ends early (truncated)", r->path, rec);
        p += got;
        len -= (size_t)got;
        offset += (uint64_t)got;
    }
    return NN_OK;
}

enum nn_status nn_shard_reader_read(const struct nn_shard_reader *r, long i, struct nn_record_buf *buf,
                                    struct nn_record *rec)
{
    if (i < 0 || i >= r->count)
        return nn_fail(NN_ERR_ARG, "%s: record %ld out of range (the shard has %ld)", r->path, i, r->count);
    uint64_t start = r->offsets[i], span = r->offsets[i + 1] - start;
    uint8_t head[FRAME_HEADER];
    NN_TRY(read_at(r, i, head, sizeof head, start));
    if (get_u32(head + 8) != masked_crc(head, 8))
        return nn_fail(NN_ERR_CORRUPT, "%s: record %ld: length CRC mismatch (corrupt record header)", r->path, i);
    uint64_t len = get_u64(head);
    if (len > MAX_PAYLOAD || len + FRAME_OVERHEAD != span)
        return nn_fail(NN_ERR_CORRUPT, "%s: record %ld: length %llu does not match the index (%llu bytes)", r->path,
                       i, (unsigned long long)len, (unsigned long long)span);
    size_t need = (size_t)len + 4;
    if (need > buf->cap) {
        uint8_t *bigger = realloc(buf->data, need);
        if (!bigger) return nn_fail(NN_ERR_NOMEM, "%s: record %ld: out of memory", r->path, i);
        buf->data = bigger;
        buf->cap = need;
    }
    NN_TRY(read_at(r, i, buf->data, need, start + FRAME_HEADER));
    if (get_u32(buf->data + len) != masked_crc(buf->data, (size_t)len))
        return nn_fail(NN_ERR_CORRUPT, "%s: record %ld: payload CRC mismatch (corrupt data)", r->path, i);
    char where[4200];
    snprintf(where, sizeof where, "%s: record %ld", r->path, i);
    return nn_record_payload_decode(buf->data, (size_t)len, where, buf->path, rec);
}

void nn_shard_reader_close(struct nn_shard_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free(r->offsets);
    free(r->path);
    free(r);
}
