/* The library's layering, read from the sources: dependencies point one way,
 * tools/ -> train/ -> nn/ -> ops/, io/ -> base/, and only ops/ (nn's GEMM,
 * for its OpenBLAS comparison mode) may include BLAS. A header included
 * against the grain would make a lower layer drag in a higher one (base/
 * once included <cblas.h>, so every user of the thread pool needed BLAS).
 * Runs from the source tree's root, as `make test` does. */
#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

struct layer {
    const char *dir;
    const char *may_use; /* folders its #include "..." may name, space separated */
    bool blas;           /* may include <cblas.h> */
};

static const struct layer layers[] = {
    {"base", "base", false},
    {"ops", "base ops", true},
    {"io", "base io", false},
    {"nn", "base io ops nn", false},
    {"train", "base io ops nn train", false},
};

static bool allowed(const char *may_use, const char *folder, size_t len)
{
    for (const char *p = may_use; *p;) {
        size_t n = strcspn(p, " ");
        if (n == len && !strncmp(p, folder, len)) return true;
        p += n;
        p += strspn(p, " ");
    }
    return false;
}

/* Appends a line to `bad` for each include in `text` that `l` may not have. */
static void check_file(const struct layer *l, const char *name, const char *text, char *bad, size_t cap)
{
    for (const char *p = text; (p = strstr(p, "#include")) != NULL; p += 8) {
        const char *q = p + 8;
        q += strspn(q, " \t");
        size_t used = strlen(bad);
        if (*q == '<') {
            if (!strncmp(q, "<cblas.h>", 9) && !l->blas)
                snprintf(bad + used, cap - used, "%s/%s includes <cblas.h>\n", l->dir, name);
            continue;
        }
        if (*q != '"') continue;
        q++;
        size_t len = strcspn(q, "/\"");
        if (q[len] != '/') continue; /* a file of its own folder, by bare name */
        if (!allowed(l->may_use, q, len))
            snprintf(bad + used, cap - used, "%s/%s includes \"%.*s/...\"\n", l->dir, name, (int)len, q);
    }
}

START_TEST(includes_follow_the_layers)
{
    char bad[8192] = "";
    int files = 0;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const struct layer *l = &layers[i];
        DIR *d = opendir(l->dir);
        ck_assert_msg(d != NULL, "cannot open %s/ (run from the source tree's root)", l->dir);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h"))) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", l->dir, e->d_name);
            char *text;
            size_t len;
            ck_assert_msg(nn_read_file(path, &text, &len) == NN_OK, "%s", path);
            check_file(l, e->d_name, text, bad, sizeof bad);
            free(text);
            files++;
        }
        closedir(d);
    }
    ck_assert_int_gt(files, 20);
    ck_assert_msg(bad[0] == '\0', "includes against the layering:\n%s", bad);
}
END_TEST

Suite *suite_layers(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, includes_follow_the_layers);
    suite_add_tcase(s, tc);
    return s;
}
