#include "io/json.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any real document; shallow enough that the recursive
 * parser cannot exhaust the stack on hostile input like "[[[[[[...". */
#define NN_JSON_MAX_DEPTH 128

struct nn_json {
    enum nn_json_type type;
    bool b;
    bool is_int;            /* the number was written as an integer that fits int64 */
    int64_t ival;
    double num;
    char *str;              /* string value */
    size_t n;               /* array or object size */
    struct nn_json *items;  /* n values */
    char **keys;            /* n keys (objects only) */
    struct key_ref *sorted; /* objects: the n keys in strcmp order, for lookup by binary search */
};

/* An object's key, where it is in the object and where it was in the text. */
struct key_ref {
    const char *key;
    size_t index;
    size_t pos;
};

struct parser {
    const char *s;
    size_t len, pos;
};

/* ---------- reading ---------- */

static enum nn_status err_at(const struct parser *p, const char *what)
{
    if (p->pos >= p->len) return nn_fail(NN_ERR_FORMAT, "JSON: %s at byte %zu (end of input)", what, p->pos);
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c >= 0x20 && c < 0x7f) return nn_fail(NN_ERR_FORMAT, "JSON: %s at byte %zu ('%c')", what, p->pos, c);
    return nn_fail(NN_ERR_FORMAT, "JSON: %s at byte %zu (byte 0x%02x)", what, p->pos, c);
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static void free_contents(struct nn_json *j)
{
    free(j->str);
    for (size_t i = 0; i < j->n; i++) {
        free_contents(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->sorted);
}

static bool match_word(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return false;
    p->pos += n;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at p->pos. */
static enum nn_status read_hex4(struct parser *p, unsigned *out)
{
    if (p->len - p->pos < 4) return err_at(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[p->pos]);
        if (d < 0) return err_at(p, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)d;
        p->pos++;
    }
    *out = v;
    return NN_OK;
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence starting at s[0] (n bytes available),
 * or 0 if it is invalid (overlong, surrogate, beyond U+10FFFF, cut short). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else return 0;
    if (n < need + 1) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i <= need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need + 1;
}

bool nn_utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* p->pos is on the opening quote. Decoding never makes a string longer
 * than its source text, so one allocation of the raw length suffices. */
static enum nn_status parse_string(struct parser *p, char **out)
{
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        p->pos = start - 1;
        return err_at(p, "unterminated string starting");
    }
    char *buf = malloc(end - start + 1);
    if (!buf) return nn_fail(NN_ERR_NOMEM, "JSON: out of memory for a %zu-byte string", end - start);
    size_t n = 0;
    enum nn_status st = NN_OK;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            st = err_at(p, "control character in string");
            break;
        }
        if (c != '\\') {
            size_t k = utf8_seq_len((const unsigned char *)p->s + p->pos, end - p->pos);
            if (k == 0) {
                st = err_at(p, "invalid UTF-8 in string");
                break;
            }
            memcpy(buf + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
            continue;
        }
        p->pos++;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': buf[n++] = '"'; continue;
        case '\\': buf[n++] = '\\'; continue;
        case '/': buf[n++] = '/'; continue;
        case 'b': buf[n++] = '\b'; continue;
        case 'f': buf[n++] = '\f'; continue;
        case 'n': buf[n++] = '\n'; continue;
        case 'r': buf[n++] = '\r'; continue;
        case 't': buf[n++] = '\t'; continue;
        case 'u': break;
        default:
            p->pos -= 2;
            st = err_at(p, "bad escape");
            break;
        }
        if (st != NN_OK) break;
        size_t esc = p->pos - 2;
        unsigned cp;
        if ((st = read_hex4(p, &cp)) != NN_OK) break;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            p->pos = esc;
            st = err_at(p, "unpaired low surrogate escape");
            break;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (end - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                p->pos = esc;
                st = err_at(p, "high surrogate escape without its low half");
                break;
            }
            p->pos += 2;
            if ((st = read_hex4(p, &lo)) != NN_OK) break;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                p->pos = esc;
                st = err_at(p, "high surrogate escape without its low half");
                break;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        n += put_utf8(buf + n, cp);
    }
    if (st != NN_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    p->pos = end + 1;
    *out = buf;
    return NN_OK;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) { c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

/* strtod obeys LC_NUMERIC (a decimal comma in some locales); JSON does not. */
static double to_double(const char *text)
{
    pthread_once(&c_locale_once, make_c_locale);
    if (c_locale) return strtod_l(text, NULL, c_locale);
    return strtod(text, NULL);
}

static enum nn_status parse_number(struct parser *p, struct nn_json *out)
{
    size_t start = p->pos, i = p->pos;
    const char *s = p->s;
    bool integral = true;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') {
        p->pos = i;
        return err_at(p, "expected a digit");
    }
    if (s[i] == '0') i++;
    else
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    if (i < p->len && s[i] == '.') {
        integral = false;
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') {
            p->pos = i;
            return err_at(p, "expected a digit after '.'");
        }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = false;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') {
            p->pos = i;
            return err_at(p, "expected a digit in the exponent");
        }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    size_t n = i - start;
    char small[128];
    char *text = n < sizeof small ? small : malloc(n + 1);
    if (!text) return nn_fail(NN_ERR_NOMEM, "JSON: out of memory for a %zu-digit number", n);
    memcpy(text, s + start, n);
    text[n] = '\0';
    out->type = NN_JSON_NUMBER;
    out->num = to_double(text);
    if (integral) {
        /* Exact for integers beyond 2^53 (byte offsets in big files). */
        bool neg = text[0] == '-';
        uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        bool fits = true;
        for (size_t k = neg; k < n && fits; k++) {
            unsigned d = (unsigned)(text[k] - '0');
            if (mag > (limit - d) / 10) fits = false;
            else mag = mag * 10 + d;
        }
        if (fits) {
            out->is_int = true;
            out->ival = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        }
    }
    if (text != small) free(text);
    p->pos = i;
    return NN_OK;
}

