#include "io/dataset_scan.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "io/dataset.h"
#include "io/json.h"
#include "io/records.h"

/* A sorted list of the names in one directory. */
struct names {
    char **v;
    long n;
};

static void names_free(struct names *nm)
{
    for (long i = 0; i < nm->n; i++) free(nm->v[i]);
    free(nm->v);
    nm->v = NULL;
    nm->n = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists `dir` except "." and "..", sorted by byte order so that every later
 * step (label ids, split draws, shard order) is independent of the file
 * system's order. */
static enum nn_status list_dir(const char *dir, struct names *out)
{
    out->v = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (!d) return nn_fail(NN_ERR_IO, "%s: cannot read directory: %s", dir, strerror(errno));
    long cap = 0;
    enum nn_status st = NN_OK;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(out->v, (size_t)cap * sizeof *bigger);
            if (!bigger) {
                st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
            out->v = bigger;
        }
        out->v[out->n] = strdup(de->d_name);
        if (!out->v[out->n]) {
            st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
            break;
        }
        out->n++;
    }
    if (st == NN_OK && errno != 0) st = nn_fail(NN_ERR_IO, "%s: cannot read directory: %s", dir, strerror(errno));
    closedir(d);
    if (st != NN_OK) {
        names_free(out);
        return st;
    }
    if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return NN_OK;
}

/* A printable copy of a name: bytes outside ASCII shown as \xNN. */
static char *escaped(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * n + 1), *p = out;
    if (!out) return NULL;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q >= 0x20 && *q < 0x7f)
            *p++ = (char)*q;
        else
            p += sprintf(p, "\\x%02x", *q);
    }
    *p = '\0';
    return out;
}

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *out = malloc(na + nb + 2);
    if (!out) return NULL;
    memcpy(out, a, na);
    out[na] = '/';
    memcpy(out + na + 1, b, nb + 1);
    return out;
}

void nn_scan_free(struct nn_scan *s)
{
    for (int c = 0; c < s->num_classes && s->classes; c++) free(s->classes[c]);
    free(s->classes);
    for (int f = 0; f < s->num_folders; f++) free(s->folders[f].rel);
    free(s->folders);
    for (long i = 0; i < s->n; i++) {
        free(s->e[i].rel);
        free(s->e[i].reason);
    }
    free(s->e);
    memset(s, 0, sizeof *s);
}

/* Takes ownership of rel and reason. */
static enum nn_status add_entry(struct nn_scan *s, int folder, char *rel, char *reason)
{
    if (!rel) {
        free(reason);
        return nn_fail(NN_ERR_NOMEM, "out of memory scanning the source");
    }
    if (s->n == s->cap) {
        long cap = s->cap ? 2 * s->cap : 256;
        struct nn_scan_entry *bigger = realloc(s->e, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            free(rel);
            free(reason);
            return nn_fail(NN_ERR_NOMEM, "out of memory scanning the source");
        }
        s->e = bigger;
        s->cap = cap;
    }
    struct nn_scan_folder *fo = &s->folders[folder];
    s->e[s->n++] = (struct nn_scan_entry){
        .rel = rel, .label = fo->label, .split = fo->split, .folder = folder, .reason = reason};
    fo->files++;
    return NN_OK;
}

static enum nn_status skip_entry(struct nn_scan *s, int folder, const char *rel, const char *why)
{
    return add_entry(s, folder, strdup(rel), strdup(why));
}

