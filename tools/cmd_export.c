/* nn export: the inference-only model (batch norm folded into the convs,
 * aux head and training state dropped). */
#include <stdio.h>
#include <string.h>

#include "nn/model.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] =
    "usage: nn export MODEL -o FROZEN [--precision f32|bf16]\n"
    "  Writes an inference-only copy of MODEL: every batch norm folded into its conv's weights and a\n"
    "  bias, the auxiliary head and training-only tensors dropped. Predictions are the same (to float\n"
    "  rounding); the file is smaller and faster to run. nn predict, nn eval, nn serve and nn info take it.\n"
    "  --precision bf16   conv weights rounded to bfloat16 and the convs run in bf16 (float32 sums):\n"
    "                     half the file, faster on CPUs with AVX-512 BF16 or AMX. For int8, see nn quantize.\n";

int cmd_export(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *v, *precision = "f32";
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return cli_usage(usage, "-o needs a file name");
            out = v;
        } else if (cli_opt(argc, argv, &i, "--precision", &v)) {
            if (!v || (strcmp(v, "f32") && strcmp(v, "bf16")))
                return cli_usage(usage, "--precision takes f32 or bf16 (int8: nn quantize)");
            precision = v;
        } else if (argv[i][0] == '-') return cli_usage(usage, "unknown option %s", argv[i]);
        else if (!in) in = argv[i];
        else return cli_usage(usage, "unexpected argument %s", argv[i]);
    }
    if (!in || !out) return cli_usage(usage, "need MODEL and -o FROZEN");
    cli_log_setup(false);
    struct nn_model *m = NULL, *frozen = NULL;
    if (nn_model_load(in, &m) != NN_OK) return cli_fail();
    int rc = 0;
    enum nn_status st = strcmp(precision, "bf16") ? nn_model_freeze(m, &frozen) : nn_model_to_bf16(m, &frozen);
    if (st != NN_OK || nn_model_save(frozen, out) != NN_OK) rc = cli_fail();
    if (rc == 0)
        printf("%s: %s, %d classes, %d tensors, %.1f MB (from %.1f MB)\n", out,
               nn_precision_name(frozen->cfg.precision), frozen->cfg.num_classes, frozen->params.count,
               cli_file_size(out) / 1e6, cli_file_size(in) / 1e6);
    nn_model_free(frozen);
    nn_model_free(m);
    return rc;
}
