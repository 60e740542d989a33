/* Status codes and the per-thread error message.
 *
 * Every fallible library function returns an enum nn_status. When it fails it
 * also records a human-readable message (naming the file, tensor or argument
 * at fault) that the caller can fetch with nn_last_error(); the library never
 * prints it itself, the CLI does. */
#ifndef NN_BASE_STATUS_H
#define NN_BASE_STATUS_H

enum nn_status {
    NN_OK = 0,
    NN_ERR_ARG,         /* NULL pointer, zero or negative size, bad option */
    NN_ERR_SHAPE,       /* tensor shapes do not fit together */
    NN_ERR_NOMEM,       /* an allocation failed */
    NN_ERR_IO,          /* open/read/write/rename failed (errno in message) */
    NN_ERR_FORMAT,      /* a file is not what it claims to be */
    NN_ERR_CORRUPT,     /* checksum mismatch or truncated data */
    NN_ERR_UNSUPPORTED, /* valid input that nn does not handle */
    NN_ERR_NOT_FOUND,   /* a named item (tensor, class, file) is missing */
    NN_ERR_INTERNAL,    /* a bug in nn */
    NN_ERR_CANCELLED    /* the caller asked a long operation to stop (it stopped cleanly) */
};

/* Short constant name of a status, e.g. "corrupt data". */
const char *nn_status_str(enum nn_status st);

/* Records a formatted message for the calling thread and returns `st`, so a
 * failure site reads: return nn_fail(NN_ERR_FORMAT, "%s: bad magic", path); */
enum nn_status nn_fail(enum nn_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Message of the last nn_fail() on this thread ("" if none). */
const char *nn_last_error(void);

/* Clears the calling thread's message. */
void nn_clear_error(void);

/* Propagates a failure: evaluates `expr` once and returns its status if not NN_OK. */
#define NN_TRY(expr)                                                    \
    do {                                                                \
        enum nn_status nn_try_st_ = (expr);                             \
        if (nn_try_st_ != NN_OK) return nn_try_st_;                     \
    } while (0)

#endif
