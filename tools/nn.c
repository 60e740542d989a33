/* The nn command: a table of subcommands, each in its own tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "tools/commands.h"

static const struct command commands[] = {
    {"import", cmd_import, "convert a safetensors checkpoint (torchvision/timm names) to a model file"},
    {"info", cmd_info, "describe a model file"},
    {"predict", cmd_predict, "classify photos"},
    {"forward", cmd_forward, "run the network on a NumPy batch (and one training step with --train)"},
    {"convert", cmd_convert, "convert folders of labelled photos into a dataset of record shards"},
    {"dataset", cmd_dataset, "describe (info), check (verify) or time (bench) a converted dataset"},
    {"synth", cmd_synth, "write a synthetic set of labelled photos (classes differ by colour), no download"},
    {"init", cmd_init, "write a model with fresh weights, to train from scratch"},
    {"train", cmd_train, "train or fine-tune a model on a converted dataset (one run)"},
    {"finetune", cmd_finetune, "the two-stage transfer-learning recipe: heads, then all layers, then export"},
    {"eval", cmd_eval, "top-1/top-5, per-class precision/recall and confusion matrix on a dataset split"},
    {"export", cmd_export, "write the inference-only model (batch norm folded, aux head dropped)"},
    {"quantize", cmd_quantize, "write an int8 inference model, calibrated on real photos"},
    {"plot", cmd_plot, "draw a run's loss and validation accuracy against steps (SVG)"},
    {"serve", cmd_serve, "serve a model over HTTP (POST /predict, GET /healthz, GET /metadata)"},
    {"loadtest", cmd_loadtest, "load-test an nn serve endpoint: requests/s, latency percentiles, errors"},
    {"bench", cmd_bench, "measure inference and training speed (random weights)"},
    {"version", cmd_version, "print the version and the SIMD level in use"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: nn COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(fp, "\n'nn COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nn: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
