#include "tools/http.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 token characters (method and header names). */
static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool http_token_eq(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && !strncasecmp(s, word, len);
}

/* Finds the blank line that ends the head. Empty lines before the request
 * line are skipped (RFC 9112 2.2: a client may send a CRLF after a body). */
static enum http_parse find_head(const char *buf, size_t len, size_t *start, size_t *end)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n')) i++;
    *start = i;
    size_t line = i;
    for (size_t j = i; j < len && j < HTTP_MAX_HEAD; j++) {
        if (buf[j] != '\n') continue;
        size_t n = j - line;
        if (n == 0 || (n == 1 && buf[line] == '\r')) {
            *end = j + 1;
            return HTTP_COMPLETE;
        }
        line = j + 1;
    }
    return len >= HTTP_MAX_HEAD ? HTTP_BAD : HTTP_INCOMPLETE;
}

/* The next line of buf[*pos..end), without its LF and one CR before it. */
static bool next_line(const char *buf, size_t *pos, size_t end, const char **line, size_t *n)
{
    if (*pos >= end) return false;
    const char *s = buf + *pos;
    const char *nl = memchr(s, '\n', end - *pos);
    size_t len = nl ? (size_t)(nl - s) : end - *pos;
    *pos += len + (nl != NULL);
    if (len > 0 && s[len - 1] == '\r') len--;
    *line = s;
    *n = len;
    return true;
}

/* Field values may hold tabs and bytes >= 0x80, never other controls. */
static bool clean_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return true;
}

/* Splits "Name: value" with the value's surrounding blanks trimmed. */
static bool split_field(const char *line, size_t n, size_t *name_len, const char **value, size_t *value_len)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i])) i++;
    if (i == 0 || i == n || line[i] != ':') return false;
    *name_len = i;
    const char *v = line + i + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *value = v;
    *value_len = (size_t)(e - v);
    return clean_value(v, *value_len);
}

/* Decimal digits only; *over is set when the value exceeds `limit`. The
 * test comes before the digit is added (x * 10 + d > limit, rearranged so
 * that nothing can wrap): testing after it let a value past 2^64 wrap
 * around to a small length. */
static bool parse_length(const char *v, size_t n, unsigned long long limit, unsigned long long *out, bool *over)
{
    if (n == 0) return false;
    unsigned long long x = 0;
    *over = false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return false;
        unsigned d = (unsigned)(v[i] - '0');
        if (*over) continue;
        if (x > limit / 10 || (x == limit / 10 && d > limit % 10)) *over = true;
        else x = x * 10 + d;
    }
    *out = x;
    return true;
}

/* Applies each comma-separated token of a Connection header. */
static void connection_tokens(const char *v, size_t n, bool *close, bool *keep)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',') j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
        if (http_token_eq(v + a, b - a, "close")) *close = true;
        if (http_token_eq(v + a, b - a, "keep-alive")) *keep = true;
        i = j + 1;
    }
}

#define BAD(code, msg) (*status = (code), *why = (msg), HTTP_BAD)

