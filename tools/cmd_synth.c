/* nn synth: a synthetic folder-labelled photo set (io/synth.h), for trying
 * the training path without downloading anything. */
#include <stdio.h>
#include <stdlib.h>

#include "io/synth.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn synth OUT_DIR [--classes N] [--train N] [--val N] [--size PX] [--seed S]\n"
    "  Writes OUT_DIR/train/class<c>/img<k>.jpg and OUT_DIR/validation/class<c>/img<k>.jpg: noisy\n"
    "  photos whose classes differ by colour, each with a bright square. nn convert and nn finetune\n"
    "  take OUT_DIR as it is.\n"
    "  --classes N    number of classes (3)\n"
    "  --train N      training photos per class (60)\n"
    "  --val N        validation photos per class (20)\n"
    "  --size PX      photo side in pixels (96)\n"
    "  --seed S       the same seed gives the same photos (1)\n";

int cmd_synth(int argc, char **argv)
{
    const char *out = NULL, *v;
    int classes = 3, train = 60, val = 20, size = 96, seed = 1;
    for (int i = 1; i < argc; i++) {
        v = "";
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "--classes", &v)) {
            if (v && !cli_int(v, 1, 10000, &classes)) return cli_usage(usage, "--classes must be 1..10000");
        } else if (cli_opt(argc, argv, &i, "--train", &v)) {
            if (v && !cli_int(v, 1, 1000000, &train)) return cli_usage(usage, "--train must be 1..1000000");
        } else if (cli_opt(argc, argv, &i, "--val", &v)) {
            if (v && !cli_int(v, 0, 1000000, &val)) return cli_usage(usage, "--val must be 0..1000000");
        } else if (cli_opt(argc, argv, &i, "--size", &v)) {
            if (v && !cli_int(v, 8, 4096, &size)) return cli_usage(usage, "--size must be 8..4096");
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (v && !cli_int(v, 0, 2147483647, &seed)) return cli_usage(usage, "--seed needs a non-negative integer");
        } else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!out) out = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
        if (!v) return cli_usage(usage, "%s needs a value", argv[i]);
    }
    if (!out) return cli_usage(usage, "need OUT_DIR");
    cli_log_setup(false);
    double t0 = cli_now();
    if (nn_synth_photos(out, classes, train, val, size, (uint64_t)seed) != NN_OK) return cli_fail();
    printf("%s: %d classes, %d training + %d validation photos of %dx%d in %.1f s\n", out, classes, classes * train,
           classes * val, size, size, cli_now() - t0);
    return 0;
}
