#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[8192];

const char *nn_status_str(enum nn_status st)
{
    switch (st) {
    case NN_OK: return "ok";
    case NN_ERR_ARG: return "invalid argument";
    case NN_ERR_SHAPE: return "shape mismatch";
    case NN_ERR_NOMEM: return "out of memory";
    case NN_ERR_IO: return "i/o error";
    case NN_ERR_FORMAT: return "bad format";
    case NN_ERR_CORRUPT: return "corrupt data";
    case NN_ERR_UNSUPPORTED: return "unsupported";
    case NN_ERR_NOT_FOUND: return "not found";
    case NN_ERR_INTERNAL: return "internal error";
    case NN_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

enum nn_status nn_fail(enum nn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

const char *nn_last_error(void) { return last_error; }

void nn_clear_error(void) { last_error[0] = '\0'; }
