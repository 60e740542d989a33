/* nn info: what a model file holds. */
#include <math.h>
#include <stdio.h>

#include "nn/model.h"
#include "ops/gemm_lowp.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const char usage[] = "usage: nn info MODEL.nnm [--tensors]\n";

/* Which convs run in which arithmetic, and the int8 scales' ranges. */
static void print_precision(const struct nn_model *m)
{
    if (m->cfg.precision == NN_PRECISION_F32 || !m->lowp) {
        printf("precision: f32\n");
        return;
    }
    int n_int8 = 0, n_bf16 = 0;
    float in_lo = INFINITY, in_hi = 0.0f, w_lo = INFINITY, w_hi = 0.0f;
    for (int i = 0; i < m->params.count; i++) {
        const struct nn_conv_lowp *l = &m->lowp[i];
        if (!l->w) continue;
        if (l->w->type == NN_LOWP_BF16) {
            n_bf16++;
            continue;
        }
        n_int8++;
        float in = 1.0f / l->a_inv_scale;
        in_lo = fminf(in_lo, in);
        in_hi = fmaxf(in_hi, in);
        int ws = nn_params_find_sibling(&m->params, m->params.items[i].name, "weight_scale");
        for (size_t k = 0; ws >= 0 && k < m->params.items[ws].count; k++) {
            w_lo = fminf(w_lo, nn_param_data(&m->params, ws)[k]);
            w_hi = fmaxf(w_hi, nn_param_data(&m->params, ws)[k]);
        }
    }
    printf("precision: %s: %d convs in int8, %d in bf16 (kernels here: %s, %s)\n", nn_precision_name(m->cfg.precision),
           n_int8, n_bf16, nn_gemm_lowp_kernel(NN_LOWP_INT8), nn_gemm_lowp_kernel(NN_LOWP_BF16));
    if (n_int8)
        printf("int8 scales: inputs (uint8 step) %.3g to %.3g, weights (per output channel) %.3g to %.3g\n", in_lo,
               in_hi, w_lo, w_hi);
}

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
    print_precision(m);
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
            printf("]");
            const struct nn_conv_lowp *l = m->lowp ? &m->lowp[i] : NULL;
            if (l && l->w && l->w->type == NN_LOWP_INT8) printf(" int8, input scale %.6g", 1.0 / l->a_inv_scale);
            else if (l && l->w) printf(" bf16");
            printf("\n");
        }
    nn_model_free(m);
    return 0;
}