static enum nn_status parse_value(struct parser *p, struct nn_json *out, int depth);

/* Grows items (and keys) so that index n is valid. */
static enum nn_status reserve(struct nn_json *j, size_t *cap, bool with_keys)
{
    if (j->n < *cap) return NN_OK;
    size_t want = *cap ? *cap * 2 : 4;
    struct nn_json *items = realloc(j->items, want * sizeof *items);
    if (!items) return nn_fail(NN_ERR_NOMEM, "JSON: out of memory for %zu elements", want);
    j->items = items;
    if (with_keys) {
        char **keys = realloc(j->keys, want * sizeof *keys);
        if (!keys) return nn_fail(NN_ERR_NOMEM, "JSON: out of memory for %zu keys", want);
        j->keys = keys;
        struct key_ref *sorted = realloc(j->sorted, want * sizeof *sorted);
        if (!sorted) return nn_fail(NN_ERR_NOMEM, "JSON: out of memory for %zu keys", want);
        j->sorted = sorted;
    }
    *cap = want;
    return NN_OK;
}

/* Children are counted in j->n before they are parsed, zero-filled, so a
 * failure anywhere leaves a tree that free_contents can release. */
static enum nn_status parse_array(struct parser *p, struct nn_json *out, int depth)
{
    size_t cap = 0;
    out->type = NN_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return NN_OK;
    }
    for (;;) {
        NN_TRY(reserve(out, &cap, false));
        struct nn_json *item = &out->items[out->n++];
        memset(item, 0, sizeof *item);
        NN_TRY(parse_value(p, item, depth + 1));
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return NN_OK;
        }
        return err_at(p, "expected ',' or ']'");
    }
}

