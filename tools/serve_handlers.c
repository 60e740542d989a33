/* nn serve's workers: each takes a whole request from the queue, answers it
 * with its own inference context, and hands the connection back to the loop. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/mem.h"
#include "io/json.h"
#include "nn/model.h"
#include "tools/cli.h"
#include "tools/serve.h"

enum nn_status serve_worker_init(struct serve_worker *w, struct serve_server *s)
{
    memset(w, 0, sizeof *w);
    w->server = s;
    const struct nn_config *cfg = nn_model_config(s->model);
    size_t S = (size_t)cfg->image_size, K = (size_t)cfg->num_classes;
    /* Batch 1: a server answers each request as it comes, without waiting to fill a batch. */
    NN_TRY(nn_ctx_new(s->model, 1, &w->ctx));
    w->input = nn_alloc(S * S * 3 * sizeof(float));
    w->logits = malloc(K * sizeof(float));
    w->ranked = malloc(K * sizeof *w->ranked);
    if (!w->input || !w->logits || !w->ranked) {
        serve_worker_free(w);
        return nn_fail(NN_ERR_NOMEM, "out of memory for a worker's buffers");
    }
    return NN_OK;
}

void serve_worker_free(struct serve_worker *w)
{
    nn_ctx_free(w->ctx);
    nn_free(w->input);
    free(w->logits);
    free(w->ranked);
    w->ctx = NULL;
    w->input = NULL;
    w->logits = NULL;
    w->ranked = NULL;
}

static void strbuf_reset(struct nn_strbuf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data) b->data[0] = '\0';
}

/* The shortest decimal that reads back as the same float (6 to 9 digits),
 * so probabilities compare exactly and 0.8 prints as 0.8, not 0.800000012. */
static void json_float(struct nn_strbuf *b, float v)
{
    if (!isfinite(v)) {
        nn_strbuf_append(b, "null", 4);
        return;
    }
    char text[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)v);
        if (strtof(text, NULL) == v) break;
    }
    nn_strbuf_append(b, text, strlen(text));
}

static void json_error(struct nn_strbuf *b, const char *msg)
{
    nn_strbuf_append(b, "{\"error\":", 9);
    nn_strbuf_json_string(b, msg && *msg ? msg : "unknown failure");
    nn_strbuf_append(b, "}", 1);
}

char *serve_healthz_json(const struct nn_model *m, const char *model_name)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{\"status\":\"ok\",\"model\":", 23);
    nn_strbuf_json_string(&b, model_name);
    nn_strbuf_printf(&b, ",\"classes\":%d}", nn_model_config(m)->num_classes);
    if (b.failed) nn_strbuf_free(&b);
    return b.data;
}

char *serve_metadata_json(const struct nn_model *m, const char *model_name)
{
    const struct nn_config *c = nn_model_config(m);
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{\"model\":", 9);
    nn_strbuf_json_string(&b, model_name);
    nn_strbuf_printf(&b,
                     ",\"architecture\":\"inception_v3\",\"config\":{\"num_classes\":%d,\"image_size\":%d,"
                     "\"aux_logits\":%s,\"folded\":%s,\"precision\":\"%s\",\"dropout_keep\":",
                     c->num_classes, c->image_size, c->aux_logits ? "true" : "false", c->folded ? "true" : "false",
                     nn_precision_name(c->precision));
    json_float(&b, c->dropout_keep);
    nn_strbuf_append(&b, ",\"bn_eps\":", 10);
    json_float(&b, c->bn_eps);
    nn_strbuf_append(&b, ",\"bn_decay\":", 12);
    json_float(&b, c->bn_decay);
    /* What POST /predict does to a photo before the network sees it. */
    nn_strbuf_append(&b, "},\"preprocess\":{\"central_fraction\":", 35);
    json_float(&b, m->central_fraction);
    nn_strbuf_printf(&b,
                     ",\"resize\":\"bilinear\",\"size\":[%d,%d],\"scale\":\"x/127.5-1\",\"layout\":\"NHWC\"},"
                     "\"classes\":[",
                     c->image_size, c->image_size);
    for (int k = 0; k < c->num_classes; k++) {
        if (k) nn_strbuf_append(&b, ",", 1);
        nn_strbuf_json_string(&b, nn_model_class_name(m, k));
    }
    nn_strbuf_append(&b, "]}", 2);
    if (b.failed) nn_strbuf_free(&b);
    return b.data;
}

