/* The parameter table: every tensor of a model in one allocation, each with
 * a name and shape (llm.c style). Optimisers, freezing, saving and importing
 * are flat loops over this table.
 *
 * Names are the torchvision/timm names (e.g. "Mixed_6e.branch7x7dbl_3.conv.weight")
 * so imports and trainable-scope prefixes are unambiguous. Layouts are nn's:
 * conv weights HWIO [kh, kw, in, out], fc weights [in, out]. */
#ifndef NN_PARAMS_H
#define NN_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/status.h"

enum nn_param_kind {
    NN_PARAM_CONV_W,    /* [kh, kw, in, out] */
    NN_PARAM_BN_GAMMA,  /* [C] */
    NN_PARAM_BN_BETA,   /* [C] */
    NN_PARAM_BN_MEAN,   /* [C] running statistics: state, not learned by gradient */
    NN_PARAM_BN_VAR,    /* [C] */
    NN_PARAM_FC_W,      /* [in, out] */
    NN_PARAM_FC_B,      /* [out] */
    NN_PARAM_CONV_B,    /* [out] bias of a folded conv */
    NN_PARAM_CONV_WSCALE, /* [out] int8 model: each output channel's weight scale */
    NN_PARAM_CONV_ASCALE  /* [1] int8 model: the input's scale (uint8 step); 0: the conv runs in bf16 */
};

#define NN_PARAM_NAME_MAX 80

struct nn_param {
    char name[NN_PARAM_NAME_MAX];
    enum nn_param_kind kind;
    int ndim;
    int shape[4];
    size_t offset;      /* in floats, into the table's data */
    size_t count;
};

struct nn_params {
    struct nn_param *items;
    int count, cap;
    size_t total;       /* floats */
    float *data;        /* all values, 64-byte aligned; NULL until allocated */
};

/* Gradient-carrying parameters (everything but running statistics). */
static inline bool nn_param_learned(const struct nn_param *p)
{
    return p->kind != NN_PARAM_BN_MEAN && p->kind != NN_PARAM_BN_VAR && p->kind != NN_PARAM_CONV_WSCALE &&
           p->kind != NN_PARAM_CONV_ASCALE;
}

/* Weights that take weight decay (conv and fc weights, not BN or biases). */
static inline bool nn_param_decayed(const struct nn_param *p)
{
    return p->kind == NN_PARAM_CONV_W || p->kind == NN_PARAM_FC_W;
}

/* Appends a parameter and returns its index (or -1 on allocation failure). */
int nn_params_add(struct nn_params *t, const char *name, enum nn_param_kind kind, int ndim, const int *shape);
/* Allocates data for all declared parameters (zero-filled). */
enum nn_status nn_params_alloc(struct nn_params *t);
void nn_params_free(struct nn_params *t);

int nn_params_find(const struct nn_params *t, const char *name);
/* The parameter named like `name` with its last dot-separated part
 * replaced by `suffix` ("X.conv.weight", "bias" -> "X.conv.bias"); -1 if none. */
int nn_params_find_sibling(const struct nn_params *t, const char *name, const char *suffix);

/* Sets selected[i] for every parameter whose name starts with one of the
 * comma-separated prefixes (TF-slim's trainable_scopes rule: "Mixed_7"
 * selects Mixed_7a, 7b and 7c). A prefix that selects nothing is an error
 * naming it. Entries not selected are left as they are. */
enum nn_status nn_params_select(const struct nn_params *t, const char *prefixes, bool *selected);
static inline float *nn_param_data(const struct nn_params *t, int i) { return t->data + t->items[i].offset; }

/* The index of the first parameter holding a NaN or an infinity (its
 * first such value in *value), or -1 when every value is finite. One pass
 * over the table: cheap next to a training step, so a trainer can run it
 * every few steps and before every save. */
int nn_params_first_nonfinite(const struct nn_params *t, float *value);

/* The parameter's shape in PyTorch's layout (conv [out, in, kh, kw], fc
 * [out, in]); returns ndim. */
int nn_param_torch_shape(const struct nn_param *p, int shape[4]);
/* Converts between PyTorch's layout and nn's for one parameter. */
void nn_param_from_torch(const struct nn_param *p, const float *src, float *dst);
void nn_param_to_torch(const struct nn_param *p, const float *src, float *dst);

#endif
