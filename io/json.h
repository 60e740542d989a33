/* A small JSON reader (DOM) and writer, for safetensors headers, model
 * metadata, dataset descriptors and metrics logs. */
#ifndef NN_IO_JSON_H
#define NN_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

enum nn_json_type { NN_JSON_NULL, NN_JSON_BOOL, NN_JSON_NUMBER, NN_JSON_STRING, NN_JSON_ARRAY, NN_JSON_OBJECT };

struct nn_json;

/* Parses text[0..len). On error the message gives the byte offset. An
 * object with a key written twice is an error (readers would disagree on
 * which one counts). Free the result with nn_json_free. */
enum nn_status nn_json_parse(const char *text, size_t len, struct nn_json **out);
void nn_json_free(struct nn_json *j);

enum nn_json_type nn_json_type(const struct nn_json *j);
bool nn_json_bool(const struct nn_json *j);
double nn_json_number(const struct nn_json *j);          /* NaN if not a number */
/* True (and *out set) when j is a number written as an integer (no fraction
 * or exponent) that fits int64; exact beyond 2^53, unlike nn_json_number. */
bool nn_json_int(const struct nn_json *j, int64_t *out);
const char *nn_json_string(const struct nn_json *j);   /* NUL-terminated; NULL if not a string */
size_t nn_json_len(const struct nn_json *j);            /* array or object size */
const struct nn_json *nn_json_at(const struct nn_json *j, size_t i);  /* array element or object value */
const char *nn_json_key(const struct nn_json *j, size_t i);          /* object key */
/* NULL if absent. O(log n): keys are sorted once when the object is parsed,
 * so looking up each of an object's n keys is not quadratic. */
const struct nn_json *nn_json_get(const struct nn_json *obj, const char *key);

/* Growable text buffer for writing JSON (and anything else). */
struct nn_strbuf {
    char *data;     /* NUL-terminated */
    size_t len, cap;
    bool failed;    /* an allocation failed: data is incomplete */
};
void nn_strbuf_init(struct nn_strbuf *b);
void nn_strbuf_free(struct nn_strbuf *b);
void nn_strbuf_printf(struct nn_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nn_strbuf_append(struct nn_strbuf *b, const char *s, size_t n);
/* Ends an object written as "{...,": the trailing comma becomes '}' (a
 * bare "{" gets "}"). False, touching nothing, when an allocation failed:
 * a failed buffer may hold no text at all (data NULL, len 0), so writing
 * its last byte before checking was an out-of-bounds write. */
bool nn_strbuf_end_object(struct nn_strbuf *b);

/* True when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF): what JSON text, model files and dataset
 * descriptors require of every name. */
bool nn_utf8_valid(const char *s, size_t n);
/* Appends s as a quoted, escaped JSON string. Bytes of s that are not part
 * of a well-formed UTF-8 sequence are written as U+FFFD, so the result is
 * always valid JSON. */
void nn_strbuf_json_string(struct nn_strbuf *b, const char *s);
/* Appends v so that it reads back exactly (%.17g at most); NaN and
 * infinities, which JSON lacks, become null. */
void nn_strbuf_json_number(struct nn_strbuf *b, double v);

#endif
