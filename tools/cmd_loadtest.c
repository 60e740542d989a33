/* nn loadtest: POSTs photos to an nn serve endpoint from C keep-alive
 * connections at once, each driven by its own thread as fast as the server
 * answers (a closed loop), and reports throughput, latency percentiles and
 * the answers by status. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/fileio.h"
#include "io/image.h"
#include "io/json.h"
#include "nn/nn.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/http.h"

static const char usage[] =
    "usage: nn loadtest URL IMAGE... [--concurrency C] [--requests N | --duration S] [--warmup W]\n"
    "  POSTs the images, round-robin, to URL (http://host:port/predict; the path defaults to\n"
    "  /predict) from C keep-alive connections at once (4), each sending its next request as\n"
    "  soon as the last is answered, for N requests in all (100) or for S seconds. The first W\n"
    "  requests (0) warm the server up and are not counted. Prints requests/s, latency\n"
    "  percentiles and the answers by status, then one JSON line with the same numbers.\n"
    "  Exit status 1 when any request failed (a status other than 2xx, or a broken connection).\n";

#define IO_TIMEOUT_S 60
#define MAX_STATUS 1000

struct image {
    char *data;
    size_t len;
    const char *type;
};

struct target {
    char host[256], port[16];
    const char *path;
    struct addrinfo *addrs;
    struct image *images;
    int nimages;
};

/* One phase (warm-up or measured): requests are numbered across all connections. */
struct phase {
    atomic_long next;
    long limit;         /* requests in the phase; -1: until the deadline */
    double deadline;
    bool record;
};

struct client {
    const struct target *t;
    struct phase *ph;
    int fd;
    bool reused;        /* the connection has answered before: a failure may be a stale keep-alive */
    char *buf;
    size_t len, cap;
    double *lat;        /* milliseconds of each recorded answer */
    size_t nlat, lat_cap;
    long status[MAX_STATUS];
    long conn_errors;
    char first_error[320];
    pthread_t tid;
};

static void drop(struct client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static void note_error(struct client *c, const char *fmt, const char *detail)
{
    if (!c->first_error[0]) snprintf(c->first_error, sizeof c->first_error, fmt, detail);
}

static int connect_to(const struct target *t, char *err, size_t err_cap)
{
    int e = 0;
    for (struct addrinfo *a = t->addrs; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            return fd;
        }
        e = errno;
        close(fd);
    }
    snprintf(err, err_cap, "cannot connect to %s:%s: %s", t->host, t->port, strerror(e));
    return -1;
}

static bool send_request(int fd, const struct target *t, const struct image *img)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: nn-loadtest/" NN_VERSION
                     "\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     t->path, t->host, t->port, img->type, img->len);
    if (n < 0 || (size_t)n >= sizeof head) return false;
    /* Head and body in one call: two small writes would meet Nagle and delayed ACKs. */
    struct iovec iov[2] = {{head, (size_t)n}, {img->data, img->len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    while (msg.msg_iovlen > 0) {
        ssize_t k = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        while (msg.msg_iovlen > 0 && (size_t)k >= msg.msg_iov->iov_len) {
            k -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + k;
            msg.msg_iov->iov_len -= (size_t)k;
        }
    }
    return true;
}

/* One request and its answer. Returns the status; -1 when the connection
 * failed before any byte of an answer, -2 after (or a malformed answer). */
static int roundtrip(struct client *c, const struct image *img)
{
    if (!send_request(c->fd, c->t, img)) {
        note_error(c, "send: %s", strerror(errno));
        return -1;
    }
    c->len = 0;
    struct http_response res;
    enum http_parse r = HTTP_INCOMPLETE;
    for (;;) {
        if (r == HTTP_INCOMPLETE) r = http_parse_response(c->buf, c->len, &res);
        if (r == HTTP_BAD) {
            note_error(c, "%s", "malformed answer from the server");
            return -2;
        }
        if (r == HTTP_COMPLETE && res.status == 100) { /* an interim answer: the real one follows */
            memmove(c->buf, c->buf + res.head_len, c->len - res.head_len);
            c->len -= res.head_len;
            r = HTTP_INCOMPLETE;
            continue;
        }
        size_t need = 0;
        if (r == HTTP_COMPLETE && res.content_length >= 0) {
            need = res.head_len + (size_t)res.content_length;
            if (c->len >= need) break;
        }
        size_t want = (need > c->len ? need : c->len) + 16384;
        if (c->cap < want) {
            char *nb = realloc(c->buf, want);
            if (!nb) {
                note_error(c, "%s", "out of memory for an answer");
                return -2;
            }
            c->buf = nb;
            c->cap = want;
        }
        ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0 && r == HTTP_COMPLETE && res.content_length < 0) break; /* body ran to the close */
        if (k <= 0) {
            note_error(c, "receive: %s", k == 0 ? "the server closed the connection" : strerror(errno));
            return c->len == 0 ? -1 : -2;
        }
        c->len += (size_t)k;
    }
    if (!res.keep_alive) drop(c);
    return res.status;
}

