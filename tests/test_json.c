/* io/json: the DOM reader and the strbuf writer. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

static struct nn_json *parse_ok(const char *text)
{
    struct nn_json *j = NULL;
    enum nn_status st = nn_json_parse(text, strlen(text), &j);
    ck_assert_msg(st == NN_OK, "parse failed for %s: %s", text, nn_last_error());
    ck_assert_ptr_nonnull(j);
    return j;
}

static void parse_fails(const char *text, size_t len, const char *expect_in_msg)
{
    struct nn_json *j = (struct nn_json *)1;
    enum nn_status st = nn_json_parse(text, len, &j);
    ck_assert_msg(st == NN_ERR_FORMAT, "expected a format error for [%.*s], got %d", (int)len, text, st);
    ck_assert_ptr_null(j);
    ck_assert_msg(strstr(nn_last_error(), expect_in_msg) != NULL, "message '%s' lacks '%s'", nn_last_error(),
                  expect_in_msg);
}

START_TEST(scalars)
{
    struct nn_json *j = parse_ok("  true ");
    ck_assert_int_eq(nn_json_type(j), NN_JSON_BOOL);
    ck_assert(nn_json_bool(j));
    nn_json_free(j);
    j = parse_ok("false");
    ck_assert(!nn_json_bool(j));
    nn_json_free(j);
    j = parse_ok("null");
    ck_assert_int_eq(nn_json_type(j), NN_JSON_NULL);
    ck_assert_ptr_null(nn_json_string(j));
    nn_json_free(j);

    const struct { const char *text; double v; } nums[] = {
        {"0", 0}, {"-0", -0.0}, {"42", 42}, {"-17", -17}, {"3.25", 3.25}, {"1e3", 1000}, {"2.5E-3", 2.5e-3},
        {"-1.5e+2", -150}, {"0.1", 0.1}, {"1.7976931348623157e308", 1.7976931348623157e308},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        j = parse_ok(nums[i].text);
        ck_assert_int_eq(nn_json_type(j), NN_JSON_NUMBER);
        ck_assert_msg(nn_json_number(j) == nums[i].v, "%s -> %.17g", nums[i].text, nn_json_number(j));
        nn_json_free(j);
    }
    int64_t v;
    j = parse_ok("9007199254740993"); /* 2^53 + 1: not a double, still an exact integer */
    ck_assert(nn_json_int(j, &v));
    ck_assert_int_eq(v, 9007199254740993LL);
    nn_json_free(j);
    j = parse_ok("-9223372036854775808");
    ck_assert(nn_json_int(j, &v));
    ck_assert(v == INT64_MIN);
    nn_json_free(j);
    j = parse_ok("9223372036854775808"); /* one past INT64_MAX: a number, not an int */
    ck_assert(!nn_json_int(j, &v));
    ck_assert(nn_json_number(j) == 9223372036854775808.0);
    nn_json_free(j);
    j = parse_ok("1.0");
    ck_assert(!nn_json_int(j, &v));
    nn_json_free(j);
    j = parse_ok("\"x\"");
    ck_assert(isnan(nn_json_number(j)));
    nn_json_free(j);
}
END_TEST

