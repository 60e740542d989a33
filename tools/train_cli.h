/* Shared by `nn train` and `nn finetune`: the training options on the
 * command line and the progress display of a run. */
#ifndef NN_TOOLS_TRAIN_CLI_H
#define NN_TOOLS_TRAIN_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "train/trainer.h"

/* The option text of --help: options of one run (nn train only; per stage
 * in nn finetune), and options both commands take. */
extern const char train_cli_run_options_help[];
extern const char train_cli_options_help[];

/* Tries argv[*i] as one of the training options and applies it to o.
 * Returns 1 when it was one (advancing *i past its value), 0 when it is not
 * a training option, -1 on a bad value (message printed). */
int train_cli_option(int argc, char **argv, int *i, struct nn_train_options *o);

/* The progress callback: a one-line bar (step, loss, lr, images/s, ETA) on
 * a terminal, a plain line every few seconds otherwise. Also installs a log
 * callback that clears the bar before a message. */
struct train_display {
    bool tty;
    bool quiet;
    bool bar_drawn;
    double last;
    const char *phase;
    const char *stage;  /* prefix, e.g. "stage 1" */
};
void train_display_init(struct train_display *d, bool quiet, const char *stage);
void train_display_progress(void *user, const struct nn_train_progress *p);
/* Ends a bar line that is still open and gives the log back to the CLI's
 * plain stderr logger. */
void train_display_done(struct train_display *d);

/* Ctrl-C (SIGINT) and SIGTERM during a run: the first sets the flag this
 * returns (pass it as nn_train_options.cancel), so the run stops after its
 * current step with a checkpoint; the handler is then reset, so a second
 * signal ends the process at once. */
volatile sig_atomic_t *train_cli_catch_signals(void);
/* After nn_train failed: prints the error; returns the exit status, 128 +
 * the signal's number (130 for Ctrl-C, 143 for SIGTERM) for a run stopped
 * by one, else 1. */
int train_cli_fail(enum nn_status st);

/* Prints a summary of a finished run to stdout. */
void train_print_result(const char *run_dir, const struct nn_train_result *r);

#endif