static int exchange(struct client *c, const struct image *img)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0) {
            char err[300];
            if ((c->fd = connect_to(c->t, err, sizeof err)) < 0) {
                note_error(c, "%s", err);
                return -1;
            }
            c->reused = false;
        }
        bool reused = c->reused;
        int st = roundtrip(c, img);
        if (st >= 0) {
            c->reused = true;
            return st;
        }
        drop(c);
        /* A kept-alive connection the server closed meanwhile: once more on a new one. */
        if (!(st == -1 && reused)) return -1;
    }
    return -1;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct phase *ph = c->ph;
    for (;;) {
        if (ph->limit < 0 && cli_now() >= ph->deadline) break;
        long ticket = atomic_fetch_add(&ph->next, 1);
        if (ph->limit >= 0 && ticket >= ph->limit) break;
        const struct image *img = &c->t->images[ticket % c->t->nimages];
        double t0 = cli_now();
        int st = exchange(c, img);
        double ms = (cli_now() - t0) * 1e3;
        if (!ph->record) continue;
        if (st < 0) {
            c->conn_errors++;
            continue;
        }
        c->status[st < MAX_STATUS ? st : MAX_STATUS - 1]++;
        if (c->nlat == c->lat_cap) {
            size_t cap = c->lat_cap ? 2 * c->lat_cap : 1024;
            double *nl = realloc(c->lat, cap * sizeof *nl);
            if (!nl) continue; /* the answer still counts; only its latency is lost */
            c->lat = nl;
            c->lat_cap = cap;
        }
        c->lat[c->nlat++] = ms;
    }
    return NULL;
}

/* Runs one phase on every connection; false if a thread could not start. */
static bool run_phase(struct client *clients, int n, struct phase *ph)
{
    int started = 0;
    for (; started < n; started++) {
        clients[started].ph = ph;
        if (pthread_create(&clients[started].tid, NULL, client_main, &clients[started]) != 0) break;
    }
    for (int i = 0; i < started; i++) pthread_join(clients[i].tid, NULL);
    return started == n;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0) return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return v[rank > 0 ? rank - 1 : 0];
}

struct totals {
    long status[MAX_STATUS];
    long responses, ok, conn_errors;
    double *lat;
    size_t nlat;
    const char *first_error;
};

static void report(const char *url, const struct target *t, int concurrency, long warmup, double seconds,
                   struct totals *tot)
{
    qsort(tot->lat, tot->nlat, sizeof *tot->lat, by_value);
    double mean = 0;
    for (size_t i = 0; i < tot->nlat; i++) mean += tot->lat[i];
    mean = tot->nlat ? mean / (double)tot->nlat : 0;
    double p50 = percentile(tot->lat, tot->nlat, 50), p90 = percentile(tot->lat, tot->nlat, 90);
    double p99 = percentile(tot->lat, tot->nlat, 99), max = tot->nlat ? tot->lat[tot->nlat - 1] : 0;
    double rps = seconds > 0 ? (double)tot->responses / seconds : 0;
    long errors = tot->responses - tot->ok + tot->conn_errors;