static int cmp_key_ref(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts an object's keys once it is complete: lookups are then binary
 * searches, so a reader that looks up each of n keys (a dataset's
 * per-class counts) takes O(n log n), not O(n^2); and a key written twice
 * sits next to its twin. Which of two equal keys a reader would see
 * depends on the reader, so a duplicate is an error, not a silent choice. */
static enum nn_status index_object(struct parser *p, struct nn_json *obj)
{
    if (obj->n < 2) return NN_OK;
    qsort(obj->sorted, obj->n, sizeof *obj->sorted, cmp_key_ref);
    for (size_t i = 1; i < obj->n; i++)
        if (!strcmp(obj->sorted[i - 1].key, obj->sorted[i].key)) {
            p->pos = obj->sorted[i].pos;
            char what[160];
            snprintf(what, sizeof what, "key \"%.100s\" appears twice in an object", obj->sorted[i].key);
            return err_at(p, what);
        }
    return NN_OK;
}

static enum nn_status parse_object(struct parser *p, struct nn_json *out, int depth)
{
    size_t cap = 0;
    out->type = NN_JSON_OBJECT;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return NN_OK;
    }
    for (;;) {
        NN_TRY(reserve(out, &cap, true));
        size_t k = out->n++;
        memset(&out->items[k], 0, sizeof out->items[k]);
        out->keys[k] = NULL;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') return err_at(p, "expected a string key");
        size_t key_pos = p->pos;
        NN_TRY(parse_string(p, &out->keys[k]));
        out->sorted[k] = (struct key_ref){out->keys[k], k, key_pos};
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return err_at(p, "expected ':'");
        p->pos++;
        NN_TRY(parse_value(p, &out->items[k], depth + 1));
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            return index_object(p, out);
        }
        return err_at(p, "expected ',' or '}'");
    }
}

static enum nn_status parse_value(struct parser *p, struct nn_json *out, int depth)
{
    if (depth > NN_JSON_MAX_DEPTH) return err_at(p, "nesting deeper than 128 levels");
    skip_ws(p);
    if (p->pos >= p->len) return err_at(p, "expected a value");
    switch (p->s[p->pos]) {
    case '{': return parse_object(p, out, depth);
    case '[': return parse_array(p, out, depth);
    case '"':
        out->type = NN_JSON_STRING;
        return parse_string(p, &out->str);
    case 't':
        if (!match_word(p, "true")) break;
        out->type = NN_JSON_BOOL;
        out->b = true;
        return NN_OK;
    case 'f':
        if (!match_word(p, "false")) break;
        out->type = NN_JSON_BOOL;
        return NN_OK;
    case 'n':
        if (!match_word(p, "null")) break;
        out->type = NN_JSON_NULL;
        return NN_OK;
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return parse_number(p, out);
        break;
    }
    return err_at(p, "unexpected character");
}

enum nn_status nn_json_parse(const char *text, size_t len, struct nn_json **out)
{
    if (!out) return nn_fail(NN_ERR_ARG, "nn_json_parse: out is NULL");
    *out = NULL;
    if (!text && len) return nn_fail(NN_ERR_ARG, "nn_json_parse: text is NULL");
    struct nn_json *root = calloc(1, sizeof *root);
    if (!root) return nn_fail(NN_ERR_NOMEM, "JSON: out of memory");
    struct parser p = {text, len, 0};
    enum nn_status st = parse_value(&p, root, 0);
    if (st == NN_OK) {
        skip_ws(&p);
        if (p.pos < p.len) st = err_at(&p, "trailing characters after the value");
    }
    if (st != NN_OK) {
        nn_json_free(root);
        return st;
    }
    *out = root;
    return NN_OK;
}

void nn_json_free(struct nn_json *j)
{
    if (!j) return;
    free_contents(j);
    free(j);
}

/* ---------- access ---------- */

enum nn_json_type nn_json_type(const struct nn_json *j) { return j ? j->type : NN_JSON_NULL; }

bool nn_json_bool(const struct nn_json *j) { return j && j->type == NN_JSON_BOOL && j->b; }

double nn_json_number(const struct nn_json *j) { return j && j->type == NN_JSON_NUMBER ? j->num : NAN; }

bool nn_json_int(const struct nn_json *j, int64_t *out)
{
    if (!j || j->type != NN_JSON_NUMBER || !j->is_int) return false;
    *out = j->ival;
    return true;
}

