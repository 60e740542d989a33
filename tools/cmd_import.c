/* nn import: a torchvision/timm safetensors checkpoint -> an nn model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn import SRC.safetensors -o MODEL.nnm [--num-classes N] [--labels labels.txt]\n"
    "                 [--exclude PREFIX,...] [--no-aux] [--image-size S] [--seed S]\n"
    "  Reads torchvision/timm names and PyTorch layouts (F32, F16, BF16). Tensors under an\n"
    "  --exclude prefix are initialised fresh (e.g. --exclude fc,AuxLogits for a new head).\n"
    "  labels.txt: one class name per line, or 'id:name' lines.\n";

int cmd_import(int argc, char **argv)
{
    const char *src = NULL, *out = NULL, *labels = NULL, *exclude = NULL;
    int num_classes = 0, image_size = 299, seed = 0;
    bool aux = true;
    for (int i = 1; i < argc; i++) {
        const char *v = "";
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--num-classes", &v)) {
            if (!cli_int(v, 1, 1000000, &num_classes)) return cli_usage(usage, "--num-classes needs a positive integer");
        } else if (cli_opt(argc, argv, &i, "--image-size", &v)) {
            if (!cli_int(v, 75, 4096, &image_size)) return cli_usage(usage, "--image-size must be 75..4096");
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            if (!cli_int(v, 0, 2147483647, &seed)) return cli_usage(usage, "--seed needs a non-negative integer");
        } else if (cli_opt(argc, argv, &i, "--labels", &v)) labels = v;
        else if (cli_opt(argc, argv, &i, "--exclude", &v)) exclude = v;
        else if (cli_flag(argv, i, "--no-aux")) aux = false;
        else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!src) src = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
        if (!v) return cli_usage(usage, "%s needs a value", argv[i]);
    }
    if (!src || !out) return cli_usage(usage, "need SRC and -o MODEL");
    cli_log_setup(false);

    char **names = NULL, **excl = NULL;
    int nnames = 0, nexcl = 0, rc = 0;
    if (labels && !(names = cli_read_labels(labels, &nnames))) return 1;
    if (names && num_classes && nnames != num_classes) {
        rc = cli_error("%s has %d classes but --num-classes is %d", labels, nnames, num_classes);
        goto done;
    }
    if (names) num_classes = nnames;
    if (exclude && !(excl = cli_split(exclude, &nexcl))) {
        rc = cli_error("out of memory");
        goto done;
    }
    struct nn_import_options opt = {
        .num_classes = num_classes,
        .aux_logits = aux,
        .image_size = image_size,
        .exclude = (const char *const *)excl,
        .nexclude = nexcl,
        .class_names = (const char *const *)names,
        .seed = (uint64_t)seed,
    };
    struct nn_model *m;
    struct nn_import_report rep;
    if (nn_model_import(src, &opt, &m, &rep) != NN_OK) {
        rc = cli_fail();
        goto done;
    }
    for (int i = 0; i < rep.nfresh; i++) fprintf(stderr, "nn: initialised fresh: %s\n", rep.fresh[i]);
    if (nn_model_save(m, out) != NN_OK) rc = cli_fail();
    else
        fprintf(stderr, "nn: %s: %d tensors imported, %d initialised fresh, %d classes -> %s\n", src, rep.loaded,
                rep.nfresh, m->cfg.num_classes, out);
    nn_import_report_free(&rep);
    nn_model_free(m);
done:
    cli_list_free(names);
    cli_list_free(excl);
    return rc;
}
