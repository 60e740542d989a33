#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/rng.h"

const char *shared_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("NN_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    return buf;
}

int have_shared(const char *test_name)
{
    struct stat sb;
    if (stat(shared_path("golden"), &sb) == 0 && S_ISDIR(sb.st_mode)) return 1;
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true")) ck_abort_msg("%s: ../shared is missing, and CI always has it", test_name);
    fprintf(stderr, "SKIP %s: ../shared not found (set NN_SHARED)\n", test_name);
    return 0;
}

const char *nn_bin(void)
{
    const char *bin = getenv("NN_BIN");
    return bin && *bin ? bin : "build/bin/nn";
}

char *make_temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/nn-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char *dir = mkdtemp(tmpl);
    ck_assert_msg(dir != NULL, "mkdtemp failed");
    return strdup(dir);
}

void rm_rf(const char *path)
{
    if (!path || !*path || !strcmp(path, "/")) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

int run_command(const char *cmdline, char **output)
{
    char *out_path = NULL;
    char cmd[8192];
    if (output) {
        *output = NULL;
        char tmpl[] = "/tmp/nn-test-out-XXXXXX";
        int fd = mkstemp(tmpl);
        if (fd < 0) return -1;
        out_path = strdup(tmpl);
        snprintf(cmd, sizeof cmd, "(%s) >'%s' 2>&1", cmdline, out_path);
        close(fd);
    } else {
        snprintf(cmd, sizeof cmd, "%s", cmdline);
    }
    int rc = system(cmd);
    if (output) {
        size_t len;
        if (nn_read_file(out_path, output, &len) != NN_OK) *output = NULL;
        unlink(out_path);
        free(out_path);
    }
    if (rc == -1) return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void fill_uniform(float *x, size_t n, float lo, float hi, unsigned seed)
{
    struct nn_rng r;
    nn_rng_seed(&r, seed, 7);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * nn_rng_uniform(&r);
}

double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        if (d < 0) d = -d;
        if (d > m) m = d;
    }
    return m;
}
