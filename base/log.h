/* Logging through a user callback. The library never writes to stdout; by
 * default warnings and errors go to stderr, and a program (the CLI, a server)
 * installs its own callback to route them elsewhere. */
#ifndef NN_BASE_LOG_H
#define NN_BASE_LOG_H

enum nn_log_level { NN_LOG_DEBUG, NN_LOG_INFO, NN_LOG_WARN, NN_LOG_ERROR };

typedef void (*nn_log_fn)(enum nn_log_level level, const char *msg, void *user);

/* Installs `fn` (NULL restores the stderr default) and the lowest level passed on.
 * Safe while other threads log; a message logged during the call may still
 * reach the previous callback. `fn` may be called from any thread at once. */
void nn_log_set(nn_log_fn fn, void *user, enum nn_log_level min_level);

void nn_log(enum nn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define nn_debug(...) nn_log(NN_LOG_DEBUG, __VA_ARGS__)
#define nn_info(...) nn_log(NN_LOG_INFO, __VA_ARGS__)
#define nn_warn(...) nn_log(NN_LOG_WARN, __VA_ARGS__)

#endif
