/* nn convert: folders of labelled photos into a dataset of record shards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn convert SRC_DIR -o OUT_DIR [--validation-fraction F | --validation-count N] [--shards N]\n"
    "                  [--seed S] [--threads T] [-q]\n"
    "  SRC_DIR holds one folder of photos per class, or train/ and validation/ (or val/) folders that each do.\n"
    "  --validation-fraction F  share of each class held out when SRC_DIR is not split (default 0.1)\n"
    "  --validation-count N     hold out N examples in total instead, stratified by class\n"
    "  --shards N               training shards (default: one per 1024 examples); validation gets as many\n"
    "                           as keeps its shards about as full\n"
    "  --seed S                 seed of the split and of the record order (default 1)\n"
    "  --threads T              decoding threads (default: all cores)\n"
    "  -q                       no progress display\n";

/* Shows each stage of the conversion as its own progress line. */
struct progress {
    struct cli_progress bar;
    char stage[32];
    bool quiet;
};

static void on_progress(void *user, const char *stage, long done, long total)
{
    struct progress *p = user;
    if (p->quiet) return;
    if (strcmp(p->stage, stage)) {
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        cli_progress_start(&p->bar, p->stage, "files");
    }
    if (done >= total)
        cli_progress_finish(&p->bar, done, total);
    else
        cli_progress_update(&p->bar, done, total);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static void print_result(const char *out_dir, const struct nn_convert_summary *sum)
{
    struct nn_dataset_desc d;
    if (nn_dataset_desc_read(out_dir, &d) != NN_OK) return;
    printf("classes (id: name):\n");
    for (int c = 0; c < d.num_classes; c++) printf("  %d: %s\n", c, d.classes[c]);
    for (int s = 0; s < NN_SPLIT_COUNT; s++) {
        printf("%s: %ld examples in %d shard%s (", nn_split_name(s), d.split[s].count, d.split[s].num_shards,
               d.split[s].num_shards == 1 ? "" : "s");
        for (int c = 0; c < d.num_classes; c++) printf("%s%s %ld", c ? ", " : "", d.classes[c], d.split[s].per_class[c]);
        printf(")\n");
    }
    if (d.num_skipped) {
        printf("skipped %ld file%s (not usable image%s):\n", d.num_skipped, d.num_skipped == 1 ? "" : "s",
               d.num_skipped == 1 ? "" : "s");
        for (long i = 0; i < d.num_skipped; i++) printf("  %s: %s\n", d.skipped[i].path, d.skipped[i].reason);
    }
    if (sum->hidden) printf("ignored %ld hidden file%s or folder%s\n", sum->hidden, sum->hidden == 1 ? "" : "s",
                            sum->hidden == 1 ? "" : "s");
    printf("wrote %s (%ld of %ld files kept) in %.1f s\n", out_dir, sum->examples[0] + sum->examples[1],
           sum->files_seen, sum->seconds);
    nn_dataset_desc_free(&d);
}

int cmd_convert(int argc, char **argv)
{
    const char *src = NULL, *out = NULL, *v;
    struct nn_convert_options opt;
    nn_convert_options_default(&opt);
    struct progress prog = {0};
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            printf("%s", usage);
            return 0;
        } else if (cli_flag(argv, i, "-q")) {
            prog.quiet = true;
        } else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return cli_usage(usage, "-o needs a directory");
            out = v;
        } else if (cli_opt(argc, argv, &i, "--validation-fraction", &v)) {
            float f;
            if (!cli_float(v, &f) || !(f >= 0 && f < 1))
                return cli_usage(usage, "--validation-fraction needs a number in [0, 1)");
            opt.validation_fraction = f;
        } else if (cli_opt(argc, argv, &i, "--validation-count", &v)) {
            int n;
            if (!cli_int(v, 0, 1 << 30, &n)) return cli_usage(usage, "--validation-count needs a count >= 0");
            opt.validation_count = n;
        } else if (cli_opt(argc, argv, &i, "--shards", &v)) {
            if (!cli_int(v, 1, 99999, &opt.shards)) return cli_usage(usage, "--shards needs a number in 1..99999");
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!parse_u64(v, &opt.seed)) return cli_usage(usage, "--seed needs a non-negative integer");
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int(v, 1, 256, &opt.threads)) return cli_usage(usage, "--threads needs a number in 1..256");
        } else if (argv[i][0] == '-') {
            return cli_usage(usage, "unknown option %s", argv[i]);
        } else if (!src) {
            src = argv[i];
        } else {
            return cli_usage(usage, "unexpected argument %s", argv[i]);
        }
    }
    if (!src) return cli_usage(usage, "need SRC_DIR");
    if (!out) return cli_usage(usage, "need -o OUT_DIR");
    if (opt.validation_fraction >= 0 && opt.validation_count >= 0)
        return cli_usage(usage, "give --validation-fraction or --validation-count, not both");

    cli_log_setup(false);
    opt.progress = on_progress;
    opt.progress_user = &prog;
    struct nn_convert_summary sum;
    if (nn_dataset_convert(src, out, &opt, &sum) != NN_OK) return cli_fail();
    print_result(out, &sum);
    return 0;
}
