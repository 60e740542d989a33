#include "train/quantize.h"

#include "train/pipeline.h"

void nn_quantize_options_default(struct nn_quantize_options *o)
{
    *o = (struct nn_quantize_options){
        .split = NN_SPLIT_TRAIN, .images = 500, .batch = 16, .method = NN_CALIB_MSE, .seed = 1,
    };
}

enum nn_status nn_quantize_model(const struct nn_model *m, const char *data_dir, const struct nn_quantize_options *opt,
                                 nn_quantize_progress_fn progress, void *user, struct nn_model **out)
{
    if (!m || !data_dir || !opt || !out) return nn_fail(NN_ERR_ARG, "nn_quantize_model: NULL argument");
    *out = NULL;
    if (opt->images < 1 || opt->batch < 1) return nn_fail(NN_ERR_ARG, "calibration needs at least one image");
    struct nn_pipeline_options po;
    nn_pipeline_options_eval(&po);
    po.batch_size = opt->batch;
    po.image_size = m->cfg.image_size;
    po.central_fraction = m->central_fraction;
    po.threads = opt->threads;
    po.shuffle = true; /* a mix of classes however few images are asked for */
    po.seed = opt->seed;
    struct nn_pipeline *p;
    NN_TRY(nn_pipeline_open(data_dir, opt->split, &po, &p));
    long total = nn_pipeline_examples(p) < opt->images ? nn_pipeline_examples(p) : opt->images;
    struct nn_calibrator *c = NULL;
    enum nn_status st = nn_calibrator_new(m, opt->batch, opt->method, &c);
    while (st == NN_OK && nn_calibrator_images(c) < total) {
        const struct nn_batch *b;
        st = nn_pipeline_next(p, &b);
        if (st != NN_OK || !b) break;
        int n = b->n;
        if (nn_calibrator_images(c) + n > total) n = (int)(total - nn_calibrator_images(c));
        if (n > 0) st = nn_calibrator_add(c, b->images, n);
        if (progress) progress(user, nn_calibrator_images(c), total);
    }
    if (st == NN_OK && nn_calibrator_images(c) == 0)
        st = nn_fail(NN_ERR_FORMAT, "%s: no readable images in the %s split to calibrate on", data_dir,
                     nn_split_name(opt->split));
    if (st == NN_OK) st = nn_calibrator_finish(c, out);
    nn_calibrator_free(c);
    nn_pipeline_close(p);
    return st;
}