/* Adds every file under abs (relative name rel) to class folder `folder`. */
static enum nn_status walk(struct nn_scan *s, int folder, const char *abs, const char *rel)
{
    struct names nm;
    NN_TRY(list_dir(abs, &nm));
    enum nn_status st = NN_OK;
    for (long i = 0; st == NN_OK && i < nm.n; i++) {
        const char *name = nm.v[i];
        char *child_abs = join(abs, name), *child_rel = join(rel, name);
        if (!child_abs || !child_rel) {
            st = nn_fail(NN_ERR_NOMEM, "out of memory scanning %s", abs);
        } else if (name[0] == '.') {
            s->hidden++;
            nn_info("ignoring hidden %s", child_rel);
        } else if (!nn_utf8_valid(name, strlen(name))) {
            char *shown = escaped(child_rel);
            st = add_entry(s, folder, shown, strdup("file name is not valid UTF-8"));
        } else if (strlen(child_rel) > NN_RECORD_MAX_PATH) {
            st = skip_entry(s, folder, child_rel, "path is longer than 4096 bytes");
        } else {
            struct stat lsb, sb;
            if (lstat(child_abs, &lsb) != 0) {
                st = skip_entry(s, folder, child_rel, strerror(errno));
            } else if (S_ISLNK(lsb.st_mode)) {
                if (stat(child_abs, &sb) != 0)
                    st = skip_entry(s, folder, child_rel, "broken symbolic link");
                else if (S_ISDIR(sb.st_mode))
                    st = skip_entry(s, folder, child_rel,
                                    "symbolic link to a directory inside a class folder (not followed)");
                else if (!S_ISREG(sb.st_mode))
                    st = skip_entry(s, folder, child_rel, "not a regular file");
                else
                    st = add_entry(s, folder, child_rel, NULL), child_rel = NULL;
            } else if (S_ISDIR(lsb.st_mode)) {
                st = walk(s, folder, child_abs, child_rel);
            } else if (S_ISREG(lsb.st_mode)) {
                st = add_entry(s, folder, child_rel, NULL), child_rel = NULL;
            } else {
                st = skip_entry(s, folder, child_rel, "not a regular file");
            }
        }
        free(child_abs);
        free(child_rel);
    }
    names_free(&nm);
    return st;
}

/* The sub-directories (symlinks to directories included) of dir that are
 * not hidden: the class folders of a split, or the top level of a source.
 * Loose files there are reported and left out. */
static enum nn_status list_subdirs(struct nn_scan *s, const char *dir, struct names *out)
{
    struct names all;
    NN_TRY(list_dir(dir, &all));
    out->v = calloc((size_t)all.n + 1, sizeof *out->v);
    out->n = 0;
    if (!out->v) {
        names_free(&all);
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
    }
    enum nn_status st = NN_OK;
    for (long i = 0; st == NN_OK && i < all.n; i++) {
        char *path = join(dir, all.v[i]);
        struct stat sb;
        if (!path) {
            st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", dir);
        } else if (all.v[i][0] == '.') {
            s->hidden++;
            nn_info("ignoring hidden %s", path);
        } else if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            char *shown = escaped(path);
            nn_warn("ignoring %s: not inside a class folder", shown ? shown : path);
            free(shown);
        } else if (!nn_utf8_valid(all.v[i], strlen(all.v[i]))) {
            char *shown = escaped(path);
            st = nn_fail(NN_ERR_UNSUPPORTED, "%s: class folder name is not valid UTF-8; rename it",
                         shown ? shown : dir);
            free(shown);
        } else {
            out->v[out->n++] = all.v[i];
            all.v[i] = NULL;
        }
        free(path);
    }
    names_free(&all);
    if (st != NN_OK) names_free(out);
    return st;
}

static int has_name(const struct names *nm, const char *name)
{
    for (long i = 0; i < nm->n; i++)
        if (!strcmp(nm->v[i], name)) return 1;
    return 0;
}

static enum nn_status set_classes(struct nn_scan *s, const struct names *classes)
{
    s->classes = calloc((size_t)classes->n, sizeof *s->classes);
    if (!s->classes) return nn_fail(NN_ERR_NOMEM, "out of memory scanning the source");
    for (long c = 0; c < classes->n; c++) {
        s->classes[c] = strdup(classes->v[c]);
        if (!s->classes[c]) return nn_fail(NN_ERR_NOMEM, "out of memory scanning the source");
        s->num_classes = (int)c + 1;
    }
    return NN_OK;
}

/* Walks every class folder of one split directory (split_rel "" for a
 * source that is not split). */
static enum nn_status walk_split(struct nn_scan *s, const char *src, const char *split_rel, int split)
{
    for (int c = 0; c < s->num_classes; c++) {
        char *rel = *split_rel ? join(split_rel, s->classes[c]) : strdup(s->classes[c]);
        char *abs = rel ? join(src, rel) : NULL;
        if (!rel || !abs) {
            free(rel);
            free(abs);
            return nn_fail(NN_ERR_NOMEM, "out of memory scanning %s", src);
        }
        int f = s->num_folders++;
        s->folders[f] = (struct nn_scan_folder){.rel = rel, .label = c, .split = split};
        long hidden_before = s->hidden;
        enum nn_status st = walk(s, f, abs, rel);
        if (st == NN_OK && s->folders[f].files == 0)
            st = nn_fail(NN_ERR_NOT_FOUND,
                         "%s: class folder is empty%s; a class needs examples (remove the folder or add photos)", abs,
                         s->hidden > hidden_before ? " (only hidden files)" : "");
        free(abs);
        if (st != NN_OK) return st;
    }
    return NN_OK;
}

