/* nn info: what a model file holds. */
#include <stdio.h>

#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] = "usage: nn info MODEL.nnm [--tensors]\n";

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool tensors = false;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_flag(argv, i, "--tensors")) tensors = true;
        else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!path) path = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
    }
    if (!path) return cli_usage(usage, "need MODEL");
    struct nn_model *m;
    if (nn_model_load(path, &m) != NN_OK) return cli_fail();
    const struct nn_config *c = &m->cfg;
    printf("%s: inception_v3, %d classes, input %dx%d, aux head %s%s\n", path, c->num_classes, c->image_size,
           c->image_size, c->aux_logits ? "on" : "off", c->folded ? ", batch norm folded (inference only)" : "");
    printf("parameters: %d tensors, %zu values\n", m->params.count, m->params.total);
    /* nn_model_load refuses a file whose header, metadata, table or any tensor fails its CRC */
    printf("checksums: header, metadata, tensor table and all %d tensors verified (CRC-32C)\n", m->params.count);
    printf("preprocess: central crop %.3f, bilinear resize, x/127.5 - 1\n", m->central_fraction);
    printf("classes:");
    for (int i = 0; i < c->num_classes; i++) printf("%s%d:%s", i ? ", " : " ", i, m->class_names[i]);
    printf("\n");
    if (tensors)
        for (int i = 0; i < m->params.count; i++) {
            const struct nn_param *p = &m->params.items[i];
            printf("  %-48s [", p->name);
            for (int d = 0; d < p->ndim; d++) printf("%s%d", d ? ", " : "", p->shape[d]);
            printf("]\n");
        }
    nn_model_free(m);
    return 0;
}
