#include "tools/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/status.h"
#include "io/json.h"

int cli_fail(void)
{
    const char *msg = nn_last_error();
    fprintf(stderr, "nn: error: %s\n", *msg ? msg : "unknown failure");
    return 1;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nn: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

int cli_usage(const char *usage, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "nn: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    fprintf(stderr, "%s", usage);
    return 2;
}

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return false;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return true;
    }
    if (arg[n] != '\0') return false;
    if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    return true;
}

bool cli_flag(char **argv, int i, const char *name) { return !strcmp(argv[i], name); }

bool cli_int(const char *s, int lo, int hi, int *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

bool cli_float(const char *s, float *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    /* strtof takes "inf" and "nan": no option of nn means either */
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

char **cli_split(const char *s, int *count)
{
    *count = 0;
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    char **list = calloc(n + 1, sizeof *list);
    char *copy = strdup(s);
    if (!list || !copy) {
        free(list);
        free(copy);
        return NULL;
    }
    int k = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (*tok && !(list[k] = strdup(tok))) {
            cli_list_free(list);
            free(copy);
            return NULL;
        }
        if (*tok) k++;
    }
    free(copy);
    *count = k;
    return list;
}

void cli_list_free(char **list)
{
    if (!list) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}

static void log_to_stderr(enum nn_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level >= NN_LOG_WARN) fprintf(stderr, "nn: %s: %s\n", level == NN_LOG_WARN ? "warning" : "error", msg);
    else fprintf(stderr, "nn: %s\n", msg);
}

void cli_log_setup(bool verbose) { nn_log_set(log_to_stderr, NULL, verbose ? NN_LOG_DEBUG : NN_LOG_INFO); }

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(struct cli_progress *p, const char *label, const char *unit)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->unit = unit;
    p->start = p->last = cli_now();
    p->tty = isatty(STDERR_FILENO);
}

static void format_eta(char *buf, size_t n, double seconds)
{
    if (seconds < 0 || seconds > 1e7) snprintf(buf, n, "--:--");
    else if (seconds >= 3600) snprintf(buf, n, "%d:%02d:%02d", (int)seconds / 3600, (int)seconds / 60 % 60, (int)seconds % 60);
    else snprintf(buf, n, "%02d:%02d", (int)seconds / 60, (int)seconds % 60);
}

static void draw(struct cli_progress *p, long done, long total, bool final)
{
    double now = cli_now(), elapsed = now - p->start;
    double rate = elapsed > 0 ? done / elapsed : 0;
    char eta[32];
    format_eta(eta, sizeof eta, rate > 0 && total > 0 ? (total - done) / rate : -1);
    if (p->tty) {
        int width = 30, filled = total > 0 ? (int)((double)done / total * width) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %ld/%ld %.1f %s/s ETA %s%s", p->label, bar, done, total, rate, p->unit, eta,
                final ? "\n" : "");
    } else {
        fprintf(stderr, "%s: %ld/%ld %s, %.1f %s/s, ETA %s\n", p->label, done, total, p->unit, rate, p->unit, eta);
    }
    fflush(stderr);
    p->last = now;
    p->drawn = true;
}

void cli_progress_update(struct cli_progress *p, long done, long total)
{
    double interval = p->tty ? 0.2 : 5.0;
    if (cli_now() - p->last >= interval) draw(p, done, total, false);
}

void cli_progress_finish(struct cli_progress *p, long done, long total)
{
    if (p->tty || p->drawn) draw(p, done, total, true);
}

char **cli_read_labels(const char *path, int *count)
{
    char *text = NULL;
    size_t len = 0;
    *count = 0;
    if (nn_read_file(path, &text, &len) != NN_OK) {
        cli_fail();
        return NULL;
    }
    int n = 0, cap = 16;
    char **names = calloc((size_t)cap + 1, sizeof *names);
    bool failed = names == NULL, oom = names == NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); !failed && line; line = strtok_r(NULL, "\r\n", &save)) {
        char *end = NULL;
        long id = strtol(line, &end, 10);
        if (end != line && *end == ':') {
            if (id != n) {
                cli_error("%s: id %ld where %d was expected (ids must count up from 0)", path, id, n);
                failed = true;
                break;
            }
            line = end + 1;
        }
        if (n == cap) {
            char **grown = realloc(names, ((size_t)cap * 2 + 1) * sizeof *names);
            if (!grown) {
                failed = oom = true;
                break;
            }
            names = grown;
            cap *= 2;
        }
        if (!nn_utf8_valid(line, strlen(line))) {
            /* said here, naming the file; the model would refuse it later without */
            cli_error("%s: the name of class %d is not valid UTF-8 text", path, n);
            failed = true;
            break;
        }
        names[n + 1] = NULL;
        if (!(names[n] = strdup(line))) failed = oom = true;
        else n++;
    }
    free(text);
    if (failed) {
        if (oom) cli_error("out of memory");
        cli_list_free(names);
        return NULL;
    }
    *count = n;
    return names;
}

long long cli_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}
