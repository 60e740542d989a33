/* nn bench gemm: GFLOP/s (2 M N K per product) of float32 nn_gemm and of
 * nn_gemm_lowp in bf16 and int8, on a large square product and on the
 * shapes of Inception's convolutions, each the median of --runs after one
 * warm-up. The epilogue (batch norm and ReLU) is on, as in a conv. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/threads.h"
#include "ops/gemm.h"
#include "ops/gemm_lowp.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] = "usage: nn bench gemm [--threads T] [--runs N] [--cpu-time]\n"
                            "  GFLOP/s of float32, bf16 and int8 GEMM on a 2048^3 product and Inception's\n"
                            "  conv shapes (im2col rows x output channels x patch size), median of N runs.\n"
                            "  --cpu-time: per second of the process's CPU time (all threads) instead of\n"
                            "  wall time; steadier on a machine shared with other work.\n";

struct gemm_shape {
    const char *what;
    int M, N, K;
};

static const struct gemm_shape shapes[] = {
    {"square 2048^3", 2048, 2048, 2048},
    {"Mixed_5b 3x3 64->96, batch 32 (35x35)", 32 * 35 * 35, 96, 64 * 9},
    {"Mixed_5d 1x1 288->64, batch 32 (35x35)", 32 * 35 * 35, 64, 288},
    {"Mixed_6b 1x1 768->192, batch 32 (17x17)", 32 * 17 * 17, 192, 768},
    {"Mixed_7c 1x1 2048->384, batch 1 (8x8)", 64, 384, 2048},
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct operands {
    const struct gemm_shape *s;
    float *a, *b, *c, *scale, *shift;
    struct nn_lowp_weights *wb, *wq;
};

/* kind 0: float32, 1: bf16, 2: int8. */
static void run_one(const struct operands *o, int kind)
{
    const struct gemm_shape *s = o->s;
    const struct nn_gemm_epilogue ep = {o->scale, o->shift, true};
    if (kind == 0) nn_gemm_ex(false, false, s->M, s->N, s->K, 1.0f, o->a, s->K, o->b, s->N, 0.0f, o->c, s->N, &ep);
    else nn_gemm_lowp(s->M, o->a, s->K, 100.0f, kind == 1 ? o->wb : o->wq, o->c, s->N, &ep);
}

/* Wall time, or the process's CPU time (every thread's). */
static double seconds(bool cpu_clock)
{
    if (!cpu_clock) return cli_now();
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double gflops(const struct operands *o, int kind, int runs, bool cpu_clock)
{
    double *t = malloc(sizeof(double) * (size_t)runs);
    if (!t) return 0;
    run_one(o, kind);
    for (int r = 0; r < runs; r++) {
        double t0 = seconds(cpu_clock);
        run_one(o, kind);
        t[r] = seconds(cpu_clock) - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    double med = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    free(t);
    return 2.0 * o->s->M * o->s->N * (double)o->s->K / med / 1e9;
}

static void operands_free(struct operands *o)
{
    nn_free(o->a);
    nn_free(o->b);
    nn_free(o->c);
    free(o->scale);
    free(o->shift);
    nn_lowp_weights_free(o->wb);
    nn_lowp_weights_free(o->wq);
}

static bool operands_make(const struct gemm_shape *s, struct operands *o)
{
    memset(o, 0, sizeof *o);
    o->s = s;
    const size_t ma = (size_t)s->M * s->K, mb = (size_t)s->K * s->N, mc = (size_t)s->M * s->N;
    o->a = nn_alloc(ma * sizeof(float));
    o->b = nn_alloc(mb * sizeof(float));
    o->c = nn_alloc(mc * sizeof(float));
    o->scale = malloc(sizeof(float) * (size_t)s->N);
    o->shift = malloc(sizeof(float) * (size_t)s->N);
    int8_t *q = malloc(mb);
    if (!o->a || !o->b || !o->c || !o->scale || !o->shift || !q) {
        free(q);
        return false;
    }
    struct nn_rng r;
    nn_rng_seed(&r, 1, 1);
    for (size_t i = 0; i < ma; i++) o->a[i] = nn_rng_uniform(&r) * 2.0f; /* ReLU outputs */
    for (size_t i = 0; i < mb; i++) o->b[i] = nn_rng_uniform(&r) * 0.2f - 0.1f;
    for (int j = 0; j < s->N; j++) o->shift[j] = nn_rng_uniform(&r) - 0.5f;
    nn_lowp_quantize_weights(o->b, s->K, s->N, q, o->scale);
    bool ok = nn_lowp_pack_bf16(o->b, s->K, s->N, &o->wb) == NN_OK && nn_lowp_pack_int8(q, s->K, s->N, &o->wq) == NN_OK;
    free(q);
    return ok;
}

int cmd_bench_gemm(int argc, char **argv)
{
    int threads = 0, runs = 5;
    bool cpu_clock = false;
    for (int i = 2; i < argc; i++) {
        const char *v = "";
        if (cli_flag(argv, i, "--help")) return printf("%s", usage), 0;
        else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int(v, 1, 256, &threads)) return cli_usage(usage, "--threads must be 1..256");
        } else if (cli_opt(argc, argv, &i, "--runs", &v)) {
            if (!cli_int(v, 1, 1000, &runs)) return cli_usage(usage, "--runs must be 1..1000");
        } else if (cli_flag(argv, i, "--cpu-time")) cpu_clock = true;
        else return cli_usage(usage, "unknown argument %s", argv[i]);
        if (!v) return cli_usage(usage, "%s needs a value", argv[i]);
    }
    cli_log_setup(false);
    nn_threads_set(threads);
    threads = nn_threads_get();
    printf("nn bench gemm: %d threads, simd %s, bf16 kernel %s, int8 kernel %s, median of %d runs, %s time\n",
           threads, nn_simd_name(nn_simd_level()), nn_gemm_lowp_kernel(NN_LOWP_BF16), nn_gemm_lowp_kernel(NN_LOWP_INT8),
           runs, cpu_clock ? "CPU" : "wall");
    printf("%-42s %6s %5s %5s  %8s %8s %5s %8s %5s\n", "shape", "M", "N", "K", "fp32", "bf16", "x", "int8", "x");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct operands o;
        if (!operands_make(&shapes[i], &o)) {
            operands_free(&o);
            fprintf(stderr, "nn bench gemm: out of memory\n");
            return 1;
        }
        double f = gflops(&o, 0, runs, cpu_clock), h = gflops(&o, 1, runs, cpu_clock), q = gflops(&o, 2, runs, cpu_clock);
        printf("%-42s %6d %5d %5d  %8.1f %8.1f %5.2f %8.1f %5.2f\n", shapes[i].what, shapes[i].M, shapes[i].N,
               shapes[i].K, f, h, h / f, q, q / f);
        fflush(stdout);
        operands_free(&o);
    }
    printf("(GFLOP/s, 2 M N K per product%s; x: times the fp32 rate)\n", cpu_clock ? ", per CPU second" : "");
    return 0;
}
