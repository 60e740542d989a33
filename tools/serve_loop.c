/* nn serve's connection loop: one thread that accepts, reads requests until
 * they are whole, and queues them for the workers (see tools/serve.h). Reads
 * never block (MSG_DONTWAIT); only the workers write, with a send timeout. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "tools/cli.h"
#include "tools/serve.h"

#define READ_CHUNK 8192
/* A worker gives up on a client that does not take its answer for this long. */
#define SEND_TIMEOUT_S 10

static void conn_free(struct serve_conn *c)
{
    close(c->fd);
    free(c->buf);
    free(c);
}

/* Hands the connection's request to the workers. */
static void enqueue(struct serve_server *s, struct serve_conn *c)
{
    c->busy = true;
    c->received = cli_now();
    pthread_mutex_lock(&s->lock);
    /* Each connection is queued at most once, so the ring cannot overflow. */
    s->queue[(s->qhead + s->qcount) % SERVE_MAX_CONN] = c;
    s->qcount++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
}

/* Queues the request at the start of c->buf if it is all there. */
static void try_dispatch(struct serve_server *s, struct serve_conn *c)
{
    int status = 0;
    const char *why = NULL;
    enum http_parse r = http_parse_request(c->buf, c->len, s->max_body, &c->req, &status, &why);
    if (r == HTTP_INCOMPLETE) return;
    if (r == HTTP_BAD) {
        c->error_status = status;
        c->error_why = why;
        c->consumed = c->len;
        enqueue(s, c);
        return;
    }
    size_t total = c->req.head_len + c->req.content_length;
    if (c->len < total) {
        c->need = total;
        /* curl and others wait (up to a second) for this before sending a body. */
        if (c->req.expect_continue && !c->continue_sent) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            ssize_t w = send(c->fd, cont, sizeof cont - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w; /* if it does not fit, the client sends the body after its own timeout */
            c->continue_sent = true;
        }
        return;
    }
    c->error_status = 0;
    c->consumed = total;
    enqueue(s, c);
}

static void read_from(struct serve_server *s, struct serve_conn *c, double now)
{
    if (c->lingering) {
        ssize_t r = recv(c->fd, c->buf, c->cap, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) c->dead = true;
        return;
    }
    /* Room for the whole request once its size is known, a chunk before. */
    size_t want = (c->need > c->len ? c->need : c->len) + READ_CHUNK;
    if (c->cap < want) {
        char *nb = realloc(c->buf, want);
        if (!nb) {
            nn_warn("%s: out of memory for a %zu-byte request; closing the connection", c->peer, want);
            c->dead = true;
            return;
        }
        c->buf = nb;
        c->cap = want;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (r <= 0) {
        c->dead = true; /* closed by the client, or reset */
        return;
    }
    const char *fresh = c->buf + c->len;
    c->len += (size_t)r;
    c->last_active = now;
    /* Parse only when it can change the outcome: a head can only end with
     * a new line, and a body being received is complete at c->need. A client
     * dripping bytes then costs no rescans of what already came. */
    if (c->need ? c->len >= c->need : memchr(fresh, '\n', (size_t)r) || c->len >= HTTP_MAX_HEAD) try_dispatch(s, c);
}

/* Takes back the connections the workers have answered. */
static void take_back(struct serve_server *s, double now)
{
    char drain[64];
    while (read(s->wake_pipe[0], drain, sizeof drain) > 0) {
    }
    struct serve_conn *back[SERVE_MAX_CONN];
    pthread_mutex_lock(&s->lock);
    size_t n = s->nback;
    memcpy(back, s->back, n * sizeof *back);
    s->nback = 0;
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        struct serve_conn *c = back[i];
        c->busy = false;
        if (c->close_after) {
            c->lingering = c->linger;
            c->dead = !c->linger;
            c->last_active = now;
            continue;
        }
        memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
        c->len -= c->consumed;
        c->consumed = 0;
        if (c->cap > (1u << 20) && c->len < READ_CHUNK) { /* do not keep a large photo's buffer for an idle client */
            char *nb = realloc(c->buf, READ_CHUNK);
            if (nb) c->buf = nb, c->cap = READ_CHUNK;
        }
        c->need = 0;
        c->continue_sent = false;
        c->last_active = now;
        if (c->len > 0) try_dispatch(s, c); /* a pipelined request is already here */
    }
}

