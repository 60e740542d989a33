#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static void log_stderr(enum nn_log_level level, const char *msg, void *user)
{
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "nn: %s: %s\n", names[level], msg);
}

/* Any thread may log while another installs a callback: the callback and
 * its argument are read and written together under the lock, and the level
 * is also atomic so that a filtered message costs no lock. The callback
 * itself runs outside the lock (it may log, or install another). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static nn_log_fn log_fn = log_stderr;
static void *log_user;
static _Atomic int log_min = NN_LOG_WARN;

void nn_log_set(nn_log_fn fn, void *user, enum nn_log_level min_level)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn ? fn : log_stderr;
    log_user = user;
    atomic_store(&log_min, (int)min_level);
    pthread_mutex_unlock(&log_lock);
}

void nn_log(enum nn_log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load(&log_min)) return;
    pthread_mutex_lock(&log_lock);
    nn_log_fn fn = log_fn;
    void *user = log_user;
    int min = atomic_load(&log_min);
    pthread_mutex_unlock(&log_lock);
    if ((int)level < min) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(level, msg, user);
}
