/* Winograd F(2x2, 3x3) against im2col + GEMM on Inception-v3's 3x3 stride-1
 * convs, per layer, at several batch sizes.
 *
 *   cc -O3 -g -std=c11 -D_GNU_SOURCE -pthread -I. tools/scripts/bench_winograd.c build/libnn.a \
 *      $(pkg-config --libs openblas libjpeg libpng) -lm -o build/bench_winograd
 *   build/bench_winograd [--threads T] [--reps R] [--batch B ...] [--backward] [--wall]
 *                        [--only-winograd] [--layer NAME] [--shape HW,C,K,SAME|VALID ...]
 *
 * Times are CPU seconds of the whole process (threads summed), median of R
 * runs: with other jobs on the machine they vary much less than wall time.
 * "wino" transforms the weights on every call, as nn_conv2d_forward does;
 * "cached" is the convolution alone, for callers that keep the transformed
 * weights. --only-winograd times "cached" alone, and --layer the layers whose
 * name contains NAME (for profilers); --shape replaces the layers with
 * square HWxHW maps of C -> K channels. --wall measures wall-clock time
 * instead (for several threads, where CPU time counts the pool's waiting).
 * --backward times dL/din instead of the forward (im2col: dOut x W^T, then
 * col2im; Winograd: the rotated conv). The "network" line weights each layer
 * by the times it occurs in Inception-v3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/threads.h"
#include "ops/conv2d.h"
#include "ops/winograd.h"

struct layer {
    const char *name;
    int hw, c, k;
    enum nn_padding pad;
    int count; /* times it occurs in the network */
};

static struct layer layers[16] = {
    {"Conv2d_2a_3x3", 149, 32, 32, NN_PAD_VALID, 1},
    {"Conv2d_2b_3x3", 147, 32, 64, NN_PAD_SAME, 1},
    {"Conv2d_4a_3x3", 73, 80, 192, NN_PAD_VALID, 1},
    {"Mixed_5x/6a.3x3dbl_2", 35, 64, 96, NN_PAD_SAME, 4},
    {"Mixed_5x.3x3dbl_3", 35, 96, 96, NN_PAD_SAME, 3},
    {"Mixed_7x.3x3dbl_2", 8, 448, 384, NN_PAD_SAME, 2},
};
static int nlayers = 6;

static int use_wall, backward;

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(use_wall ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum path { IM2COL, WINO, CACHED };

static double time_path(enum path p, float *out, const float *in, const float *w, float *u,
                        const struct nn_conv_shape *s, float *scratch, int reps)
{
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = cpu_now();
        if (backward) { /* `out` holds dOut, `in` receives dIn */
            if (p == IM2COL) {
                nn_conv2d_backward_chunked((float *)in, NULL, out, NULL, w, s, scratch, nn_conv2d_chunk_pixels(s));
            } else {
                if (p == WINO) nn_winograd_transform_weights(u, w, s->c, s->k);
                nn_conv2d_winograd_backward_input((float *)in, out, u, s, scratch);
            }
        } else if (p == IM2COL) {
            nn_conv2d_forward_chunked(out, in, w, s, scratch, nn_conv2d_chunk_pixels(s));
        } else {
            if (p == WINO) nn_winograd_transform_weights(u, w, s->c, s->k);
            nn_conv2d_winograd_forward(out, in, u, s, scratch);
        }
        if (r >= 0) t[r] = cpu_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

static float *rand_buf(size_t n, unsigned seed)
{
    float *x = nn_alloc((n ? n : 1) * sizeof(float));
    if (!x) return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
    return x;
}

int main(int argc, char **argv)
{
    int threads = 1, reps = 5, batches[8] = {1, 32}, nb = 2, user_batches = 0, only = 0;
    const char *pick = NULL;
    int user_shapes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only-winograd")) only = 1;
        else if (!strcmp(argv[i], "--wall")) use_wall = 1;
        else if (!strcmp(argv[i], "--backward")) backward = 1;
        else if (!strcmp(argv[i], "--layer") && i + 1 < argc) pick = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc && user_shapes < 16) {
            struct layer *ly = &layers[user_shapes++];
            char pad[8] = "";
            if (sscanf(argv[++i], "%d,%d,%d,%7s", &ly->hw, &ly->c, &ly->k, pad) != 4) return 2;
            ly->pad = !strcmp(pad, "VALID") ? NN_PAD_VALID : NN_PAD_SAME;
            ly->name = argv[i];
            ly->count = 1;
            nlayers = user_shapes;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc && user_batches < 8)
            batches[user_batches++] = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads T] [--reps R] [--batch B ...] [--backward] [--wall]\n"
                            "       [--only-winograd] [--layer NAME] [--shape HW,C,K,SAME|VALID ...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (user_batches) nb = user_batches;
    if (reps < 1) reps = 1;
    nn_threads_set(threads);
    printf("%s, threads %d, median of %d runs, %s ms per call\n", backward ? "dL/din" : "forward", threads, reps,
           use_wall ? "wall-clock" : "CPU");
    printf("%-22s %5s %10s %10s %10s %8s %8s\n", "layer", "batch", "im2col", "wino", "cached", "ratio", "cached");
    for (int b = 0; b < nb; b++) {
        double total[3] = {0, 0, 0};
        for (int l = 0; l < nlayers; l++) {
            const struct layer *ly = &layers[l];
            if (pick && !strstr(ly->name, pick)) continue;
            struct nn_conv_shape s;
            if (nn_conv_shape_init(&s, batches[b], ly->hw, ly->hw, ly->c, ly->k, 3, 3, 1, ly->pad) != NN_OK) return 1;
            size_t nin = (size_t)s.n * s.h * s.w * s.c, nout = (size_t)s.n * s.oh * s.ow * s.k;
            size_t nsc = nn_conv2d_scratch_floats(&s), nws = nn_winograd_scratch_floats(&s);
            size_t nbs = nn_winograd_backward_scratch_floats(&s);
            if (nws > nsc) nsc = nws;
            if (nbs > nsc) nsc = nbs;
            float *in = rand_buf(nin, 1), *w = rand_buf(9 * (size_t)s.c * s.k, 2), *out = rand_buf(nout, 3);
            float *u = rand_buf(nn_winograd_weight_floats(s.c, s.k), 4), *scratch = rand_buf(nsc, 5);
            if (!in || !w || !out || !u || !scratch) return 1;
            double ti = only ? 0 : time_path(IM2COL, out, in, w, u, &s, scratch, reps);
            double tw = only ? 0 : time_path(WINO, out, in, w, u, &s, scratch, reps);
            double tc = time_path(CACHED, out, in, w, u, &s, scratch, reps);
            printf("%-22s %5d %10.3f %10.3f %10.3f %8.2f %8.2f\n", ly->name, s.n, 1e3 * ti, 1e3 * tw, 1e3 * tc,
                   ti / tw, ti / tc);
            fflush(stdout);
            total[0] += ly->count * ti;
            total[1] += ly->count * tw;
            total[2] += ly->count * tc;
            nn_free(in);
            nn_free(w);
            nn_free(out);
            nn_free(u);
            nn_free(scratch);
        }
        if (!user_shapes && !pick && !only)
            printf("%-22s %5d %10.3f %10.3f %10.3f %8.2f %8.2f\n", "network (x count)", batches[b], 1e3 * total[0],
                   1e3 * total[1], 1e3 * total[2], total[0] / total[1], total[0] / total[2]);
    }
    nn_threads_shutdown();
    return 0;
}