static enum http_parse parse_request_line(const char *line, size_t n, struct http_request *req, int *status,
                                          const char **why)
{
    const char *p = line, *e = line + n;
    while (p < e && is_tchar((unsigned char)*p)) p++;
    req->method = line;
    req->method_len = (size_t)(p - line);
    if (req->method_len == 0 || req->method_len > 32 || p == e || *p != ' ')
        return BAD(400, "malformed request line: expected METHOD /path HTTP/1.1");
    req->target = ++p;
    while (p < e && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f) p++;
    req->target_len = (size_t)(p - req->target);
    if (req->target_len == 0 || p == e || *p != ' ')
        return BAD(400, "malformed request line: expected METHOD /path HTTP/1.1");
    if (req->target[0] != '/') return BAD(400, "the request target must be a path starting with '/'");
    p++;
    if (e - p != 8 || memcmp(p, "HTTP/", 5) || !isdigit((unsigned char)p[5]) || p[6] != '.' ||
        !isdigit((unsigned char)p[7]))
        return BAD(400, "malformed request line: expected METHOD /path HTTP/1.1");
    if (p[5] != '1') return BAD(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    req->minor = p[7] - '0';
    return HTTP_COMPLETE;
}

enum http_parse http_parse_request(const char *buf, size_t len, size_t max_body, struct http_request *req,
                                   int *status, const char **why)
{
    memset(req, 0, sizeof *req);
    size_t start, end;
    enum http_parse r = find_head(buf, len, &start, &end);
    if (r == HTTP_INCOMPLETE) return r;
    if (r == HTTP_BAD) return BAD(431, "the request line and headers exceed 16 KiB");
    req->head_len = end;

    size_t pos = start, n = 0;
    const char *line = buf;
    next_line(buf, &pos, end, &line, &n);
    if ((r = parse_request_line(line, n, req, status, why)) != HTTP_COMPLETE) return r;

    bool close = false, keep = false;
    while (next_line(buf, &pos, end, &line, &n) && n > 0) {
        size_t name_len, vlen;
        const char *v;
        if (line[0] == ' ' || line[0] == '\t') return BAD(400, "folded header lines are not accepted");
        if (!split_field(line, n, &name_len, &v, &vlen)) return BAD(400, "malformed header line");
        if (http_token_eq(line, name_len, "content-length")) {
            unsigned long long x;
            bool over;
            if (!parse_length(v, vlen, max_body, &x, &over)) return BAD(400, "Content-Length is not a number");
            if (over) return BAD(413, "the request body is larger than the server accepts (--max-body)");
            if (req->has_length && req->content_length != x) return BAD(400, "conflicting Content-Length headers");
            req->content_length = (size_t)x;
            req->has_length = true;
        } else if (http_token_eq(line, name_len, "transfer-encoding")) {
            return BAD(411, "chunked request bodies are not supported: send Content-Length");
        } else if (http_token_eq(line, name_len, "connection")) {
            connection_tokens(v, vlen, &close, &keep);
        } else if (http_token_eq(line, name_len, "content-type")) {
            const char *semi = memchr(v, ';', vlen);
            size_t t = semi ? (size_t)(semi - v) : vlen;
            while (t > 0 && (v[t - 1] == ' ' || v[t - 1] == '\t')) t--;
            req->content_type = v;
            req->content_type_len = t;
        } else if (http_token_eq(line, name_len, "expect")) {
            req->expect_continue = http_token_eq(v, vlen, "100-continue");
        }
    }
    req->keep_alive = req->minor >= 1 ? !close : keep && !close;
    return HTTP_COMPLETE;
}

enum http_parse http_parse_response(const char *buf, size_t len, struct http_response *res)
{
    memset(res, 0, sizeof *res);
    res->content_length = -1;
    size_t start, end;
    enum http_parse r = find_head(buf, len, &start, &end);
    if (r != HTTP_COMPLETE) return r;
    res->head_len = end;
    size_t pos = start, n = 0;
    const char *line = buf;
    next_line(buf, &pos, end, &line, &n);
    /* "HTTP/1.x DDD reason" */
    if (n < 12 || memcmp(line, "HTTP/1.", 7) || !isdigit((unsigned char)line[7]) || line[8] != ' ') return HTTP_BAD;
    for (int i = 9; i < 12; i++)
        if (!isdigit((unsigned char)line[i])) return HTTP_BAD;
    res->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    bool close = false, keep = false, http10 = line[7] == '0';
    while (next_line(buf, &pos, end, &line, &n) && n > 0) {
        size_t name_len, vlen;
        const char *v;
        if (!split_field(line, n, &name_len, &v, &vlen)) return HTTP_BAD;
        if (http_token_eq(line, name_len, "content-length")) {
            unsigned long long x;
            bool over;
            if (!parse_length(v, vlen, (unsigned long long)INT64_MAX, &x, &over) || over) return HTTP_BAD;
            if (res->content_length >= 0 && res->content_length != (long long)x) return HTTP_BAD; /* conflicting */
            res->content_length = (long long)x;
        } else if (http_token_eq(line, name_len, "connection")) {
            connection_tokens(v, vlen, &close, &keep);
        }
    }
    /* Bodiless statuses carry no body whatever the headers say. */
    if (res->status < 200 || res->status == 204 || res->status == 304) res->content_length = 0;
    res->keep_alive = !close && (!http10 || keep) && res->content_length >= 0;
    return HTTP_COMPLETE;
}

static bool copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n == 0 || n >= cap) return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

bool http_parse_url(const char *url, char *host, size_t host_cap, char *port, size_t port_cap, const char **path,
                    const char **why)
{
    if (strncasecmp(url, "http://", 7)) return *why = "only http:// URLs are supported", false;
    const char *h = url + 7, *slash = strchr(h, '/');
    const char *authority_end = slash ? slash : h + strlen(h);
    const char *colon;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(authority_end - h));
        if (!close || !copy_part(host, host_cap, h + 1, (size_t)(close - h - 1)))
            return *why = "malformed [IPv6] host", false;
        colon = close + 1 < authority_end && close[1] == ':' ? close + 1 : NULL;
        if (!colon && close + 1 != authority_end) return *why = "malformed [IPv6] host", false;
    } else {
        colon = memchr(h, ':', (size_t)(authority_end - h));
        const char *host_end = colon ? colon : authority_end;
        if (!copy_part(host, host_cap, h, (size_t)(host_end - h))) return *why = "the URL has no host", false;
    }
    if (colon) {
        size_t n = (size_t)(authority_end - colon - 1);
        if (!copy_part(port, port_cap, colon + 1, n) || strspn(port, "0123456789") != n)
            return *why = "the port is not a number", false;
    } else {
        if (port_cap < 3) return *why = "no room for the port", false;
        strcpy(port, "80");
    }
    *path = slash ? slash : "";
    return true;
}

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