    printf("nn loadtest: POST %s, %d image%s, %d connection%s, %ld requests in %.3f s", url, t->nimages,
           t->nimages == 1 ? "" : "s", concurrency, concurrency == 1 ? "" : "s", tot->responses + tot->conn_errors,
           seconds);
    if (warmup) printf(" (after %ld warm-up)", warmup);
    printf("\n  throughput   %.2f requests/s\n", rps);
    printf("  latency ms   p50 %.1f   p90 %.1f   p99 %.1f   max %.1f   mean %.1f\n", p50, p90, p99, max, mean);
    printf("  responses   ");
    for (int s = 0; s < MAX_STATUS; s++)
        if (tot->status[s]) printf(" %d: %ld", s, tot->status[s]);
    printf("%s\n", tot->responses ? "" : " none");
    printf("  errors       %ld (%ld not 2xx, %ld connection)\n", errors, tot->responses - tot->ok, tot->conn_errors);
    if (tot->conn_errors && tot->first_error) printf("  first connection error: %s\n", tot->first_error);

    struct nn_strbuf b;
    nn_strbuf_init(&b);
    nn_strbuf_append(&b, "{\"url\":", 7);
    nn_strbuf_json_string(&b, url);
    nn_strbuf_printf(&b,
                     ",\"concurrency\":%d,\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"connection_errors\":%ld,"
                     "\"seconds\":%.3f,\"requests_per_s\":%.2f,\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,"
                     "\"p99\":%.3f,\"max\":%.3f,\"mean\":%.3f},\"status\":{",
                     concurrency, tot->responses + tot->conn_errors, tot->ok, errors, tot->conn_errors, seconds, rps,
                     p50, p90, p99, max, mean);
    bool first = true;
    for (int s = 0; s < MAX_STATUS; s++)
        if (tot->status[s]) {
            nn_strbuf_printf(&b, "%s\"%d\":%ld", first ? "" : ",", s, tot->status[s]);
            first = false;
        }
    nn_strbuf_append(&b, "}}", 2);
    printf("%s\n", b.failed ? "{\"error\":\"out of memory\"}" : b.data);
    nn_strbuf_free(&b);
}

struct options {
    const char *url;
    const char **images;
    int nimages, concurrency;
    long requests, warmup;
    double duration;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.concurrency = 4, .requests = 100};
    o->images = calloc((size_t)argc, sizeof *o->images);
    if (!o->images) return cli_error("out of memory");
    bool have_requests = false;
    for (int i = 1; i < argc; i++) {
        const char *v = "";
        int n;
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "--concurrency", &v)) {
            if (!cli_int(v, 1, 1000, &o->concurrency)) return cli_usage(usage, "--concurrency must be 1..1000");
        } else if (cli_opt(argc, argv, &i, "--requests", &v)) {
            if (!cli_int(v, 1, 1000000000, &n)) return cli_usage(usage, "--requests needs a positive integer");
            o->requests = n;
            have_requests = true;
        } else if (cli_opt(argc, argv, &i, "--warmup", &v)) {
            if (!cli_int(v, 0, 1000000000, &n)) return cli_usage(usage, "--warmup needs an integer >= 0");
            o->warmup = n;
        } else if (cli_opt(argc, argv, &i, "--duration", &v)) {
            float d;
            if (!cli_float(v, &d) || !(d > 0) || d > 1e6f) return cli_usage(usage, "--duration needs seconds > 0");
            o->duration = d;
        } else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!o->url) o->url = argv[i];
        else o->images[o->nimages++] = argv[i];
    }
    if (!o->url || o->nimages == 0) return cli_usage(usage, "need URL and at least one IMAGE");
    if (have_requests && o->duration > 0) return cli_usage(usage, "give --requests or --duration, not both");
    return -1;
}

