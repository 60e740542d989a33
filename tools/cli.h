/* Shared pieces of the nn commands: option parsing, error printing, logging
 * and the progress display. */
#ifndef NN_TOOLS_CLI_H
#define NN_TOOLS_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* Prints "nn: error: <the library's last error>" and returns 1. */
int cli_fail(void);
/* Prints "nn: error: <message>" and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the message and the usage text to stderr and returns 2. */
int cli_usage(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Matches argv[*i] against "--name VALUE" or "--name=VALUE"; on a match
 * advances *i past the value and sets *value. A missing value sets *value
 * to NULL and still returns true (callers report it). */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
/* Matches a flag without value. */
bool cli_flag(char **argv, int i, const char *name);
/* Parses an integer / a float option value with range checking. */
bool cli_int(const char *s, int lo, int hi, int *out);
/* cli_float refuses what is not a finite number ("inf", "nan", an overflow). */
bool cli_float(const char *s, float *out);

/* Splits "a,b,c" into a NULL-terminated array (free with cli_list_free). */
char **cli_split(const char *s, int *count);
void cli_list_free(char **list);

/* Class names from a labels file: one name per line, or "id:name" lines
 * whose ids count up from 0 (the labels.txt nn convert writes). Returns a
 * NULL-terminated list (free with cli_list_free) and its length, or NULL
 * after printing the error. */
char **cli_read_labels(const char *path, int *count);

/* Routes the library's log to stderr ("nn: warning: ..."), info level and up. */
void cli_log_setup(bool verbose);

/* Seconds on a monotonic clock. */
double cli_now(void);
/* Bytes in the file at path, or -1. */
long long cli_file_size(const char *path);

/* A progress display: a bar with rate and ETA on a terminal, a plain line
 * every few seconds otherwise. */
struct cli_progress {
    const char *label;
    const char *unit;
    double start, last;
    bool tty;
    bool drawn;
};
void cli_progress_start(struct cli_progress *p, const char *label, const char *unit);
void cli_progress_update(struct cli_progress *p, long done, long total);
void cli_progress_finish(struct cli_progress *p, long done, long total);

#endif
