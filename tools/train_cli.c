#include "tools/train_cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "tools/cli.h"

const char train_cli_run_options_help[] =
    "  --trainable-scopes P,...  train only parameters whose names start with one of these prefixes\n"
    "                            (e.g. fc,AuxLogits or Mixed_7,fc); the rest are frozen, their batch norm\n"
    "                            uses its moving statistics (default: everything trains)\n"
    "  --learning-rate LR        (0.01)\n"
    "  --epochs E                passes over the training split (1), or\n"
    "  --max-steps N             a step count instead\n";

const char train_cli_options_help[] =
    "  --optimizer NAME          sgd | momentum | rmsprop | adam (rmsprop)\n"
    "  --lr-schedule NAME        fixed | exponential (x0.94 every 2 epochs, staircase) | cosine\n"
    "                            (exponential in nn train, fixed in nn finetune)\n"
    "  --lr-decay-factor F       exponential schedule's factor (0.94)\n"
    "  --lr-decay-epochs E       ... applied every E epochs (2)\n"
    "  --warmup-epochs E         linear warmup from 0 over E epochs (0)\n"
    "  --momentum M              momentum and rmsprop (0.9)\n"
    "  --rmsprop-decay D         (0.9)\n"
    "  --epsilon E               rmsprop and adam, inside the square root for rmsprop (1.0)\n"
    "  --adam-beta1 B, --adam-beta2 B   (0.9, 0.999)\n"
    "  --weight-decay W          L2 on conv and fc weights (4e-5)\n"
    "  --label-smoothing S       (0)\n"
    "  --batch-size N            (32)\n"
    "  --image-size S            training and eval size (the start model's, else 299)\n"
    "  --bn-decay D              moving-average decay of batch norm (0.9997)\n"
    "  --bn-mode train|frozen    batch norm of trainable layers: batch statistics (train), or moving\n"
    "                            statistics with gamma/beta fixed (frozen) (nn train: train)\n"
    "  --bn-recalibrate N        recompute trainable batch norm statistics over N training batches\n"
    "                            (eval transform) after training and before each evaluation (0: off)\n"
    "  --aux-weight W            weight of the auxiliary head's loss (0.4)\n"
    "  --no-augment              train on the eval transform instead of random crops, flips, colours\n"
    "  --cache auto|on|off       cache the frozen trunk's outputs when only fc/AuxLogits train and\n"
    "                            augmentation is off (auto)\n"
    "  --seed S                  (1)\n"
    "  --threads T               (all cores)\n"
    "  --eval-every N            validation top-1/top-5 every N steps (0: only at the end)\n"
    "  --no-eval                 no evaluation at the end\n"
    "  --log-every N             metrics line every N steps (10)\n"
    "  --checkpoint-every N      checkpoint every N steps (1000), and\n"
    "  --checkpoint-seconds S    every S seconds (600), and at the end\n"
    "  --keep-checkpoints K      keep the newest K (3)\n";

static bool parse_double(const char *s, double *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* strtod takes "inf" and "nan": no option of nn means either */
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool parse_long(const char *s, long lo, long *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo) return false;
    *out = v;
    return true;
}

static int bad(const char *name, const char *v, const char *want)
{
    fprintf(stderr, "nn: %s %s: %s\n", name, v ? v : "(missing)", want);
    return -1;
}

