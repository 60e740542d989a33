/* PNG decoding through libpng: any bit depth and colour type becomes 8-bit
 * RGB. Palettes and low bit depths are expanded, 16-bit samples are scaled
 * (rounded) to 8 bits, grey is replicated to RGB, and an alpha channel is
 * dropped: the stored colour is kept as is, not composited over a
 * background, which is what PIL's convert("RGB") does too. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "base/log.h"
#include "io/image_codec.h"

/* Everything decode_job changes lives here, in the caller's frame, so that
 * after libpng's longjmp its values are well defined and can be released. */
struct png_job {
    const unsigned char *data;
    size_t len, pos;
    const char *name;
    struct nn_image *out;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    char msg[256];
};

static void on_png_error(png_structp png, png_const_charp msg)
{
    struct png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings are about ancillary chunks (bad gamma, iCCP, ...), never pixels. */
static void on_png_warning(png_structp png, png_const_charp msg)
{
    struct png_job *job = png_get_error_ptr(png);
    nn_debug("%s: libpng warning: %s", job->name, msg);
}

static void read_from_memory(png_structp png, png_bytep dst, size_t n)
{
    struct png_job *job = png_get_io_ptr(png);
    if (n > job->len - job->pos) png_error(png, "file is truncated");
    memcpy(dst, job->data + job->pos, n);
    job->pos += n;
}

static enum nn_status decode_job(struct png_job *job)
{
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
    if (!job->png) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", job->name);
    job->info = png_create_info_struct(job->png);
    if (!job->info) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", job->name);
    if (setjmp(png_jmpbuf(job->png)))
        return nn_fail(NN_ERR_CORRUPT, "%s: corrupt or truncated PNG: %s", job->name, job->msg);

    png_set_read_fn(job->png, job, read_from_memory);
    png_read_info(job->png, job->info);
    png_uint_32 width = png_get_image_width(job->png, job->info);
    png_uint_32 height = png_get_image_height(job->png, job->info);
    NN_TRY(nn_image_check_size(job->name, width, height));

    png_set_expand(job->png);
    png_set_scale_16(job->png);
    png_set_strip_alpha(job->png);
    png_set_gray_to_rgb(job->png);
    png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);
    if (png_get_channels(job->png, job->info) != 3 || png_get_rowbytes(job->png, job->info) != (size_t)width * 3)
        return nn_fail(NN_ERR_INTERNAL, "%s: libpng did not convert to 8-bit RGB", job->name);

    NN_TRY(nn_image_alloc(job->name, (int)width, (int)height, job->out));
    job->rows = malloc(sizeof *job->rows * height);
    if (!job->rows) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", job->name);
    for (png_uint_32 y = 0; y < height; y++) job->rows[y] = job->out->rgb + (size_t)y * width * 3;
    png_read_image(job->png, job->rows);
    /* Reads the chunks after the image data, so a truncated tail is an error. */
    png_read_end(job->png, NULL);
    return NN_OK;
}

enum nn_status nn_png_decode(const void *data, size_t len, const char *name, struct nn_image *out)
{
    struct png_job *job = calloc(1, sizeof *job);
    if (!job) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", name);
    job->data = data;
    job->len = len;
    job->name = name;
    job->out = out;
    enum nn_status st = decode_job(job);
    png_destroy_read_struct(&job->png, &job->info, NULL); /* NULLs are fine */
    free(job->rows);
    free(job);
    return st;
}
