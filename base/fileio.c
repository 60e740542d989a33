#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum nn_status nn_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return nn_fail(NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(fp);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                fclose(fp);
                return nn_fail(NN_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap * 2);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        return nn_fail(NN_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return NN_OK;
}

enum nn_status nn_atomic_open(struct nn_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp_path = malloc(n + 16);
    if (!af->path || !af->tmp_path) {
        nn_atomic_abort(af);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        enum nn_status st = nn_fail(NN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(af->tmp_path);
        af->tmp_path = NULL;
        nn_atomic_abort(af);
        return st;
    }
    fchmod(fd, 0644);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        nn_atomic_abort(af);
        return nn_fail(NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    return NN_OK;
}

static void release(struct nn_atomic_file *af)
{
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

void nn_atomic_abort(struct nn_atomic_file *af)
{
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    release(af);
}

static void fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

enum nn_status nn_atomic_commit(struct nn_atomic_file *af)
{
    if (!af->fp) {
        nn_atomic_abort(af);
        return nn_fail(NN_ERR_ARG, "atomic file not open");
    }
    if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0) {
        enum nn_status st = nn_fail(NN_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
        nn_atomic_abort(af);
        return st;
    }
    int rc = fclose(af->fp);
    af->fp = NULL;
    if (rc != 0 || rename(af->tmp_path, af->path) != 0) {
        enum nn_status st = nn_fail(NN_ERR_IO, "%s: cannot finish writing: %s", af->path, strerror(errno));
        nn_atomic_abort(af);
        return st;
    }
    fsync_dir(af->path);
    release(af);
    return NN_OK;
}

enum nn_status nn_write_all(struct nn_atomic_file *af, const void *data, size_t len)
{
    if (len && fwrite(data, 1, len, af->fp) != len)
        return nn_fail(NN_ERR_IO, "%s: write failed: %s", af->path, strerror(errno));
    return NN_OK;
}

enum nn_status nn_map_file(const char *path, struct nn_mapped_file *m)
{
    m->data = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nn_fail(NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return nn_fail(NN_ERR_IO, "%s: not a readable regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return NN_OK;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (p == MAP_FAILED) return nn_fail(NN_ERR_IO, "%s: cannot map: %s", path, strerror(map_errno));
    m->data = p;
    m->len = (size_t)sb.st_size;
    return NN_OK;
}

void nn_unmap_file(struct nn_mapped_file *m)
{
    if (m->data) munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}
