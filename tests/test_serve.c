/* nn serve and nn loadtest through the nn binary: a small random model on
 * an ephemeral port, answers checked against the library's own inference,
 * malformed and hostile requests, keep-alive and pipelining, concurrent
 * clients, a shutdown with requests in flight, and the load tester. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "io/image.h"
#include "io/json.h"
#include "nn/model.h"
#include "tests/testutil.h"

#define BEE "data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg"
#define ANT "data/hymenoptera/val/ants/10308379_1b6c72e180.jpg"
#define GIF "data/hymenoptera/train/ants/imageNotFound.gif"
#define SIZE 75

static const char *const class_names[3] = {"ants", "bees", "wasp \"queen\" \xc3\xa9"};
static char *dir;
static char model_path[4200];
static char fixture_error[512];

/* The model is made once, in Check's parent process. */
static void fixture_setup(void)
{
    dir = make_temp_dir();
    snprintf(model_path, sizeof model_path, "%s/model.nnm", dir);
    struct nn_config cfg = nn_config_default(3);
    cfg.image_size = SIZE;
    cfg.aux_logits = false;
    struct nn_model *m = NULL;
    if (nn_model_new(&cfg, class_names, 42, &m) != NN_OK) {
        snprintf(fixture_error, sizeof fixture_error, "%s", nn_last_error());
        return;
    }
    /* The classifier's initial weights (std 0.001) give every class about
     * 1/3; larger ones make the photos' answers differ clearly, so a wrong
     * preprocessing step on the server shows in the probabilities. */
    int fc = nn_params_find(&m->params, "fc.weight");
    if (fc < 0) snprintf(fixture_error, sizeof fixture_error, "no fc.weight");
    else
        for (size_t i = 0; i < m->params.items[fc].count; i++) nn_param_data(&m->params, fc)[i] *= 300;
    if (!fixture_error[0] && nn_model_save(m, model_path) != NN_OK)
        snprintf(fixture_error, sizeof fixture_error, "%s", nn_last_error());
    nn_model_free(m);
    /* Forked tests must not inherit a pool whose threads stayed in the parent. */
    nn_threads_shutdown();
}

static void fixture_teardown(void)
{
    rm_rf(dir);
    free(dir);
    dir = NULL;
}

/* ---- the server process ---- */

