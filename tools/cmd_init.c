/* nn init: a model with fresh weights (TF-slim's initialisers), the start
 * of a training run from scratch (nn finetune --init-from, nn train). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "nn/nn.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn init -o MODEL --num-classes N [--image-size S] [--no-aux] [--labels FILE] [--seed S]\n"
    "  Writes a model with freshly initialised weights.\n"
    "  --num-classes N   classifier outputs\n"
    "  --image-size S    input side in pixels, 75..4096 (299)\n"
    "  --no-aux          without the auxiliary head\n"
    "  --labels FILE     class names: one per line, or 'id:name' lines (default \"0\", \"1\", ...)\n"
    "  --seed S          the weights' seed (1)\n";

int cmd_init(int argc, char **argv)
{
    const char *out = NULL, *labels = NULL, *v;
    int num_classes = 0, image_size = 299, seed = 1;
    bool aux = true;
    for (int i = 1; i < argc; i++) {
        v = "";
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--num-classes", &v)) {
            if (v && !cli_int(v, 1, 1000000, &num_classes)) return cli_usage(usage, "--num-classes must be 1..1000000");
        } else if (cli_opt(argc, argv, &i, "--image-size", &v)) {
            if (v && !cli_int(v, 75, 4096, &image_size)) return cli_usage(usage, "--image-size must be 75..4096");
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (v && !cli_int(v, 0, 2147483647, &seed)) return cli_usage(usage, "--seed needs a non-negative integer");
        } else if (cli_opt(argc, argv, &i, "--labels", &v)) labels = v;
        else if (cli_flag(argv, i, "--no-aux")) aux = false;
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
        if (!v) return cli_usage(usage, "%s needs a value", argv[i]);
    }
    if (!out) return cli_usage(usage, "need -o MODEL");
    cli_log_setup(false);
    char **names = NULL;
    int nnames = 0, rc;
    if (labels && !(names = cli_read_labels(labels, &nnames))) return 1;
    if (labels && num_classes && nnames != num_classes) {
        cli_list_free(names);
        return cli_error("%s has %d classes but --num-classes is %d", labels, nnames, num_classes);
    }
    if (labels) num_classes = nnames;
    if (num_classes < 1) return cli_usage(usage, "need --num-classes N (or --labels FILE)");
    struct nn_config cfg = nn_config_default(num_classes);
    cfg.image_size = image_size;
    cfg.aux_logits = aux;
    struct nn_model *m = NULL;
    rc = 0;
    if (nn_model_new(&cfg, (const char *const *)names, (uint64_t)seed, &m) != NN_OK || nn_model_save(m, out) != NN_OK)
        rc = cli_fail();
    else
        printf("%s: fresh Inception-v3, %d classes, %dx%d input%s, seed %d\n", out, num_classes, image_size,
               image_size, aux ? ", aux head" : "", seed);
    nn_model_free(m);
    cli_list_free(names);
    return rc;
}