static const char *media_type(const void *data, size_t len)
{
    switch (nn_image_sniff(data, len)) {
    case NN_IMAGE_JPEG: return "image/jpeg";
    case NN_IMAGE_PNG: return "image/png";
    default: return "application/octet-stream";
    }
}

int cmd_loadtest(int argc, char **argv)
{
    struct options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return free(o.images), rc;
    rc = 0;
    struct target t = {0};
    struct client *clients = NULL;
    struct totals tot = {0};
    const char *why;
    /* A server that closes on us must not kill the client. */
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old_pipe;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &old_pipe);

    if (!http_parse_url(o.url, t.host, sizeof t.host, t.port, sizeof t.port, &t.path, &why)) {
        rc = cli_usage(usage, "%s: %s", o.url, why);
        goto out;
    }
    if (!*t.path) t.path = "/predict";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    int gai = getaddrinfo(t.host, t.port, &hints, &t.addrs);
    if (gai != 0) {
        rc = cli_error("%s: %s", t.host, gai_strerror(gai));
        goto out;
    }
    t.images = calloc((size_t)o.nimages, sizeof *t.images);
    clients = calloc((size_t)o.concurrency, sizeof *clients);
    if (!t.images || !clients) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int i = 0; i < o.nimages; i++) {
        if (nn_read_file(o.images[i], &t.images[i].data, &t.images[i].len) != NN_OK) {
            rc = cli_fail();
            goto out;
        }
        t.images[i].type = media_type(t.images[i].data, t.images[i].len);
        t.nimages++;
    }
    for (int i = 0; i < o.concurrency; i++) clients[i] = (struct client){.t = &t, .fd = -1};
    /* Fail early, with the reason, when nothing listens there. */
    char err[300];
    int probe = connect_to(&t, err, sizeof err);
    if (probe < 0) {
        rc = cli_error("%s", err);
        goto out;
    }
    close(probe);

    struct phase warm = {.limit = o.warmup};
    atomic_init(&warm.next, 0);
    if (o.warmup > 0 && !run_phase(clients, o.concurrency, &warm)) {
        rc = cli_error("cannot start %d threads", o.concurrency);
        goto out;
    }
    struct phase main_phase = {.limit = o.duration > 0 ? -1 : o.requests, .record = true};
    atomic_init(&main_phase.next, 0);
    double t0 = cli_now();
    main_phase.deadline = t0 + o.duration;
    if (!run_phase(clients, o.concurrency, &main_phase)) {
        rc = cli_error("cannot start %d threads", o.concurrency);
        goto out;
    }
    double seconds = cli_now() - t0;

    size_t nlat = 0;
    for (int i = 0; i < o.concurrency; i++) nlat += clients[i].nlat;
    tot.lat = malloc((nlat ? nlat : 1) * sizeof *tot.lat);
    if (!tot.lat) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int i = 0; i < o.concurrency; i++) {
        struct client *c = &clients[i];
        memcpy(tot.lat + tot.nlat, c->lat, c->nlat * sizeof *c->lat);
        tot.nlat += c->nlat;
        for (int s = 0; s < MAX_STATUS; s++) {
            tot.status[s] += c->status[s];
            tot.responses += c->status[s];
            if (s >= 200 && s < 300) tot.ok += c->status[s];
        }
        tot.conn_errors += c->conn_errors;
        if (!tot.first_error && c->first_error[0]) tot.first_error = c->first_error;
    }
    report(o.url, &t, o.concurrency, o.warmup, seconds, &tot);
    fflush(stdout);
    rc = tot.ok == tot.responses + tot.conn_errors ? 0 : 1;
out:
    if (clients)
        for (int i = 0; i < o.concurrency; i++) {
            drop(&clients[i]);
            free(clients[i].buf);
            free(clients[i].lat);
        }
    free(clients);
    if (t.images)
        for (int i = 0; i < o.nimages; i++) free(t.images[i].data);
    free(t.images);
    if (t.addrs) freeaddrinfo(t.addrs);
    free(tot.lat);
    free(o.images);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc;
}
