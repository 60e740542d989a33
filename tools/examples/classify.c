/* Classifying photos from a C program with the installed nn library.
 *
 *   cc classify.c $(pkg-config --cflags --libs nn) -o classify
 *   ./classify model.nnm photo.jpg [photo.jpg ...]
 *
 * Only the public header is used. One model is loaded and could be shared
 * by any number of threads; each thread would make its own context. */
#include <nn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.nnm IMAGE...\n", argv[0]);
        return 2;
    }
    struct nn_model *model;
    if (nn_model_load(argv[1], &model) != NN_OK) {
        fprintf(stderr, "%s\n", nn_last_error());
        return 1;
    }
    struct nn_ctx *ctx;
    if (nn_ctx_new(model, 1, &ctx) != NN_OK) {
        fprintf(stderr, "%s\n", nn_last_error());
        nn_model_free(model);
        return 1;
    }
    int status = 0, top = nn_model_config(model)->num_classes < 3 ? nn_model_config(model)->num_classes : 3;
    for (int i = 2; i < argc; i++) {
        struct nn_class_score scores[3];
        if (nn_classify_file(ctx, argv[i], top, scores) != NN_OK) {
            fprintf(stderr, "%s\n", nn_last_error());
            status = 1;
            continue;
        }
        printf("%s:", argv[i]);
        for (int k = 0; k < top; k++)
            printf(" %s %.4f", nn_model_class_name(model, scores[k].id), scores[k].probability);
        printf("\n");
    }
    nn_ctx_free(ctx);
    nn_model_free(model);
    return status;
}