/* POST /predict: the body is the photo. Returns the status. */
static int predict(struct serve_worker *w, const char *data, size_t len, struct nn_strbuf *b)
{
    const struct nn_model *m = w->server->model;
    int K = m->cfg.num_classes;
    double t0 = cli_now();
    enum nn_status st = nn_preprocess_encoded(m, data, len, "request body", w->input);
    if (st != NN_OK) {
        json_error(b, nn_last_error());
        return st == NN_ERR_NOMEM ? 503 : 400;
    }
    if (nn_infer(w->ctx, w->input, 1, w->logits) != NN_OK) {
        json_error(b, nn_last_error());
        return 500;
    }
    if (nn_rank_classes(w->logits, K, w->ranked) != NN_OK) {
        json_error(b, "out of memory");
        return 503;
    }
    double ms = (cli_now() - t0) * 1e3;
    int top = w->server->top_k < K ? w->server->top_k : K;
    nn_strbuf_append(b, "{\"predictions\":[", 16);
    for (int k = 0; k < top; k++) {
        nn_strbuf_append(b, k ? ",{\"class\":" : "{\"class\":", k ? 10 : 9);
        nn_strbuf_json_string(b, nn_model_class_name(m, w->ranked[k].id));
        nn_strbuf_printf(b, ",\"id\":%d,\"probability\":", w->ranked[k].id);
        json_float(b, w->ranked[k].probability);
        nn_strbuf_append(b, "}", 1);
    }
    nn_strbuf_printf(b, "],\"ms\":%.3f}", ms);
    return 200;
}

static bool media_type_ok(const struct http_request *r)
{
    if (!r->content_type) return true; /* the bytes say what they are */
    return http_token_eq(r->content_type, r->content_type_len, "image/jpeg") ||
           http_token_eq(r->content_type, r->content_type_len, "image/png") ||
           http_token_eq(r->content_type, r->content_type_len, "application/octet-stream");
}

static int not_found(const struct http_request *r, size_t path_len, struct nn_strbuf *b)
{
    char msg[320];
    snprintf(msg, sizeof msg, "no endpoint %.*s%s: try POST /predict, GET /healthz or GET /metadata",
             (int)(path_len < 200 ? path_len : 200), r->target, path_len > 200 ? "..." : "");
    json_error(b, msg);
    return 404;
}

