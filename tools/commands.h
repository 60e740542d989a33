/* Subcommands of the nn CLI. Each returns the process exit status: 0 on
 * success, 1 on a failure (message already printed), 2 on bad usage. */
#ifndef NN_TOOLS_COMMANDS_H
#define NN_TOOLS_COMMANDS_H

struct command {
    const char *name;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    const char *help;
};

int cmd_version(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_gemm(int argc, char **argv); /* nn bench gemm (tools/cmd_bench_gemm.c) */
int cmd_train(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_loadtest(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_init(int argc, char **argv);

#endif