const char *nn_json_string(const struct nn_json *j) { return j && j->type == NN_JSON_STRING ? j->str : NULL; }

size_t nn_json_len(const struct nn_json *j)
{
    return j && (j->type == NN_JSON_ARRAY || j->type == NN_JSON_OBJECT) ? j->n : 0;
}

const struct nn_json *nn_json_at(const struct nn_json *j, size_t i)
{
    if (!j || (j->type != NN_JSON_ARRAY && j->type != NN_JSON_OBJECT) || i >= j->n) return NULL;
    return &j->items[i];
}

const char *nn_json_key(const struct nn_json *j, size_t i)
{
    if (!j || j->type != NN_JSON_OBJECT || i >= j->n) return NULL;
    return j->keys[i];
}

const struct nn_json *nn_json_get(const struct nn_json *obj, const char *key)
{
    if (!obj || obj->type != NN_JSON_OBJECT || !key) return NULL;
    if (obj->n == 1) return strcmp(obj->keys[0], key) ? NULL : &obj->items[0];
    size_t lo = 0, hi = obj->n; /* binary search of the sorted keys (index_object) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(obj->sorted[mid].key, key);
        if (c == 0) return &obj->items[obj->sorted[mid].index];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---------- writing ---------- */

void nn_strbuf_init(struct nn_strbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

void nn_strbuf_free(struct nn_strbuf *b)
{
    free(b->data);
    nn_strbuf_init(b);
}

/* Makes room for `extra` more bytes plus the NUL. */
static bool grow(struct nn_strbuf *b, size_t extra)
{
    if (b->failed) return false;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void nn_strbuf_append(struct nn_strbuf *b, const char *s, size_t n)
{
    if (!grow(b, n)) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

bool nn_strbuf_end_object(struct nn_strbuf *b)
{
    if (b->failed || !b->data || b->len == 0) return false;
    if (b->data[b->len - 1] == ',') b->data[b->len - 1] = '}';
    else nn_strbuf_append(b, "}", 1);
    return !b->failed;
}

void nn_strbuf_printf(struct nn_strbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        nn_strbuf_append(b, small, (size_t)n);
        return;
    }
    if (!grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void nn_strbuf_json_string(struct nn_strbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!s) {
        nn_strbuf_append(b, "null", 4);
        return;
    }
    nn_strbuf_append(b, "\"", 1);
    const size_t len = strlen(s);
    size_t run = 0;  /* bytes that need no escape, appended in one go */
    for (size_t i = 0;; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* JSON text is UTF-8: a valid sequence is kept, each byte that
             * starts no valid one (a file name in Latin-1, say) becomes
             * U+FFFD, so the output is always valid JSON */
            size_t k = utf8_seq_len((const unsigned char *)s + i, len - i);
            if (k) {
                run += k;
                i += k - 1;
                continue;
            }
            nn_strbuf_append(b, s + i - run, run);
            run = 0;
            nn_strbuf_append(b, "\\ufffd", 6);
            continue;
        }
        if (c != 0 && c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        nn_strbuf_append(b, s + i - run, run);
        run = 0;
        if (c == 0) break;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        nn_strbuf_append(b, esc, n);
    }
    nn_strbuf_append(b, "\"", 1);
}

/* %g, with '.' even where the locale's decimal point is a comma. */
static void format_g(char *text, size_t size, int digits, double v)
{
    snprintf(text, size, "%.*g", digits, v);
    for (char *c = text; *c; c++)
        if (*c == ',') *c = '.';
}

void nn_strbuf_json_number(struct nn_strbuf *b, double v)
{
    /* JSON has no NaN or infinity. */
    if (!isfinite(v)) {
        nn_strbuf_append(b, "null", 4);
        return;
    }
    char text[40];
    /* The shorter of %.15g/%.17g that reads back exactly: 0.1 stays "0.1". */
    format_g(text, sizeof text, 15, v);
    if (to_double(text) != v) format_g(text, sizeof text, 17, v);
    nn_strbuf_append(b, text, strlen(text));
}
