/* The little HTTP/1.1 that nn serve and nn loadtest speak: framing of
 * requests and responses by Content-Length (no chunked bodies), keep-alive,
 * and http:// URLs. Parsing is pure (bytes in, description out) so the
 * server's event loop can call it again each time more bytes arrive. */
#ifndef NN_TOOLS_HTTP_H
#define NN_TOOLS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* The request line and headers together may not exceed this. */
#define HTTP_MAX_HEAD 16384

enum http_parse {
    HTTP_BAD = -1,        /* malformed or refused: see *status and *why */
    HTTP_INCOMPLETE = 0,  /* the blank line that ends the head has not arrived yet */
    HTTP_COMPLETE = 1,    /* the head is parsed; the body is the next content_length bytes */
};

/* Pointers into the parsed buffer (not NUL-terminated), valid while it is. */
struct http_request {
    const char *method;
    size_t method_len;
    const char *target;         /* origin-form: the path, then any "?query" */
    size_t target_len;
    const char *content_type;   /* media type without parameters; NULL when absent */
    size_t content_type_len;
    size_t head_len;            /* request line + headers + blank line (+ leading empty lines) */
    size_t content_length;      /* 0 when absent */
    bool has_length;            /* a Content-Length header was present */
    int minor;                  /* HTTP/1.minor */
    bool keep_alive;            /* the client wants the connection kept open */
    bool expect_continue;       /* "Expect: 100-continue" */
};

/* Parses the head at the start of buf[len]. On HTTP_BAD, *status is the
 * answer to give (400 malformed, 411 a transfer coding, 413 a body over
 * max_body, 431 a head over HTTP_MAX_HEAD, 505 not HTTP/1.x) and *why a
 * constant message; the connection's framing is then lost, so close it. */
enum http_parse http_parse_request(const char *buf, size_t len, size_t max_body, struct http_request *req,
                                   int *status, const char **why);

struct http_response {
    int status;
    size_t head_len;
    long long content_length;   /* -1: absent, the body runs to the end of the connection */
    bool keep_alive;
};

/* Parses a response head at the start of buf[len]; HTTP_BAD when it is not
 * an HTTP/1.x response or its Content-Length is not a number. */
enum http_parse http_parse_response(const char *buf, size_t len, struct http_response *res);

/* "http://host[:port][/path]" (host may be "[v6 address]"); port "80" and
 * path "" when absent. False, with *why set, when the URL is not that. */
bool http_parse_url(const char *url, char *host, size_t host_cap, char *port, size_t port_cap, const char **path,
                    const char **why);

/* The reason phrase of a status code ("Not Found"); "Unknown" otherwise. */
const char *http_reason(int status);

/* Case-insensitive comparison of s[len] with the NUL-terminated word. */
bool http_token_eq(const char *s, size_t len, const char *word);

#endif