int train_cli_option(int argc, char **argv, int *i, struct nn_train_options *o)
{
    const char *v = NULL;
    double d;
    long l;
    float f;
#define OPT(name) cli_opt(argc, argv, i, name, &v)
    if (OPT("--trainable-scopes")) {
        if (!v) return bad("--trainable-scopes", v, "needs a list of name prefixes");
        o->trainable_scopes = v;
    } else if (OPT("--optimizer")) {
        if (nn_optimizer_parse(v, &o->opt.kind) != NN_OK) return bad("--optimizer", v, "sgd, momentum, rmsprop or adam");
    } else if (OPT("--learning-rate")) {
        if (!parse_double(v, &d) || !(d > 0)) return bad("--learning-rate", v, "needs a positive number");
        o->learning_rate = d;
    } else if (OPT("--lr-schedule")) {
        if (nn_lr_parse(v, &o->lr_schedule) != NN_OK) return bad("--lr-schedule", v, "fixed, exponential or cosine");
    } else if (OPT("--lr-decay-factor")) {
        if (!parse_double(v, &d) || !(d > 0)) return bad("--lr-decay-factor", v, "needs a positive number");
        o->lr_decay_factor = d;
    } else if (OPT("--lr-decay-epochs")) {
        if (!parse_double(v, &d) || !(d > 0)) return bad("--lr-decay-epochs", v, "needs a positive number");
        o->lr_decay_epochs = d;
    } else if (OPT("--warmup-epochs")) {
        if (!parse_double(v, &d) || d < 0) return bad("--warmup-epochs", v, "needs a number >= 0");
        o->warmup_epochs = d;
    } else if (OPT("--momentum")) {
        if (!cli_float(v, &f) || f < 0 || f >= 1) return bad("--momentum", v, "needs a number in [0, 1)");
        o->opt.momentum = f;
    } else if (OPT("--rmsprop-decay")) {
        if (!cli_float(v, &f) || f < 0 || f >= 1) return bad("--rmsprop-decay", v, "needs a number in [0, 1)");
        o->opt.rms_decay = f;
    } else if (OPT("--epsilon")) {
        if (!cli_float(v, &f) || !(f > 0)) return bad("--epsilon", v, "needs a positive number");
        o->opt.epsilon = f;
    } else if (OPT("--adam-beta1")) {
        if (!cli_float(v, &f) || f < 0 || f >= 1) return bad("--adam-beta1", v, "needs a number in [0, 1)");
        o->opt.beta1 = f;
    } else if (OPT("--adam-beta2")) {
        if (!cli_float(v, &f) || f < 0 || f >= 1) return bad("--adam-beta2", v, "needs a number in [0, 1)");
        o->opt.beta2 = f;
    } else if (OPT("--weight-decay")) {
        if (!cli_float(v, &f) || f < 0) return bad("--weight-decay", v, "needs a number >= 0");
        o->opt.weight_decay = f;
    } else if (OPT("--label-smoothing")) {
        if (!cli_float(v, &f) || f < 0 || f >= 1) return bad("--label-smoothing", v, "needs a number in [0, 1)");
        o->label_smoothing = f;
    } else if (OPT("--batch-size")) {
        if (!cli_int(v, 1, 4096, &o->batch_size)) return bad("--batch-size", v, "needs 1..4096");
    } else if (OPT("--epochs")) {
        if (!parse_double(v, &d) || !(d > 0)) return bad("--epochs", v, "needs a positive number");
        o->epochs = d;
        o->max_steps = 0;
    } else if (OPT("--max-steps")) {
        if (!parse_long(v, 1, &l)) return bad("--max-steps", v, "needs a positive integer");
        o->max_steps = l;
    } else if (OPT("--image-size")) {
        if (!cli_int(v, 75, 4096, &o->image_size)) return bad("--image-size", v, "needs 75..4096");
    } else if (OPT("--bn-decay")) {
        if (!cli_float(v, &f) || f < 0 || f >= 1) return bad("--bn-decay", v, "needs a number in [0, 1)");
        o->bn_decay = f;
    } else if (OPT("--bn-mode")) {
        if (nn_bn_mode_parse(v, &o->bn_mode) != NN_OK) return bad("--bn-mode", v, "train or frozen");
    } else if (OPT("--bn-recalibrate")) {
        if (!cli_int(v, 0, 1000000, &o->bn_recalibrate)) return bad("--bn-recalibrate", v, "needs a batch count >= 0");
    } else if (OPT("--aux-weight")) {
        if (!cli_float(v, &f) || f < 0) return bad("--aux-weight", v, "needs a number >= 0");
        o->aux_weight = f;
    } else if (cli_flag(argv, *i, "--no-augment")) {
        o->augment = false;
    } else if (cli_flag(argv, *i, "--augment")) {
        o->augment = true;
    } else if (OPT("--cache")) {
        if (v && !strcmp(v, "auto")) o->cache = -1;
        else if (v && !strcmp(v, "on")) o->cache = 1;
        else if (v && !strcmp(v, "off")) o->cache = 0;
        else return bad("--cache", v, "auto, on or off");
    } else if (OPT("--seed")) {
        char *end;
        if (!v || !*v || *v == '-') return bad("--seed", v, "needs an integer >= 0");
        errno = 0;
        o->seed = strtoull(v, &end, 10);
        if (errno || *end) return bad("--seed", v, "needs an integer >= 0");
    } else if (OPT("--threads")) {
        if (!cli_int(v, 1, 256, &o->threads)) return bad("--threads", v, "needs 1..256");
    } else if (OPT("--eval-every")) {
        if (!parse_long(v, 0, &o->eval_every)) return bad("--eval-every", v, "needs a step count >= 0");
    } else if (cli_flag(argv, *i, "--no-eval")) {
        o->eval_at_end = false;
    } else if (OPT("--log-every")) {
        if (!parse_long(v, 1, &o->log_every)) return bad("--log-every", v, "needs a positive step count");
    } else if (OPT("--checkpoint-every")) {
        if (!parse_long(v, 0, &o->checkpoint_every)) return bad("--checkpoint-every", v, "needs a step count >= 0");
    } else if (OPT("--checkpoint-seconds")) {
        if (!parse_double(v, &d) || d < 0) return bad("--checkpoint-seconds", v, "needs seconds >= 0");
        o->checkpoint_seconds = d;
    } else if (OPT("--keep-checkpoints")) {
        if (!cli_int(v, 1, 1000000, &o->keep_checkpoints)) return bad("--keep-checkpoints", v, "needs a count >= 1");
    } else {
        return 0;
    }
#undef OPT
    return 1;
}

