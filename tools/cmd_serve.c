/* nn serve: a model behind a small HTTP/1.1 server (tools/serve.h has the
 * design). This file: options, start-up, signals and the orderly shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/threads.h"
#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/serve.h"

static const char usage[] =
    "usage: nn serve MODEL [--port P] [--host ADDR] [--workers N] [--threads-per-worker T]\n"
    "                [--max-body BYTES] [--top K] [--quiet]\n"
    "  Serves the model over HTTP/1.1 with keep-alive:\n"
    "    POST /predict   body: the photo (JPEG or PNG) -> {\"predictions\":[{\"class\",\"id\",\"probability\"}...],\"ms\"}\n"
    "    GET  /healthz   -> {\"status\":\"ok\",\"model\":NAME,\"classes\":N}\n"
    "    GET  /metadata  -> the model's configuration, preprocessing and class names\n"
    "  --port P                8080; 0 picks a free port (the line \"listening on HOST:PORT\" names it)\n"
    "  --host ADDR             127.0.0.1 (0.0.0.0 or :: for every interface)\n"
    "  --workers N             requests answered at once, each by a thread with its own\n"
    "                          inference context (default: the number of cores)\n"
    "  --threads-per-worker T  1; the engine's threads for one request (see docs/serving.md)\n"
    "  --max-body BYTES        largest accepted image, 20M (K, M, G suffixes: powers of 1024)\n"
    "  --top K                 classes per answer, 5\n"
    "  --quiet                 no line per request on stderr\n"
    "  SIGINT or SIGTERM: stop accepting, answer the requests already received, exit 0.\n";

static int stop_fd = -1;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t k = write(stop_fd, "s", 1);
    (void)k;
    errno = saved;
}

static bool parse_bytes(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
    if (errno || *end || v == 0 || v > (1ull << 40) / mul) return false;
    *out = (size_t)(v * mul);
    return true;
}

static bool make_pipe(int p[2])
{
    if (pipe(p) != 0) return false;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    return true;
}

/* Binds and listens; prints "listening on HOST:PORT" (the port the kernel chose for 0). */
static int open_listener(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    int gai = getaddrinfo(host, port_text, &hints, &res);
    if (gai != 0) return cli_error("--host %s: %s", host, gai_strerror(gai)), -1;
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) return cli_error("cannot listen on %s:%d: %s", host, port, strerror(err)), -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char h[64], p[16];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, h, sizeof h, p, sizeof p, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        fprintf(stderr, ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n", h, p);
    return fd;
}

struct options {
    const char *model_path;
    const char *host;
    int port, workers, threads, top_k;
    size_t max_body;
    bool quiet;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (struct options){.host = "127.0.0.1", .port = 8080, .workers = cores > 0 ? (int)cores : 1,
                          .threads = 1, .top_k = 5, .max_body = 20u << 20};
    for (int i = 1; i < argc; i++) {
        const char *v = "";
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_flag(argv, i, "--quiet")) o->quiet = true;
        else if (cli_opt(argc, argv, &i, "--port", &v)) {
            if (!cli_int(v, 0, 65535, &o->port)) return cli_usage(usage, "--port must be 0..65535");
        } else if (cli_opt(argc, argv, &i, "--host", &v)) {
            if (!v || !*v) return cli_usage(usage, "--host needs an address");
            o->host = v;
        } else if (cli_opt(argc, argv, &i, "--workers", &v)) {
            if (!cli_int(v, 1, 256, &o->workers)) return cli_usage(usage, "--workers must be 1..256");
        } else if (cli_opt(argc, argv, &i, "--threads-per-worker", &v)) {
            if (!cli_int(v, 1, 256, &o->threads)) return cli_usage(usage, "--threads-per-worker must be 1..256");
        } else if (cli_opt(argc, argv, &i, "--max-body", &v)) {
            if (!parse_bytes(v, &o->max_body)) return cli_usage(usage, "--max-body needs a size such as 20M");
        } else if (cli_opt(argc, argv, &i, "--top", &v)) {
            if (!cli_int(v, 1, 1000000, &o->top_k)) return cli_usage(usage, "--top needs a positive integer");
        } else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!o->model_path) o->model_path = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
    }
    if (!o->model_path) return cli_usage(usage, "need MODEL");
    return -1;
}

