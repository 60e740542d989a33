/* nn serve's moving parts, shared by its three files:
 *   cmd_serve.c       options, start-up, signals and the orderly shutdown
 *   serve_loop.c      one thread that accepts connections and reads requests
 *   serve_handlers.c  the worker threads that answer them
 *
 * The loop owns every idle connection. Once a connection holds a whole
 * request (or a request that cannot be framed), the loop stops watching it
 * and queues it; a worker answers that one request and hands the connection
 * back. So a worker never waits on a slow or idle client, and any number of
 * keep-alive clients share a few workers fairly. */
#ifndef NN_TOOLS_SERVE_H
#define NN_TOOLS_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "tools/http.h"

struct nn_model;

/* At most this many open connections (the loop's poll set). */
#define SERVE_MAX_CONN 1024
/* An idle keep-alive connection, or a request that stalls, is closed after this. */
#define SERVE_IDLE_S 15.0
/* After an answer with "Connection: close", the rest of what the client sent
 * is read and dropped for up to this long: closing a socket with unread
 * bytes sends a reset, which can destroy the answer before the client reads it. */
#define SERVE_LINGER_S 2.0

struct serve_conn {
    int fd;
    char peer[64];          /* "address:port", for the log */
    char *buf;              /* bytes received and not yet answered */
    size_t len, cap;
    double last_active;     /* cli_now() of the last bytes received */
    size_t need;            /* bytes of the request being received, once its head is known (else 0) */
    bool continue_sent;     /* "100 Continue" already sent for this request */
    bool busy;              /* with a worker (loop-only flag) */
    bool dead;              /* to be closed at the end of the loop's pass (loop-only flag) */
    /* The request handed to a worker (the loop does not touch the
     * connection until the worker gives it back). */
    struct http_request req;
    int error_status;       /* non-zero: the request could not be framed; answer this and close */
    const char *error_why;
    size_t consumed;        /* bytes of buf this request used */
    double received;        /* cli_now() when the request was complete */
    bool close_after;       /* set by the worker: close instead of reading on */
    bool linger;            /* set by the worker: the answer went out, now drain before closing */
    bool lingering;         /* reading and discarding until the client closes (loop-only flag) */
};

struct serve_server {
    const struct nn_model *model;
    int top_k;
    size_t max_body;
    bool quiet;
    const char *healthz;    /* answers built once at start-up (JSON) */
    const char *metadata;

    int listen_fd;
    int stop_pipe[2];       /* the signal handler writes a byte: stop */
    int wake_pipe[2];       /* a worker wrote a byte: connections came back */

    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t work;
    struct serve_conn *queue[SERVE_MAX_CONN]; /* waiting for a worker (ring) */
    size_t qhead, qcount;
    struct serve_conn *back[SERVE_MAX_CONN];  /* answered, waiting for the loop */
    size_t nback;
    bool stopping;          /* no new requests; answer the queued ones with Connection: close */

    struct serve_conn *conns[SERVE_MAX_CONN]; /* every open connection (the loop's, and the shutdown's) */
    int nconns;
};

/* Runs until a byte arrives on stop_pipe. */
void serve_loop_run(struct serve_server *s);
/* After the workers are joined: closes every connection. */
void serve_close_all(struct serve_server *s);
/* Closes the connections that are not with a worker. */
void serve_close_idle(struct serve_server *s);

/* A worker thread's state: its own inference context and buffers. */
struct serve_worker {
    struct serve_server *server;
    struct nn_ctx *ctx;
    float *input;           /* image_size^2 * 3 */
    float *logits;          /* num_classes */
    struct nn_class_score *ranked;
    pthread_t tid;
    bool started;
};

enum nn_status serve_worker_init(struct serve_worker *w, struct serve_server *s);
void serve_worker_free(struct serve_worker *w);
void *serve_worker_main(void *arg);

/* The answers that do not depend on a request, as JSON (malloc'd; NULL when out of memory). */
char *serve_healthz_json(const struct nn_model *m, const char *model_name);
char *serve_metadata_json(const struct nn_model *m, const char *model_name);

#endif
