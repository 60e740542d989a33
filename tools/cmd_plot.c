/* nn plot: a picture of a run, from its metrics.jsonl: training loss and
 * validation accuracy against steps, as an SVG file. A finetune directory
 * (stage1/ and stage2/) is drawn as one run, stage 2 after stage 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "io/json.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn plot RUN_DIR -o FILE.svg\n"
    "  Draws the training loss and the validation top-1/top-5 of a run (nn train's RUN_DIR, or nn\n"
    "  finetune's, whose two stages are drawn one after the other) against the step.\n";

struct series {
    double *x, *y;
    int n, cap;
};

static bool push(struct series *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return false;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return false;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return true;
}

enum { LOSS, TOP1, TOP5, NSERIES };

/* Adds one metrics file's points, steps shifted by offset; returns its last step. */
static int read_metrics(const char *path, double offset, struct series *s, double *last_step)
{
    char *text;
    size_t len;
    if (nn_read_file(path, &text, &len) != NN_OK) return -1;
    *last_step = offset;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        struct nn_json *j;
        if (nn_json_parse(line, strlen(line), &j) != NN_OK) continue;
        const struct nn_json *st = nn_json_get(j, "step");
        if (st && nn_json_type(st) == NN_JSON_NUMBER) {
            double x = offset + nn_json_number(st);
            const char *keys[NSERIES] = {"loss", "val_top1", "val_top5"};
            for (int k = 0; k < NSERIES; k++) {
                const struct nn_json *v = nn_json_get(j, keys[k]);
                if (v && nn_json_type(v) == NN_JSON_NUMBER && isfinite(nn_json_number(v)))
                    push(&s[k], x, nn_json_number(v));
            }
            if (x > *last_step) *last_step = x;
        }
        nn_json_free(j);
    }
    free(text);
    return 0;
}

static void polyline(FILE *fp, const struct series *s, double x0, double x1, double y0, double y1, int px, int py,
                     int w, int h, const char *color, bool dots)
{
    if (s->n == 0) return;
    fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (int i = 0; i < s->n; i++)
        fprintf(fp, "%.1f,%.1f ", px + (s->x[i] - x0) / (x1 - x0) * w, py + h - (s->y[i] - y0) / (y1 - y0) * h);
    fprintf(fp, "\"/>\n");
    if (dots)
        for (int i = 0; i < s->n; i++)
            fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px + (s->x[i] - x0) / (x1 - x0) * w,
                    py + h - (s->y[i] - y0) / (y1 - y0) * h, color);
}

static void axes(FILE *fp, double x0, double x1, double y0, double y1, int px, int py, int w, int h,
                 const char *title)
{
    fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", px, py, w, h);
    fprintf(fp, "<text x=\"%d\" y=\"%d\" font-size=\"14\">%s</text>\n", px, py - 8, title);
    for (int i = 0; i <= 4; i++) {
        double v = y0 + (y1 - y0) * i / 4;
        int y = py + h - h * i / 4;
        fprintf(fp, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>\n", px, y, px + w, y);
        fprintf(fp, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n", px - 4, y + 4, v);
        double s = x0 + (x1 - x0) * i / 4;
        int x = px + w * i / 4;
        fprintf(fp, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.0f</text>\n", x, py + h + 14, s);
    }
}

int cmd_plot(int argc, char **argv)
{
    const char *run = NULL, *out = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "-o", &v)) {
            if (!v) return cli_usage(usage, "-o needs a file name");
            out = v;
        } else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!run) run = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
    }
    if (!run || !out) return cli_usage(usage, "need RUN_DIR and -o FILE.svg");
    struct series s[NSERIES];
    memset(s, 0, sizeof s);
    char path[4096];
    double last = 0, boundary = -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    if (read_metrics(path, 0, s, &last) != 0) {
        snprintf(path, sizeof path, "%s/stage1/metrics.jsonl", run);
        if (read_metrics(path, 0, s, &last) != 0)
            return cli_error("%s: no metrics.jsonl (nor stage1/metrics.jsonl): not a run directory", run);
        snprintf(path, sizeof path, "%s/stage2/metrics.jsonl", run);
        boundary = last;
        read_metrics(path, boundary, s, &last);
    }
    if (s[LOSS].n == 0) return cli_error("%s: the metrics hold no training loss yet", run);
    double x0 = 0, x1 = last > 0 ? last : 1, lmax = 0;
    for (int i = 0; i < s[LOSS].n; i++) lmax = fmax(lmax, s[LOSS].y[i]);
    if (!(lmax > 0)) lmax = 1;
    FILE *fp = fopen(out, "w");
    if (!fp) return cli_error("%s: cannot write", out);
    const int W = 760, H = 220, PX = 60;
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"840\" height=\"560\" font-family=\"sans-serif\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    axes(fp, x0, x1, 0, lmax, PX, 30, W, H, "training loss (cross-entropy + 0.4 aux) against step");
    polyline(fp, &s[LOSS], x0, x1, 0, lmax, PX, 30, W, H, "#c33", false);
    axes(fp, x0, x1, 0, 1, PX, 310, W, H, "validation accuracy: top-1 (blue), top-5 (grey)");
    polyline(fp, &s[TOP5], x0, x1, 0, 1, PX, 310, W, H, "#999", true);
    polyline(fp, &s[TOP1], x0, x1, 0, 1, PX, 310, W, H, "#36c", true);
    if (boundary > 0)
        for (int k = 0; k < 2; k++) {
            double x = PX + (boundary - x0) / (x1 - x0) * W;
            int py = k ? 310 : 30;
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>\n"
                        "<text x=\"%.1f\" y=\"%d\" font-size=\"11\">stage 2</text>\n",
                    x, py, x, py + H, x + 4, py + 12);
        }
    fprintf(fp, "<text x=\"%d\" y=\"552\" font-size=\"12\" text-anchor=\"middle\">step</text>\n</svg>\n", PX + W / 2);
    bool ok = !ferror(fp);
    ok = fclose(fp) == 0 && ok;
    for (int k = 0; k < NSERIES; k++) {
        free(s[k].x);
        free(s[k].y);
    }
    if (!ok) return cli_error("%s: write failed", out);
    printf("%s: %d loss points, %d evaluations, steps 0..%.0f\n", out, s[LOSS].n, s[TOP1].n, last);
    return 0;
}
