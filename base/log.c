#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>

static void log_stderr(enum nn_log_level level, const char *msg, void *user)
{
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "nn: %s: %s\n", names[level], msg);
}

static nn_log_fn log_fn = log_stderr;
static void *log_user;
static enum nn_log_level log_min = NN_LOG_WARN;

void nn_log_set(nn_log_fn fn, void *user, enum nn_log_level min_level)
{
    log_fn = fn ? fn : log_stderr;
    log_user = user;
    log_min = min_level;
}

void nn_log(enum nn_log_level level, const char *fmt, ...)
{
    if (level < log_min) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}