/* Runs the server until a signal; everything it made is released on return. */
static int serve(const struct options *o, struct serve_server *s, struct serve_worker *workers)
{
    const char *slash = strrchr(o->model_path, '/');
    const char *name = slash ? slash + 1 : o->model_path;
    struct nn_model *m = NULL;
    int rc = 0, started = 0;
    if (nn_model_load(o->model_path, &m) != NN_OK) return cli_fail();
    s->model = m;
    s->healthz = serve_healthz_json(m, name);
    s->metadata = serve_metadata_json(m, name);
    if (!s->healthz || !s->metadata) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int i = 0; i < o->workers; i++)
        if (serve_worker_init(&workers[i], s) != NN_OK) {
            rc = cli_fail();
            goto out;
        }
    if ((s->listen_fd = open_listener(o->host, o->port)) < 0) {
        rc = 1;
        goto out;
    }
    /* Workers never take the signals: the handler only has to wake the loop. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (; started < o->workers; started++)
        if (pthread_create(&workers[started].tid, NULL, serve_worker_main, &workers[started]) != 0) break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < o->workers) {
        rc = cli_error("cannot start worker thread %d of %d", started + 1, o->workers);
    } else {
        const struct nn_config *c = nn_model_config(m);
        fprintf(stderr, "nn serve: %s (%d classes, %dx%d input), %d workers x %d threads\n", name, c->num_classes,
                c->image_size, c->image_size, o->workers, o->threads);
        serve_loop_run(s);
        if (!o->quiet) fprintf(stderr, "nn serve: stopping: answering the requests already received\n");
    }
    close(s->listen_fd); /* new clients are refused from here on */
    s->listen_fd = -1;
    serve_close_idle(s);
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < started; i++) pthread_join(workers[i].tid, NULL);
    serve_close_all(s);
out:
    if (s->listen_fd >= 0) close(s->listen_fd);
    for (int i = 0; i < o->workers; i++) serve_worker_free(&workers[i]);
    free((char *)s->healthz);
    free((char *)s->metadata);
    nn_model_free(m);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    struct options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    cli_log_setup(false);
    /* Threads. The engine has one thread pool per process, and nn_parallel_for lets one caller at a time use it: the
     * other workers run their share on their own thread. So N workers with T
     * threads each keep at most N + T - 1 threads busy. The default, one
     * worker per core and T = 1, gives each request one core and no
     * synchronisation inside it, the best throughput under load; fewer
     * workers with T > 1 answer a lone request sooner, at the cost of
     * throughput when many arrive at once. */
    if (nn_threads_set(o.threads) != NN_OK) return cli_fail();

    struct serve_server *s = calloc(1, sizeof *s);
    struct serve_worker *workers = calloc((size_t)o.workers, sizeof *workers);
    if (!s || !workers) {
        free(s);
        free(workers);
        return cli_error("out of memory");
    }
    s->top_k = o.top_k;
    s->max_body = o.max_body;
    s->quiet = o.quiet;
    s->listen_fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = s->wake_pipe[0] = s->wake_pipe[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);

    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term, old_pipe;
    sigemptyset(&sa.sa_mask);
    /* A second Ctrl-C during the shutdown stops the process at once. */
    sa.sa_flags = SA_RESETHAND;
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    if (!make_pipe(s->stop_pipe) || !make_pipe(s->wake_pipe)) {
        rc = cli_error("pipe: %s", strerror(errno));
    } else {
        stop_fd = s->stop_pipe[1];
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGPIPE, &ignore, &old_pipe);
        rc = serve(&o, s, workers);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
        stop_fd = -1;
    }
    for (int i = 0; i < 2; i++) {
        if (s->stop_pipe[i] >= 0) close(s->stop_pipe[i]);
        if (s->wake_pipe[i] >= 0) close(s->wake_pipe[i]);
    }
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->lock);
    free(workers);
    free(s);
    nn_threads_shutdown();
    return rc;
}
