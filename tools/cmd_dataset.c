/* nn dataset info|verify|bench: look at, check and time a converted dataset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/pipeline.h"

static const char usage[] =
    "usage: nn dataset info DIR\n"
    "       nn dataset verify DIR [--threads T] [-q]\n"
    "       nn dataset bench DIR [--threads 1,2] [--size 299] [--batch 32] [--batches N] [--eval]\n"
    "  info    classes, examples per split and class, image sizes, how it was converted\n"
    "  verify  read every record, check every CRC, decode every image; exit 1 on any corruption\n"
    "  bench   decoded-and-augmented training images per second, per thread count\n";

static int info(const char *dir)
{
    struct nn_dataset_desc d;
    if (nn_dataset_desc_read(dir, &d) != NN_OK) return cli_fail();
    printf("%s: nn dataset version %d, %d classes\n", dir, d.version, d.num_classes);
    printf("source: %s (split: %s", d.source, d.split_mode);
    if (!strcmp(d.split_mode, "fraction")) printf(" %g", d.validation_fraction);
    if (!strcmp(d.split_mode, "count")) printf(" %ld", d.validation_count);
    printf(", seed %llu)\n", (unsigned long long)d.seed);
    printf("image size: width %d..%d (mean %.1f), height %d..%d (mean %.1f)\n", d.min_width, d.max_width,
           d.mean_width, d.min_height, d.max_height, d.mean_height);
    int w = 5;
    for (int c = 0; c < d.num_classes; c++)
        if ((int)strlen(d.classes[c]) > w) w = (int)strlen(d.classes[c]);
    printf("  %4s  %-*s %10s %10s\n", "id", w, "class", "train", "validation");
    for (int c = 0; c < d.num_classes; c++)
        printf("  %4d  %-*s %10ld %10ld\n", c, w, d.classes[c], d.split[0].per_class[c], d.split[1].per_class[c]);
    printf("  %4s  %-*s %10ld %10ld\n", "", w, "total", d.split[0].count, d.split[1].count);
    printf("shards: train %d, validation %d\n", d.split[0].num_shards, d.split[1].num_shards);
    if (d.num_skipped) {
        printf("skipped at conversion: %ld file%s\n", d.num_skipped, d.num_skipped == 1 ? "" : "s");
        for (long i = 0; i < d.num_skipped; i++) printf("  %s: %s\n", d.skipped[i].path, d.skipped[i].reason);
    }
    if (d.hidden_files) printf("hidden files ignored at conversion: %ld\n", d.hidden_files);
    nn_dataset_desc_free(&d);
    return 0;
}

struct progress {
    struct cli_progress bar;
    bool started, quiet;
};

static void on_progress(void *user, const char *stage, long done, long total)
{
    struct progress *p = user;
    if (p->quiet) return;
    if (!p->started) {
        cli_progress_start(&p->bar, stage, "records");
        p->started = true;
    }
    if (done >= total)
        cli_progress_finish(&p->bar, done, total);
    else
        cli_progress_update(&p->bar, done, total);
}

static int verify(const char *dir, int threads, bool quiet)
{
    struct progress prog = {.quiet = quiet};
    struct nn_verify_report rep;
    enum nn_status st = nn_dataset_verify(dir, threads, on_progress, &prog, &rep);
    if (st != NN_OK) {
        cli_fail();
        if (rep.bad) fprintf(stderr, "nn: %s: %ld problem%s in %ld records\n", dir, rep.bad, rep.bad == 1 ? "" : "s",
                             rep.records);
        return 1;
    }
    printf("%s: %ld records verified: every CRC matches and every image decodes\n", dir, rep.records);
    return 0;
}

static int bench(const char *dir, const char *threads_list, int size, int batch, int batches, bool eval)
{
    int count;
    char **list = cli_split(threads_list, &count);
    if (!list || count == 0) {
        cli_list_free(list);
        return cli_error("--threads needs a list like 1,2");
    }
    int rc = 0;
    for (int t = 0; t < count && rc == 0; t++) {
        int threads;
        if (!cli_int(list[t], 1, 256, &threads)) {
            rc = cli_error("--threads: '%s' is not a thread count", list[t]);
            break;
        }
        struct nn_pipeline_options o;
        nn_pipeline_options_default(&o);
        o.image_size = size;
        o.batch_size = batch;
        o.threads = threads;
        o.train_transform = !eval;
        struct nn_pipeline *p;
        if (nn_pipeline_open(dir, NN_SPLIT_TRAIN, &o, &p) != NN_OK) {
            rc = cli_fail();
            break;
        }
        const struct nn_batch *b;
        /* The first batch includes starting the threads and filling both slots. */
        nn_pipeline_next(p, &b);
        double t0 = cli_now();
        long images = 0;
        for (int i = 0; i < batches && b; i++) {
            nn_pipeline_next(p, &b);
            if (b) images += b->n;
        }
        double dt = cli_now() - t0;
        printf("%d thread%s: %.1f images/s (%s transform, %dx%d, %ld images in %.2f s)\n", threads,
               threads == 1 ? " " : "s", dt > 0 ? (double)images / dt : 0.0, eval ? "eval" : "train", size, size,
               images, dt);
        fflush(stdout);
        nn_pipeline_close(p);
    }
    cli_list_free(list);
    return rc;
}

int cmd_dataset(int argc, char **argv)
{
    if (argc < 2) return cli_usage(usage, "need info, verify or bench");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        printf("%s", usage);
        return 0;
    }
    if (strcmp(sub, "info") && strcmp(sub, "verify") && strcmp(sub, "bench"))
        return cli_usage(usage, "unknown dataset command '%s'", sub);
    const char *dir = NULL, *v, *threads_list = "1,2";
    int threads = 0, size = 299, batch = 32, batches = 8;
    bool quiet = false, eval = false;
    for (int i = 2; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            printf("%s", usage);
            return 0;
        } else if (cli_flag(argv, i, "-q")) {
            quiet = true;
        } else if (cli_flag(argv, i, "--eval")) {
            eval = true;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!v) return cli_usage(usage, "--threads needs a value");
            threads_list = v;
            if (strcmp(sub, "bench") && !cli_int(v, 1, 256, &threads))
                return cli_usage(usage, "--threads needs a number in 1..256");
        } else if (cli_opt(argc, argv, &i, "--size", &v)) {
            if (!cli_int(v, 1, 4096, &size)) return cli_usage(usage, "--size needs a number in 1..4096");
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if (!cli_int(v, 1, 4096, &batch)) return cli_usage(usage, "--batch needs a number in 1..4096");
        } else if (cli_opt(argc, argv, &i, "--batches", &v)) {
            if (!cli_int(v, 1, 1000000, &batches)) return cli_usage(usage, "--batches needs a number >= 1");
        } else if (argv[i][0] == '-') {
            return cli_usage(usage, "unknown option %s", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage(usage, "unexpected argument %s", argv[i]);
        }
    }
    if (!dir) return cli_usage(usage, "need a dataset directory");
    cli_log_setup(false);
    if (!strcmp(sub, "info")) return info(dir);
    if (!strcmp(sub, "verify")) return verify(dir, threads, quiet);
    return bench(dir, threads_list, size, batch, batches, eval);
}