/* Routes a well-framed request. *allow is set for 405. */
static int route(struct serve_worker *w, const struct serve_conn *c, struct nn_strbuf *b, const char **allow)
{
    const struct http_request *r = &c->req;
    const char *q = memchr(r->target, '?', r->target_len);
    size_t path_len = q ? (size_t)(q - r->target) : r->target_len;
    bool get = http_token_eq(r->method, r->method_len, "GET");
    if (http_token_eq(r->target, path_len, "/predict")) {
        if (!http_token_eq(r->method, r->method_len, "POST")) {
            *allow = "POST";
            json_error(b, "/predict takes POST with the image as the body");
            return 405;
        }
        if (!r->has_length) {
            json_error(b, "POST /predict needs a Content-Length header");
            return 411;
        }
        if (!media_type_ok(r)) {
            json_error(b, "Content-Type must be image/jpeg, image/png or application/octet-stream "
                             "(with curl --data-binary, add -H 'Content-Type: image/jpeg')");
            return 415;
        }
        return predict(w, c->buf + r->head_len, r->content_length, b);
    }
    const char *fixed = http_token_eq(r->target, path_len, "/healthz")    ? w->server->healthz
                        : http_token_eq(r->target, path_len, "/metadata") ? w->server->metadata
                                                                           : NULL;
    if (!fixed) return not_found(r, path_len, b);
    if (!get) {
        *allow = "GET";
        json_error(b, "this endpoint takes GET");
        return 405;
    }
    nn_strbuf_append(b, fixed, strlen(fixed));
    return 200;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Answers the request c holds; sets c->close_after. */
static void answer(struct serve_worker *w, struct serve_conn *c, struct nn_strbuf *body, struct nn_strbuf *out)
{
    strbuf_reset(body);
    strbuf_reset(out);
    const char *allow = NULL;
    int status;
    bool keep;
    if (c->error_status) {
        status = c->error_status;
        json_error(body, c->error_why);
        keep = false; /* the request's framing is unknown: nothing after it can be trusted */
    } else {
        status = route(w, c, body, &allow);
        /* Without a length, a body the client did send would be read as the next request. */
        keep = c->req.keep_alive && status != 411;
    }
    /* Asked now, not when the request was taken: an answer computed while
     * the server began to stop tells the client not to send another. */
    pthread_mutex_lock(&w->server->lock);
    if (w->server->stopping) keep = false;
    pthread_mutex_unlock(&w->server->lock);
    static const char oom[] = "{\"error\":\"out of memory\"}";
    const char *text = body->failed ? oom : body->data;
    size_t text_len = body->failed ? sizeof oom - 1 : body->len;
    if (body->failed) status = 503, keep = false;
    nn_strbuf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n", status,
                     http_reason(status), text_len);
    if (allow) nn_strbuf_printf(out, "Allow: %s\r\n", allow);
    nn_strbuf_printf(out, "Connection: %s\r\n\r\n", keep ? "keep-alive" : "close");
    nn_strbuf_append(out, text, text_len);
    bool sent = !out->failed && send_all(c->fd, out->data, out->len);
    c->close_after = !keep || !sent;
    c->linger = !keep && sent;
    if (c->linger) shutdown(c->fd, SHUT_WR); /* our FIN goes out now; the loop drains, then closes */
    if (w->server->quiet) return;
    /* The parser admits only visible ASCII into the method and target, so
     * they print as they are; parts a malformed request lacks print as "-". */
    const struct http_request *r = &c->req;
    double ms = (cli_now() - c->received) * 1e3;
    int mlen = r->method_len ? (int)r->method_len : 1, tlen = r->target_len ? (int)r->target_len : 1;
    fprintf(stderr, "%s %.*s %.*s%s %d %.1f ms%s\n", c->peer, mlen, r->method_len ? r->method : "-",
            tlen < 200 ? tlen : 200, r->target_len ? r->target : "-", tlen > 200 ? "..." : "", status, ms,
            sent ? "" : " (client gone)");
}

static void give_back(struct serve_server *s, struct serve_conn *c)
{
    pthread_mutex_lock(&s->lock);
    s->back[s->nback++] = c;
    pthread_mutex_unlock(&s->lock);
    /* A full pipe already has a wake-up pending. */
    ssize_t k = write(s->wake_pipe[1], "w", 1);
    (void)k;
}

void *serve_worker_main(void *arg)
{
    struct serve_worker *w = arg;
    struct serve_server *s = w->server;
    struct nn_strbuf body, out;
    nn_strbuf_init(&body);
    nn_strbuf_init(&out);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->qcount == 0 && !s->stopping) pthread_cond_wait(&s->work, &s->lock);
        if (s->qcount == 0) {
            pthread_mutex_unlock(&s->lock);
            break; /* stopping, and every queued request answered */
        }
        struct serve_conn *c = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % SERVE_MAX_CONN;
        s->qcount--;
        pthread_mutex_unlock(&s->lock);
        answer(w, c, &body, &out);
        give_back(s, c);
    }
    nn_strbuf_free(&body);
    nn_strbuf_free(&out);
    return NULL;
}