START_TEST(strings_and_escapes)
{
    struct nn_json *j = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    ck_assert_str_eq(nn_json_string(j), "a\"b\\c/d\b\f\n\r\t");
    nn_json_free(j);
    /* \u escapes: 1, 2 and 3 UTF-8 bytes, and a surrogate pair (U+1F600). */
    j = parse_ok("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"");
    ck_assert_str_eq(nn_json_string(j), "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    nn_json_free(j);
    /* Raw UTF-8 passes through. */
    j = parse_ok("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
    ck_assert_str_eq(nn_json_string(j), "caf\xC3\xA9 \xF0\x9F\x98\x80");
    nn_json_free(j);
    j = parse_ok("\"\"");
    ck_assert_str_eq(nn_json_string(j), "");
    nn_json_free(j);
}
END_TEST

START_TEST(nesting_and_lookup)
{
    const char *text = "{\"name\": \"inception\", \"shape\": [2, 3, [4, []], {}], "
                       "\"nested\": {\"a\": {\"b\": [true, null]}}, \"name2\": -1.5}";
    struct nn_json *j = parse_ok(text);
    ck_assert_int_eq(nn_json_type(j), NN_JSON_OBJECT);
    ck_assert_uint_eq(nn_json_len(j), 4);
    ck_assert_str_eq(nn_json_key(j, 0), "name");
    ck_assert_str_eq(nn_json_key(j, 3), "name2");
    ck_assert_ptr_null(nn_json_key(j, 4));
    ck_assert_str_eq(nn_json_string(nn_json_get(j, "name")), "inception");
    ck_assert(nn_json_number(nn_json_get(j, "name2")) == -1.5);
    ck_assert_ptr_null(nn_json_get(j, "missing"));
    const struct nn_json *shape = nn_json_get(j, "shape");
    ck_assert_int_eq(nn_json_type(shape), NN_JSON_ARRAY);
    ck_assert_uint_eq(nn_json_len(shape), 4);
    ck_assert(nn_json_number(nn_json_at(shape, 1)) == 3);
    ck_assert_uint_eq(nn_json_len(nn_json_at(nn_json_at(shape, 2), 1)), 0);
    ck_assert_int_eq(nn_json_type(nn_json_at(shape, 3)), NN_JSON_OBJECT);
    ck_assert_ptr_null(nn_json_at(shape, 4));
    const struct nn_json *b = nn_json_get(nn_json_get(nn_json_get(j, "nested"), "a"), "b");
    ck_assert(nn_json_bool(nn_json_at(b, 0)));
    ck_assert_int_eq(nn_json_type(nn_json_at(b, 1)), NN_JSON_NULL);
    /* Lookups on the wrong type are NULL, not a crash. */
    ck_assert_ptr_null(nn_json_get(shape, "x"));
    ck_assert_ptr_null(nn_json_key(shape, 0));
    ck_assert_ptr_null(nn_json_get(NULL, "x"));
    nn_json_free(j);

    /* A wide object, like a safetensors header. */
    struct nn_strbuf sb;
    nn_strbuf_init(&sb);
    nn_strbuf_append(&sb, "{", 1);
    for (int i = 0; i < 600; i++) nn_strbuf_printf(&sb, "%s\"k%d\":[%d]", i ? "," : "", i, i);
    nn_strbuf_append(&sb, "}", 1);
    j = parse_ok(sb.data);
    ck_assert_uint_eq(nn_json_len(j), 600);
    ck_assert(nn_json_number(nn_json_at(nn_json_get(j, "k599"), 0)) == 599);
    nn_json_free(j);
    nn_strbuf_free(&sb);
}
END_TEST

START_TEST(depth_limit)
{
    char deep[400];
    for (int depth = 100; depth <= 200; depth += 100) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        struct nn_json *j = NULL;
        enum nn_status st = nn_json_parse(deep, 2 * (size_t)depth, &j);
        if (depth == 100) {
            ck_assert_int_eq(st, NN_OK);
            nn_json_free(j);
        } else {
            ck_assert_int_eq(st, NN_ERR_FORMAT);
            ck_assert_ptr_nonnull(strstr(nn_last_error(), "nesting"));
        }
    }
}
END_TEST

START_TEST(errors)
{
    parse_fails("", 0, "end of input");
    parse_fails("   ", 3, "byte 3");
    parse_fails("{\"a\": 1", 7, "byte 7");
    parse_fails("[1, 2", 5, "expected ',' or ']'");
    parse_fails("{\"a\" 1}", 7, "expected ':'");
    parse_fails("{1: 2}", 6, "string key");
    parse_fails("[1,]", 4, "byte 3");
    parse_fails("{\"a\":1,}", 8, "string key");
    parse_fails("\"abc", 4, "unterminated string");
    parse_fails("\"a\\qb\"", 6, "bad escape at byte 2");
    parse_fails("\"\\u12g4\"", 8, "hex digit");
    parse_fails("\"\\u12\"", 6, "\\u escape");
    parse_fails("\"\\ud83d\"", 8, "surrogate");
    parse_fails("\"\\ud83d\\u0041\"", 14, "surrogate");
    parse_fails("\"\\ude00\"", 8, "surrogate");
    parse_fails("\"a\nb\"", 5, "control character");
    parse_fails("\"\xC3\"", 3, "UTF-8");
    parse_fails("\"\xC0\xAF\"", 4, "UTF-8");        /* overlong '/' */
    parse_fails("\"\xED\xA0\x80\"", 5, "UTF-8");    /* encoded surrogate */
    parse_fails("\"\xF4\x90\x80\x80\"", 6, "UTF-8"); /* above U+10FFFF */
    parse_fails("tru", 3, "unexpected character");
    parse_fails("nul", 3, "unexpected character");
    parse_fails("True", 4, "unexpected character");
    parse_fails("01", 2, "trailing characters after the value at byte 1");
    parse_fails("-", 1, "digit");
    parse_fails("1.", 2, "digit");
    parse_fails("1e", 2, "exponent");
    parse_fails(".5", 2, "unexpected character");
    parse_fails("+1", 2, "unexpected character");
    parse_fails("{} x", 4, "after the value at byte 3");
    parse_fails("[1] [2]", 7, "trailing");
    parse_fails("[\"a\", \"b\\", 9, "unterminated");
    /* An embedded NUL ends nothing: the length rules. */
    parse_fails("[1]\0", 4, "trailing");
    /* Input that is not NUL-terminated: the parser must not read past len. */
    char *buf = malloc(5);
    memcpy(buf, "[123", 4);
    buf[4] = ']';
    parse_fails(buf, 4, "expected ',' or ']'");
    memcpy(buf, "\"abc", 4);
    parse_fails(buf, 4, "unterminated");
    free(buf);

    struct nn_json *j;
    ck_assert_int_eq(nn_json_parse("1", 1, NULL), NN_ERR_ARG);
    ck_assert_int_eq(nn_json_parse(NULL, 3, &j), NN_ERR_ARG);
}
END_TEST

START_TEST(writer_roundtrip)
{
    struct nn_strbuf b;
    nn_strbuf_init(&b);
    const char *nasty = "q\"b\\s/\b\f\n\r\t\x01\x1f caf\xC3\xA9";
    nn_strbuf_append(&b, "{\"s\":", 5);
    nn_strbuf_json_string(&b, nasty);
    nn_strbuf_append(&b, ",\"n\":[", 6);
    const double vals[] = {0.1, -2.5e-300, 1e300, 123456789.0, 1.0 / 3.0, NAN, INFINITY};
    for (int i = 0; i < 7; i++) {
        if (i) nn_strbuf_append(&b, ",", 1);
        nn_strbuf_json_number(&b, vals[i]);
    }
    nn_strbuf_printf(&b, "],\"p\":\"%s-%d\"}", "x", 7);
    ck_assert(!b.failed);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_ptr_nonnull(strstr(b.data, "\\u0001\\u001f"));
    ck_assert_ptr_nonnull(strstr(b.data, "[0.1,"));

    struct nn_json *j = parse_ok(b.data);
    ck_assert_str_eq(nn_json_string(nn_json_get(j, "s")), nasty);
    const struct nn_json *n = nn_json_get(j, "n");
    for (int i = 0; i < 5; i++) ck_assert(nn_json_number(nn_json_at(n, (size_t)i)) == vals[i]);
    ck_assert_int_eq(nn_json_type(nn_json_at(n, 5)), NN_JSON_NULL);
    ck_assert_int_eq(nn_json_type(nn_json_at(n, 6)), NN_JSON_NULL);
    ck_assert_str_eq(nn_json_string(nn_json_get(j, "p")), "x-7");
    nn_json_free(j);

    /* A printf longer than any internal scratch buffer. */
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    nn_strbuf_free(&b);
    nn_strbuf_printf(&b, "<%s>", big);
    ck_assert_uint_eq(b.len, sizeof big + 1);
    ck_assert_int_eq(b.data[0], '<');
    ck_assert_int_eq(b.data[b.len - 1], '>');
    ck_assert_int_eq(b.data[b.len], '\0');
    nn_strbuf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

Suite *suite_json(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, scalars);
    tcase_add_test(tc, strings_and_escapes);
    tcase_add_test(tc, nesting_and_lookup);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, writer_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}