/* The class names of split folder `dir` must be exactly `want`. */
static enum nn_status same_classes(const char *src, const char *a, const struct names *want, const char *b,
                                   const struct names *got)
{
    for (long i = 0; i < want->n; i++)
        if (!has_name(got, want->v[i]))
            return nn_fail(NN_ERR_FORMAT, "%s: class '%s' has a folder in %s/ but not in %s/; both splits need the same classes",
                           src, want->v[i], a, b);
    for (long i = 0; i < got->n; i++)
        if (!has_name(want, got->v[i]))
            return nn_fail(NN_ERR_FORMAT, "%s: class '%s' has a folder in %s/ but not in %s/; both splits need the same classes",
                           src, got->v[i], b, a);
    return NN_OK;
}

static enum nn_status scan_split_source(struct nn_scan *s, const char *src, const struct names *top,
                                        const char *val_name)
{
    for (long i = 0; i < top->n; i++)
        if (strcmp(top->v[i], "train") && strcmp(top->v[i], val_name))
            nn_warn("ignoring %s/%s: the source is split into train/ and %s/, so other folders are not used", src,
                    top->v[i], val_name);
    char *train_dir = join(src, "train"), *val_dir = join(src, val_name);
    struct names train = {0}, val = {0};
    enum nn_status st = NN_OK;
    if (!train_dir || !val_dir) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", src);
    if (st == NN_OK) st = list_subdirs(s, train_dir, &train);
    if (st == NN_OK) st = list_subdirs(s, val_dir, &val);
    if (st == NN_OK && train.n == 0)
        st = nn_fail(NN_ERR_NOT_FOUND, "%s: no class folders (one subfolder per class expected)", train_dir);
    if (st == NN_OK) st = same_classes(src, "train", &train, val_name, &val);
    if (st == NN_OK) st = set_classes(s, &train);
    if (st == NN_OK) {
        s->folders = calloc(2 * (size_t)s->num_classes, sizeof *s->folders);
        if (!s->folders) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", src);
    }
    if (st == NN_OK) st = walk_split(s, src, "train", NN_SPLIT_TRAIN);
    if (st == NN_OK) st = walk_split(s, src, val_name, NN_SPLIT_VALIDATION);
    names_free(&train);
    names_free(&val);
    free(train_dir);
    free(val_dir);
    return st;
}

enum nn_status nn_scan_source(const char *src, struct nn_scan *s)
{
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(src, &sb) != 0) return nn_fail(NN_ERR_NOT_FOUND, "%s: source directory not found: %s", src, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return nn_fail(NN_ERR_ARG, "%s: source is not a directory", src);
    struct names top;
    NN_TRY(list_subdirs(s, src, &top));
    enum nn_status st = NN_OK;
    int has_val = has_name(&top, "val"), has_validation = has_name(&top, "validation");
    if (top.n == 0) {
        st = nn_fail(NN_ERR_NOT_FOUND, "%s: no class folders: the source needs one subfolder of photos per class", src);
    } else if (has_name(&top, "train") && has_val && has_validation) {
        st = nn_fail(NN_ERR_FORMAT, "%s: has both val/ and validation/; keep one of them", src);
    } else if (has_name(&top, "train") && (has_val || has_validation)) {
        s->presplit = 1;
        st = scan_split_source(s, src, &top, has_val ? "val" : "validation");
    } else {
        for (long i = 0; i < top.n; i++)
            if (!strcmp(top.v[i], "train") || !strcmp(top.v[i], "val") || !strcmp(top.v[i], "validation") ||
                !strcmp(top.v[i], "test"))
                nn_warn("%s/%s is taken as a class folder (a split source needs both train/ and validation/)", src,
                        top.v[i]);
        st = set_classes(s, &top);
        if (st == NN_OK) {
            s->folders = calloc((size_t)s->num_classes, sizeof *s->folders);
            if (!s->folders) st = nn_fail(NN_ERR_NOMEM, "%s: out of memory", src);
        }
        if (st == NN_OK) st = walk_split(s, src, "", -1);
    }
    names_free(&top);
    if (st != NN_OK) nn_scan_free(s);
    return st;
}