static void refuse_busy(int fd)
{
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                              "Content-Length: 32\r\nConnection: close\r\n\r\n{\"error\":\"too many connections\"}";
    ssize_t w = send(fd, msg, sizeof msg - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    close(fd);
}

/* Accepts every pending connection; false when out of descriptors (the
 * caller then stops watching the listening socket for a moment rather
 * than spin on it). */
static bool accept_all(struct serve_server *s, double now)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept(s->listen_fd, (struct sockaddr *)&ss, &sl);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            nn_warn("accept: %s", strerror(errno));
            return false;
        }
        if (s->nconns >= SERVE_MAX_CONN) {
            refuse_busy(fd);
            continue;
        }
        struct serve_conn *c = calloc(1, sizeof *c);
        char *buf = malloc(READ_CHUNK);
        if (!c || !buf) {
            free(c);
            free(buf);
            refuse_busy(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval tv = {.tv_sec = SEND_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        c->fd = fd;
        c->buf = buf;
        c->cap = READ_CHUNK;
        c->last_active = now;
        char host[48], port[8];
        if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            snprintf(c->peer, sizeof c->peer, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
        else
            snprintf(c->peer, sizeof c->peer, "?");
        s->conns[s->nconns++] = c;
    }
}

/* Closes the connections marked dead, keeping the others in order. */
static void sweep(struct serve_server *s, double now)
{
    int k = 0;
    for (int i = 0; i < s->nconns; i++) {
        struct serve_conn *c = s->conns[i];
        if (!c->busy && now - c->last_active > (c->lingering ? SERVE_LINGER_S : SERVE_IDLE_S)) c->dead = true;
        if (c->dead && !c->busy) conn_free(c);
        else s->conns[k++] = c;
    }
    s->nconns = k;
}

void serve_loop_run(struct serve_server *s)
{
    struct pollfd pfd[SERVE_MAX_CONN + 3];
    struct serve_conn *watched[SERVE_MAX_CONN];
    double accept_paused_until = 0;
    for (;;) {
        double now = cli_now();
        int n = 0, listen_slot = -1, nwatched = 0;
        pfd[n++] = (struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = s->wake_pipe[0], .events = POLLIN};
        if (now >= accept_paused_until) {
            listen_slot = n;
            pfd[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        }
        int first = n;
        for (int i = 0; i < s->nconns; i++)
            if (!s->conns[i]->busy) {
                watched[nwatched++] = s->conns[i];
                pfd[n++] = (struct pollfd){.fd = s->conns[i]->fd, .events = POLLIN};
            }
        /* The timeout bounds how late idle connections are closed. */
        int r = poll(pfd, (nfds_t)n, 1000);
        if (r < 0 && errno != EINTR) nn_warn("poll: %s", strerror(errno));
        now = cli_now();
        if (r > 0 && pfd[0].revents) return;
        if (r > 0) {
            for (int k = 0; k < nwatched; k++)
                if (pfd[first + k].revents) read_from(s, watched[k], now);
            if (pfd[1].revents) take_back(s, now);
            if (listen_slot >= 0 && pfd[listen_slot].revents && !accept_all(s, now))
                accept_paused_until = now + 0.1;
        }
        sweep(s, now);
    }
}

void serve_close_idle(struct serve_server *s)
{
    int k = 0;
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i]->busy) s->conns[k++] = s->conns[i];
        else conn_free(s->conns[i]);
    }
    s->nconns = k;
}

void serve_close_all(struct serve_server *s)
{
    for (int i = 0; i < s->nconns; i++) conn_free(s->conns[i]);
    s->nconns = 0;
    s->nback = 0;
    s->qcount = 0;
}