struct server {
    pid_t pid;
    int port;
    char log[4300];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *read_log(const struct server *s)
{
    char *text;
    size_t len;
    if (nn_read_file(s->log, &text, &len) != NN_OK) return strdup("");
    return text;
}

/* Starts nn serve on a port of the kernel's choice and waits until it listens. */
static void start_server(struct server *s, const char *const *extra)
{
    ck_assert_msg(!fixture_error[0], "making the model failed: %s", fixture_error);
    snprintf(s->log, sizeof s->log, "%s/serve-%d.log", dir, (int)getpid());
    const char *argv[32] = {"nn", "serve", model_path, "--port", "0", "--workers", "2"};
    int argc = 7;
    for (; extra && *extra && argc < 30; extra++) argv[argc++] = *extra;
    argv[argc] = NULL;
    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        /* The server dies with the test, even when an assertion ends the test early. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *fp = freopen(s->log, "w", stderr);
        if (!fp) _exit(126);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execv(nn_bin(), (char *const *)argv);
        _exit(127);
    }
    double deadline = now_s() + 60;
    s->port = 0;
    while (now_s() < deadline) {
        char *text = read_log(s);
        const char *at = strstr(text, "listening on 127.0.0.1:");
        if (at) s->port = atoi(at + strlen("listening on 127.0.0.1:"));
        int status;
        pid_t done = waitpid(s->pid, &status, WNOHANG);
        if (done == s->pid) ck_abort_msg("nn serve exited at start-up: %s", text);
        free(text);
        if (s->port > 0) return;
        usleep(20000);
    }
    kill(s->pid, SIGKILL);
    ck_abort_msg("nn serve did not start listening");
}

/* SIGTERM, then the exit status (the server must exit on its own). */
static int stop_server(struct server *s)
{
    ck_assert_int_eq(kill(s->pid, SIGTERM), 0);
    double deadline = now_s() + 60;
    int status;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (now_s() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            ck_abort_msg("nn serve did not stop after SIGTERM");
        }
        usleep(20000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        char *text = read_log(s);
        fprintf(stderr, "nn serve log:\n%s\n", text);
        free(text);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- a small HTTP client ---- */

struct conn {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static struct conn *dial(int port)
{
    struct conn *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    struct timeval tv = {.tv_sec = 30};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
}

static void hang_up(struct conn *c)
{
    close(c->fd);
    free(c);
}

static void put(struct conn *c, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(k > 0, "send: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
    }
}

static void put_str(struct conn *c, const char *s) { put(c, s, strlen(s)); }

struct reply {
    int status;
    char head[4096];
    char *body; /* NUL-terminated */
    size_t body_len;
};

/* Reads one response; status -1 when the connection ended first. */
static void get(struct conn *c, struct reply *r)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) {
            size_t head_len = (size_t)(end - c->buf) + 4;
            ck_assert_int_lt(head_len, sizeof r->head);
            memcpy(r->head, c->buf, head_len);
            r->head[head_len] = '\0';
            const char *cl = strcasestr(r->head, "\r\nContent-Length:");
            ck_assert_msg(cl != NULL, "no Content-Length in %s", r->head);
            size_t body_len = strtoul(cl + 17, NULL, 10);
            if (c->len >= head_len + body_len) {
                ck_assert(sscanf(r->head, "HTTP/1.1 %d", &r->status) == 1);
                r->body = malloc(body_len + 1);
                memcpy(r->body, c->buf + head_len, body_len);
                r->body[body_len] = '\0';
                r->body_len = body_len;
                memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
                c->len -= head_len + body_len;
                return;
            }
        }
        ck_assert_msg(c->len < sizeof c->buf, "response too large");
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (k <= 0) return;
        c->len += (size_t)k;
    }
}

/* True when the server has closed the connection (after any pending bytes). */
static bool closed_by_server(struct conn *c)
{
    char b[256];
    ssize_t k;
    while ((k = recv(c->fd, b, sizeof b, 0)) > 0) {
    }
    return k == 0 || errno == ECONNRESET;
}

static void reply_free(struct reply *r) { free(r->body); }

/* One request on a fresh connection. */
static void ask(int port, const void *req, size_t n, struct reply *r)
{
    struct conn *c = dial(port);
    put(c, req, n);
    get(c, r);
    hang_up(c);
}

static char *post_head(const char *path, const char *type, size_t len)
{
    char *head = malloc(512);
    snprintf(head, 512, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", path,
             type, len);
    return head;
}

static void post(struct conn *c, const char *data, size_t len)
{
    char *head = post_head("/predict", "image/jpeg", len);
    put_str(c, head);
    put(c, data, len);
    free(head);
}

static char *slurp(const char *rel, size_t *len)
{
    char *data;
    ck_assert_msg(nn_read_file(shared_path(rel), &data, len) == NN_OK, "%s", nn_last_error());
    return data;
}

static struct nn_json *parse_json(const struct reply *r)
{
    struct nn_json *j;
    ck_assert_msg(nn_json_parse(r->body, r->body_len, &j) == NN_OK, "not JSON (%s): %s", nn_last_error(), r->body);
    return j;
}

/* What the library says for a photo: softmax probabilities p[3]. */
static void library_probabilities(const char *rel, float p[3])
{
    struct nn_model *m;
    struct nn_ctx *ctx;
    ck_assert_int_eq(nn_model_load(model_path, &m), NN_OK);
    ck_assert_int_eq(nn_ctx_new(m, 1, &ctx), NN_OK);
    struct nn_image img;
    ck_assert_int_eq(nn_image_load(shared_path(rel), 0, &img), NN_OK);
    float *x = nn_alloc(SIZE * SIZE * 3 * sizeof(float));
    ck_assert_int_eq(nn_image_eval_transform(&img, SIZE, m->central_fraction, x), NN_OK);
    ck_assert_int_eq(nn_infer(ctx, x, 1, p), NN_OK);
    nn_softmax(p, 3);
    nn_free(x);
    nn_image_free(&img);
    nn_ctx_free(ctx);
    nn_model_free(m);
}

/* A 200 from /predict: three classes, most likely first, each probability
 * the library's, summing to 1. Returns the top class id. */
static int check_prediction(const struct reply *r, const float want[3])
{
    ck_assert_msg(r->status == 200, "status %d: %s", r->status, r->body);
    ck_assert_ptr_nonnull(strstr(r->head, "Content-Type: application/json"));
    struct nn_json *j = parse_json(r);
    const struct nn_json *preds = nn_json_get(j, "predictions");
    ck_assert_ptr_nonnull(preds);
    ck_assert_int_eq(nn_json_len(preds), 3);
    double sum = 0, last = 2;
    int top = -1;
    for (size_t k = 0; k < 3; k++) {
        const struct nn_json *e = nn_json_at(preds, k);
        int64_t id;
        ck_assert(nn_json_int(nn_json_get(e, "id"), &id) && id >= 0 && id < 3);
        ck_assert_str_eq(nn_json_string(nn_json_get(e, "class")), class_names[id]);
        double p = nn_json_number(nn_json_get(e, "probability"));
        ck_assert_msg(fabs(p - want[id]) <= 1e-6, "class %d: server %.9g, library %.9g", (int)id, p, want[id]);
        ck_assert(p <= last);
        last = p;
        sum += p;
        if (k == 0) top = (int)id;
    }
    ck_assert_msg(fabs(sum - 1) < 1e-5, "probabilities sum to %.9g", sum);
    ck_assert(nn_json_number(nn_json_get(j, "ms")) > 0);
    nn_json_free(j);
    return top;
}

static int argmax3(const float p[3]) { return p[1] > p[0] ? (p[2] > p[1] ? 2 : 1) : (p[2] > p[0] ? 2 : 0); }

static void get_path(struct conn *c, const char *path, struct reply *r)
{
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    put_str(c, req);
    get(c, r);
}

START_TEST(serve_answers_like_the_library)
{
    if (!have_shared("serve_answers_like_the_library")) return;
    struct server srv;
    start_server(&srv, (const char *const[]){"--top", "5", NULL});
    struct conn *c = dial(srv.port);
    struct reply r;

    get_path(c, "/healthz", &r);
    ck_assert_int_eq(r.status, 200);
    struct nn_json *j = parse_json(&r);
    ck_assert_str_eq(nn_json_string(nn_json_get(j, "status")), "ok");
    ck_assert_str_eq(nn_json_string(nn_json_get(j, "model")), "model.nnm");
    ck_assert(nn_json_number(nn_json_get(j, "classes")) == 3);
    nn_json_free(j);
    reply_free(&r);

    get_path(c, "/metadata", &r);
    ck_assert_int_eq(r.status, 200);
    j = parse_json(&r);
    const struct nn_json *classes = nn_json_get(j, "classes");
    ck_assert_int_eq(nn_json_len(classes), 3);
    for (int k = 0; k < 3; k++) ck_assert_str_eq(nn_json_string(nn_json_at(classes, (size_t)k)), class_names[k]);
    ck_assert(nn_json_number(nn_json_get(nn_json_get(j, "config"), "image_size")) == SIZE);
    ck_assert(nn_json_number(nn_json_get(nn_json_get(j, "preprocess"), "central_fraction")) == 0.875);
    nn_json_free(j);
    reply_free(&r);

    /* the same connection, kept alive: two photos, each as the library sees it */
    size_t bee_len, ant_len;
    char *bee = slurp(BEE, &bee_len), *ant = slurp(ANT, &ant_len);
    float want_bee[3], want_ant[3];
    library_probabilities(BEE, want_bee);
    library_probabilities(ANT, want_ant);
    post(c, bee, bee_len);
    get(c, &r);
    ck_assert_int_eq(check_prediction(&r, want_bee), argmax3(want_bee));
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: keep-alive"));
    reply_free(&r);
    post(c, ant, ant_len);
    get(c, &r);
    ck_assert_int_eq(check_prediction(&r, want_ant), argmax3(want_ant));
    reply_free(&r);

    /* a GIF: refused with the decoder's message, and the connection lives on */
    size_t gif_len;
    char *gif = slurp(GIF, &gif_len);
    post(c, gif, gif_len);
    get(c, &r);
    ck_assert_int_eq(r.status, 400);
    j = parse_json(&r);
    ck_assert_msg(strstr(nn_json_string(nn_json_get(j, "error")), "GIF images are not supported"), "%s", r.body);
    nn_json_free(j);
    reply_free(&r);

    /* a truncated JPEG and an empty body: 400, never a crash */
    post(c, bee, 2000);
    get(c, &r);
    ck_assert_msg(r.status == 400 && strstr(r.body, "request body"), "%d %s", r.status, r.body);
    reply_free(&r);
    post(c, bee, 0);
    get(c, &r);
    ck_assert_msg(r.status == 400 && strstr(r.body, "empty"), "%d %s", r.status, r.body);
    reply_free(&r);

    /* curl's way: Expect: 100-continue, the body only after "100 Continue" */
    char head[512];
    snprintf(head, sizeof head,
             "POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n"
             "Expect: 100-continue\r\n\r\n",
             bee_len);
    put_str(c, head);
    char cont[64] = {0};
    ssize_t k = recv(c->fd, cont, 25, MSG_WAITALL);
    ck_assert_int_eq(k, 25);
    ck_assert_str_eq(cont, "HTTP/1.1 100 Continue\r\n\r\n");
    put(c, bee, bee_len);
    get(c, &r);
    check_prediction(&r, want_bee);
    reply_free(&r);

    /* the request's head in pieces, with pauses between them */
    char *h = post_head("/predict?source=test", "application/octet-stream", bee_len);
    size_t hl = strlen(h);
    put(c, h, 10);
    usleep(30000);
    put(c, h + 10, hl - 10);
    usleep(30000);
    put(c, bee, bee_len / 2);
    usleep(30000);
    put(c, bee + bee_len / 2, bee_len - bee_len / 2);
    get(c, &r);
    check_prediction(&r, want_bee);
    reply_free(&r);
    free(h);
    hang_up(c);

    free(bee);
    free(ant);
    free(gif);
    ck_assert_int_eq(stop_server(&srv), 0);
    char *log = read_log(&srv);
    ck_assert_msg(strstr(log, "POST /predict 200"), "%s", log);
    ck_assert_msg(strstr(log, "GET /healthz 200"), "%s", log);
    ck_assert_msg(strstr(log, "POST /predict 400"), "%s", log);
    free(log);
}
END_TEST

/* Sends raw bytes on a new connection and expects `status`. */
static void expect_status(int port, const char *req, size_t n, int status)
{
    struct reply r;
    ask(port, req, n, &r);
    ck_assert_msg(r.status == status, "%.60s...: got %d, want %d (%s)", req, r.status, status, r.body ? r.body : "");
    if (status != 200) {
        struct nn_json *j = parse_json(&r);
        ck_assert_ptr_nonnull(nn_json_string(nn_json_get(j, "error")));
        nn_json_free(j);
    }
    reply_free(&r);
}

#define EXPECT(port, literal, status) expect_status(port, literal, sizeof literal - 1, status)

START_TEST(serve_survives_bad_requests)
{
    struct server srv;
    start_server(&srv, (const char *const[]){"--max-body", "1M", "--quiet", NULL});
    int p = srv.port;
    EXPECT(p, "GET /healthz HTTP/1.1\r\n\r\n", 200);
    EXPECT(p, "GET /nowhere HTTP/1.1\r\n\r\n", 404);
    EXPECT(p, "GET /predict HTTP/1.1\r\n\r\n", 405);
    EXPECT(p, "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405);
    EXPECT(p, "POST /predict HTTP/1.1\r\n\r\n", 411);
    EXPECT(p, "POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", 415);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400);
    EXPECT(p, "POST /predict HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", 400); /* not an image */
    EXPECT(p, "GET /healthz HTTP/2.0\r\n\r\n", 505);
    EXPECT(p, "GET\r\n\r\n", 400);
    EXPECT(p, "GET /healthz\r\n\r\n", 400);
    EXPECT(p, "GET  /healthz HTTP/1.1\r\n\r\n", 400);
    EXPECT(p, "GET healthz HTTP/1.1\r\n\r\n", 400);
    EXPECT(p, "GET /healthz HTTP/1.1 extra\r\n\r\n", 400);
    EXPECT(p, "GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", 400);
    EXPECT(p, "GET /healthz HTTP/1.1\r\n continued: header\r\n\r\n", 400);
    EXPECT(p, "GET /healthz HTTP/1.1\r\nX-Bad\x01: v\r\n\r\n", 400);
    EXPECT(p, "GET /hea\x00lthz HTTP/1.1\r\n\r\n", 400);
    EXPECT(p, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400); /* TLS hello-ish */
    /* a head that never ends */
    char *big = malloc(40000);
    memcpy(big, "GET /healthz HTTP/1.1\r\nX-Long: ", 31);
    memset(big + 31, 'a', 40000 - 31);
    expect_status(p, big, 40000, 431);
    free(big);

    /* random bytes, each ended by a blank line */
    struct nn_rng rng;
    nn_rng_seed(&rng, 2024, 1);
    static const char alphabet[] = "GETPOST /HTTP1.:\r\n\t \x00\x7f\xff?%abc0123456789-";
    for (int t = 0; t < 40; t++) {
        char msg[300];
        size_t n = 1 + nn_rng_below(&rng, 250);
        for (size_t i = 0; i < n; i++)
            msg[i] = t % 2 ? (char)nn_rng_below(&rng, 256) : alphabet[nn_rng_below(&rng, sizeof alphabet - 1)];
        if (msg[0] == '\r' || msg[0] == '\n') msg[0] = '#'; /* else it could all be blank lines, which wait for more */
        memcpy(msg + n, "\r\n\r\n", 4);
        struct reply r;
        ask(p, msg, n + 4, &r);
        ck_assert_msg(r.status >= 400 && r.status < 600, "garbage %d: status %d", t, r.status);
        reply_free(&r);
    }

    /* clients that leave half-way through a request */
    for (int t = 0; t < 5; t++) {
        struct conn *c = dial(p);
        put_str(c, t % 2 ? "POST /predict HTTP/1.1\r\nContent-Length: 5000\r\n\r\nxx" : "GET /heal");
        hang_up(c);
    }
    /* a connection that only idles does not block the others */
    struct conn *idle = dial(p);

    EXPECT(p, "GET /healthz HTTP/1.1\r\n\r\n", 200);
    hang_up(idle);
    ck_assert_int_eq(stop_server(&srv), 0);
}
END_TEST

struct client_job {
    int port;
    const char *data;
    size_t len;
    const float *want;
    int ok;
};

static void *client_thread(void *arg)
{
    struct client_job *job = arg;
    struct conn *c = dial(job->port);
    for (int i = 0; i < 2; i++) {
        struct reply r;
        post(c, job->data, job->len);
        get(c, &r);
        check_prediction(&r, job->want);
        reply_free(&r);
        job->ok++;
    }
    hang_up(c);
    return NULL;
}

START_TEST(serve_keepalive_concurrency_and_shutdown)
{
    if (!have_shared("serve_keepalive_concurrency_and_shutdown")) return;
    struct server srv;
    start_server(&srv, NULL);
    size_t bee_len;
    char *bee = slurp(BEE, &bee_len);
    float want[3];
    library_probabilities(BEE, want);

    /* pipelined: three requests in one write, three answers in order */
    struct conn *c = dial(srv.port);
    char *head = post_head("/predict", "image/jpeg", bee_len);
    size_t hl = strlen(head);
    static const char g1[] = "GET /healthz HTTP/1.1\r\n\r\n", g2[] = "GET /missing HTTP/1.1\r\n\r\n";
    size_t n = sizeof g1 - 1 + hl + bee_len + sizeof g2 - 1;
    char *all = malloc(n);
    memcpy(all, g1, sizeof g1 - 1);
    memcpy(all + sizeof g1 - 1, head, hl);
    memcpy(all + sizeof g1 - 1 + hl, bee, bee_len);
    memcpy(all + sizeof g1 - 1 + hl + bee_len, g2, sizeof g2 - 1);
    put(c, all, n);
    struct reply r;
    get(c, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"status\":\"ok\""));
    reply_free(&r);
    get(c, &r);
    check_prediction(&r, want);
    reply_free(&r);
    get(c, &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    /* "Connection: close" is honoured */
    put_str(c, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    get(c, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: close"));
    reply_free(&r);
    ck_assert(closed_by_server(c));
    hang_up(c);
    /* HTTP/1.0 closes unless asked to keep alive */
    c = dial(srv.port);
    put_str(c, "GET /healthz HTTP/1.0\r\n\r\n");
    get(c, &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    ck_assert(closed_by_server(c));
    hang_up(c);
    c = dial(srv.port);
    put_str(c, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    get(c, &r);
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: keep-alive"));
    reply_free(&r);
    get_path(c, "/healthz", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    hang_up(c);

    /* four clients at once on two workers */
    pthread_t tids[4];
    struct client_job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (struct client_job){.port = srv.port, .data = bee, .len = bee_len, .want = want};
        ck_assert_int_eq(pthread_create(&tids[t], NULL, client_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(tids[t], NULL);
        ck_assert_int_eq(jobs[t].ok, 2);
    }

    /* SIGTERM with requests in flight and queued: every one is answered,
     * those answered after the signal with "Connection: close" */
    enum { NBUSY = 12 };
    struct conn *busy[NBUSY];
    for (int t = 0; t < NBUSY; t++) {
        busy[t] = dial(srv.port);
        post(busy[t], bee, bee_len);
    }
    struct conn *idle = dial(srv.port);
    /* long enough for the server to read every request, far shorter than answering twelve on two workers
     * (both ten times longer under ThreadSanitizer, make test TSAN=1) */
    const char *san = getenv("NN_SAN");
    usleep(san && !strcmp(san, "thread") ? 300000 : 30000);
    ck_assert_int_eq(kill(srv.pid, SIGTERM), 0);
    int closing = 0;
    for (int t = 0; t < NBUSY; t++) {
        get(busy[t], &r);
        check_prediction(&r, want);
        closing += strstr(r.head, "Connection: close") != NULL;
        reply_free(&r);
        hang_up(busy[t]);
    }
    ck_assert_msg(closing > 0, "every request was answered before the signal: the test proves nothing");
    ck_assert(closed_by_server(idle));
    hang_up(idle);
    int status;
    ck_assert_int_eq(waitpid(srv.pid, &status, 0), srv.pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nn serve exit status %d", status);
    free(all);
    free(head);
    free(bee);
}
END_TEST

START_TEST(loadtest_reports_against_serve)
{
    if (!have_shared("loadtest_reports_against_serve")) return;
    struct server srv;
    start_server(&srv, (const char *const[]){"--quiet", NULL});
    char bee[4200], ant[4200], gif[4200], cmd[20000], *out;
    snprintf(bee, sizeof bee, "%s", shared_path(BEE));
    snprintf(ant, sizeof ant, "%s", shared_path(ANT));
    snprintf(gif, sizeof gif, "%s", shared_path(GIF));
    snprintf(cmd, sizeof cmd, "%s loadtest http://127.0.0.1:%d/predict %s %s --concurrency 3 --requests 30 --warmup 3",
             nn_bin(), srv.port, bee, ant);
    int rc = run_command(cmd, &out);
    ck_assert_msg(rc == 0, "loadtest failed (%d): %s", rc, out);
    ck_assert_msg(strstr(out, "requests/s") && strstr(out, "p99"), "%s", out);
    /* the last line is the JSON summary */
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '\n') len--;
    const char *last = out + len;
    while (last > out && last[-1] != '\n') last--;
    struct nn_json *j;
    ck_assert_msg(nn_json_parse(last, (size_t)(out + len - last), &j) == NN_OK, "%s", out);
    ck_assert(nn_json_number(nn_json_get(j, "requests")) == 30);
    ck_assert(nn_json_number(nn_json_get(j, "ok")) == 30);
    ck_assert(nn_json_number(nn_json_get(j, "errors")) == 0);
    ck_assert(nn_json_number(nn_json_get(nn_json_get(j, "status"), "200")) == 30);
    const struct nn_json *lat = nn_json_get(j, "latency_ms");
    double p50 = nn_json_number(nn_json_get(lat, "p50")), p99 = nn_json_number(nn_json_get(lat, "p99"));
    ck_assert(p50 > 0 && p50 <= p99 && p99 <= nn_json_number(nn_json_get(lat, "max")));
    nn_json_free(j);
    free(out);

    /* failures are counted by status and make the exit status 1 */
    snprintf(cmd, sizeof cmd, "%s loadtest http://127.0.0.1:%d %s %s --concurrency 2 --requests 6", nn_bin(),
             srv.port, bee, gif);
    rc = run_command(cmd, &out);
    ck_assert_msg(rc == 1, "%s", out);
    ck_assert_msg(strstr(out, "\"status\":{\"200\":3,\"400\":3}"), "%s", out);
    free(out);
    ck_assert_int_eq(stop_server(&srv), 0);

    /* nothing listening: a clear message */
    snprintf(cmd, sizeof cmd, "%s loadtest http://127.0.0.1:%d/predict %s --requests 2", nn_bin(), srv.port, bee);
    rc = run_command(cmd, &out);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "cannot connect"), "%s", out);
    free(out);
}
END_TEST

Suite *suite_serve(void)
{
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("serve");
    tcase_add_unchecked_fixture(tc, fixture_setup, fixture_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, serve_answers_like_the_library);
    tcase_add_test(tc, serve_survives_bad_requests);
    tcase_add_test(tc, serve_keepalive_concurrency_and_shutdown);
    tcase_add_test(tc, loadtest_reports_against_serve);
    suite_add_tcase(s, tc);
    return s;
}
