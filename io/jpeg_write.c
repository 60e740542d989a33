/* JPEG encoding. The image is compressed into memory first and then written
 * atomically, so a failure never leaves a half-written photo behind. */
#include "io/jpeg_write.h"

#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>

#include <jpeglib.h>

#include "base/fileio.h"

struct jpeg_werr {
    struct jpeg_error_mgr pub; /* first, so cinfo->err can be cast back */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
};

/* libjpeg's default error_exit calls exit(); the library must return a status. */
static void on_error_exit(j_common_ptr cinfo)
{
    struct jpeg_werr *e = (struct jpeg_werr *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Everything compress changes lives in the caller's frame, so that after a
 * longjmp its values are well defined (C11 7.13.2.1). */
struct jpeg_job {
    struct jpeg_compress_struct c;
    struct jpeg_werr err;
    unsigned char *out;     /* malloc'd by libjpeg's memory destination */
    unsigned long out_len;
};

static enum nn_status compress(struct jpeg_job *job, const char *path, const uint8_t *rgb, int w, int h, int quality)
{
    struct jpeg_compress_struct *c = &job->c;
    c->err = jpeg_std_error(&job->err.pub);
    job->err.pub.error_exit = on_error_exit;
    job->err.pub.output_message = on_output_message;
    if (setjmp(job->err.jump)) {
        jpeg_destroy_compress(c);
        free(job->out);
        job->out = NULL;
        return nn_fail(NN_ERR_INTERNAL, "%s: libjpeg: %s", path, job->err.msg);
    }
    jpeg_create_compress(c);
    jpeg_mem_dest(c, &job->out, &job->out_len);
    c->image_width = (JDIMENSION)w;
    c->image_height = (JDIMENSION)h;
    c->input_components = 3;
    c->in_color_space = JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, quality, TRUE);
    jpeg_start_compress(c, TRUE);
    while (c->next_scanline < c->image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c->next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(c, &row, 1);
    }
    jpeg_finish_compress(c);
    jpeg_destroy_compress(c);
    return NN_OK;
}

enum nn_status nn_jpeg_write(const char *path, const uint8_t *rgb, int w, int h, int quality)
{
    if (!path || !rgb || w <= 0 || h <= 0 || w > 65500 || h > 65500 || quality < 1 || quality > 100)
        return nn_fail(NN_ERR_ARG, "%s: cannot write a %dx%d JPEG at quality %d", path ? path : "(null)", w, h,
                       quality);
    struct jpeg_job job = {.out = NULL, .out_len = 0};
    NN_TRY(compress(&job, path, rgb, w, h, quality));
    struct nn_atomic_file af;
    enum nn_status st = nn_atomic_open(&af, path);
    if (st == NN_OK) {
        st = nn_write_all(&af, job.out, job.out_len);
        if (st == NN_OK) st = nn_atomic_commit(&af);
        else nn_atomic_abort(&af);
    }
    free(job.out);
    return st;
}
