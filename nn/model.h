/* The model behind the public struct nn_model: configuration, class names,
 * preprocessing constants and the parameter table. Internal to nn/ and the
 * layers above it (train/ mutates parameters through it). */
#ifndef NN_MODEL_H
#define NN_MODEL_H

#include "nn/nn.h"
#include "nn/params.h"

struct nn_lowp_weights;

/* One conv's weights packed for the low-precision GEMM (ops/gemm_lowp.h). */
struct nn_conv_lowp {
    struct nn_lowp_weights *w;  /* NULL: not a conv weight */
    float a_inv_scale;          /* int8: 1 / the input's scale */
    float *scale;               /* int8: input scale x weight scale, per output channel; NULL in bf16 */
    struct nn_lowp_weights *wino[16]; /* bf16 3x3 stride-1 convs: Winograd's transformed weights, packed */
};

struct nn_model {
    struct nn_config cfg;
    struct nn_params params;    /* float32 values; in bf16/int8 models exactly the rounded/quantised ones */
    char **class_names;         /* cfg.num_classes strings */
    float central_fraction;     /* eval transform: central crop (0.875) */
    struct nn_conv_lowp *lowp;  /* bf16/int8 models: per parameter, packed once (nn_model_pack_lowp) */
};

/* Packs every conv's weights of a bf16 or int8 model for the low-precision
 * GEMM (replacing any earlier packing); nothing for a float32 model. The
 * float32 table must already hold exactly representable values (as
 * nn_model_to_bf16, nn_model_to_int8 and loading make them). */
enum nn_status nn_model_pack_lowp(struct nn_model *m);
void nn_model_free_lowp(struct nn_model *m);

/* The frozen model (folded, no aux head) in bfloat16: conv weights rounded
 * to nearest even. src may be frozen already. */
enum nn_status nn_model_to_bf16(const struct nn_model *src, struct nn_model **out);

/* The frozen model in int8: conv weights quantised per output channel
 * (ops/gemm_lowp.h), each conv's input quantised with
 * input_scale[name of its weight] taken from `scales`: entry i is the
 * input scale of parameter i of `folded` (a float32 frozen model), 0 for
 * a conv left in bf16 (the first). */
enum nn_status nn_model_to_int8(const struct nn_model *folded, const float *scales, struct nn_model **out);

/* A model with every parameter zero and classes named "0", "1", ... */
enum nn_status nn_model_alloc(const struct nn_config *cfg, struct nn_model **out);

/* Declares the parameters of cfg's network into an empty table. */
enum nn_status nn_model_declare_params(const struct nn_config *cfg, struct nn_params *params);

/* Fills every parameter with TF-slim's initialisers: He-scaled truncated
 * normal for convs, truncated normal 0.01 for AuxLogits.conv1 and 0.001 for
 * both classifiers, zero biases, batch norm gamma 1, beta 0, mean 0, var 1. */
void nn_param_init(const struct nn_param *p, float *data, uint64_t seed);

/* The frozen inference model: the aux head dropped and every batch norm
 * folded into its conv (w' = w * gamma / sqrt(var + eps) per output
 * channel, bias = beta - mean * gamma / sqrt(var + eps)). */
enum nn_status nn_model_freeze(const struct nn_model *m, struct nn_model **out);

/* Deep copy (a trainer's working copy of an immutable model). */
enum nn_status nn_model_clone(const struct nn_model *m, struct nn_model **out);

/* Replaces the class names (count == cfg.num_classes). */
enum nn_status nn_model_set_class_names(struct nn_model *m, const char *const *names, int count);

/* Options and report of importing a safetensors checkpoint (import.c). */
struct nn_import_options {
    int num_classes;            /* 0: take it from fc.weight in the file */
    bool aux_logits;
    int image_size;
    const char *const *exclude; /* name prefixes to initialise fresh instead of loading */
    int nexclude;
    const char *const *class_names; /* NULL: "0", "1", ... */
    uint64_t seed;              /* for the fresh tensors */
};

struct nn_import_report {
    char **fresh;               /* names initialised fresh (excluded) */
    int nfresh;
    int loaded;                 /* tensors taken from the file */
};

/* Imports torchvision/timm-named weights (PyTorch layouts, F32/F16/BF16). A
 * missing, unexpected or wrongly shaped tensor is an error listing every
 * such name, unless it is under an excluded prefix. */
enum nn_status nn_model_import(const char *path, const struct nn_import_options *opt, struct nn_model **out,
                               struct nn_import_report *report);
void nn_import_report_free(struct nn_import_report *r);

#endif