/* ---- signals ---- */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

volatile sig_atomic_t *train_cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C is not caught: it ends the process */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &stop_signal;
}

int train_cli_fail(enum nn_status st)
{
    if (st != NN_ERR_CANCELLED || !stop_signal) return cli_fail();
    int sig = stop_signal;
    fprintf(stderr, "nn: interrupted by %s: %s\n", sig == SIGINT ? "Ctrl-C (SIGINT)" : sig == SIGTERM ? "SIGTERM" : "a signal",
            nn_last_error());
    return 128 + sig;
}

/* ---- progress ---- */

static void clear_bar(struct train_display *d)
{
    if (d->bar_drawn) {
        fprintf(stderr, "\r\033[K");
        d->bar_drawn = false;
    }
}

static void on_log(enum nn_log_level level, const char *msg, void *user)
{
    struct train_display *d = user;
    clear_bar(d);
    if (level >= NN_LOG_WARN) fprintf(stderr, "nn: %s: %s\n", level == NN_LOG_WARN ? "warning" : "error", msg);
    else fprintf(stderr, "nn: %s\n", msg);
    d->last = 0; /* redraw the bar at once */
}

void train_display_init(struct train_display *d, bool quiet, const char *stage)
{
    memset(d, 0, sizeof *d);
    d->quiet = quiet;
    d->stage = stage;
    d->tty = isatty(STDERR_FILENO);
    nn_log_set(on_log, d, NN_LOG_INFO);
}

static void eta_text(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "--:--");
    else if (s >= 3600) snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else snprintf(buf, n, "%02d:%02d", (int)s / 60, (int)s % 60);
}

void train_display_progress(void *user, const struct nn_train_progress *p)
{
    struct train_display *d = user;
    if (d->quiet) return;
    double now = cli_now();
    bool last = p->done >= p->total;
    if (d->phase != p->phase) { /* a new phase ends the old bar */
        if (d->bar_drawn) fprintf(stderr, "\n");
        d->bar_drawn = false;
        d->phase = p->phase;
        d->last = 0;
    }
    double interval = d->tty ? 0.25 : 10.0;
    if (!last && now - d->last < interval) return;
    d->last = now;
    char eta[32], head[96];
    eta_text(eta, sizeof eta, p->eta);
    snprintf(head, sizeof head, "%s%s%s", d->stage ? d->stage : "", d->stage ? " " : "", p->phase);
    char body[256];
    if (!strcmp(p->phase, "training"))
        snprintf(body, sizeof body, "step %ld/%ld epoch %.2f loss %.4f lr %.3g %.1f img/s ETA %s", p->done, p->total,
                 p->epoch, p->loss, p->lr, p->images_per_sec, eta);
    else
        snprintf(body, sizeof body, "%ld/%ld batches ETA %s", p->done, p->total, eta);
    if (d->tty) {
        int width = 20, filled = p->total > 0 ? (int)((double)p->done / p->total * width) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %s", head, bar, body);
        d->bar_drawn = true;
        if (last) {
            fprintf(stderr, "\n");
            d->bar_drawn = false;
        }
    } else if (!last || !strcmp(p->phase, "training")) {
        fprintf(stderr, "%s: %s\n", head, body);
    }
    fflush(stderr);
}

void train_display_done(struct train_display *d)
{
    if (d->bar_drawn) fprintf(stderr, "\n");
    d->bar_drawn = false;
    cli_log_setup(false); /* the log callback must not outlive d */
}

void train_print_result(const char *run_dir, const struct nn_train_result *r)
{
    printf("%s: %ld steps in %.1f s%s, last loss %.4f\n", run_dir, r->steps, r->seconds,
           r->cached ? " (bottleneck cache)" : "", r->last_loss);
    if (r->recalibrated) printf("  batch norm statistics recalibrated\n");
    if (r->evaluated)
        printf("  validation: top-1 %.4f, top-5 %.4f (%ld images)\n", r->top1, r->top5, r->eval_count);
    printf("  model: %s/final.nnm\n", run_dir);
}
