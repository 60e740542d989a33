/* JPEG encoding. The image is compressed into memory first and then written
 * atomically, so a failure never leaves a half-written photo behind. */
#include "io/jpeg_write.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>

#include <jpeglib.h>
#include <jerror.h> /* ERREXIT1, JERR_OUT_OF_MEMORY */

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
 * longjmp its values are well defined (C11 7.13.2.1).
 *
 * The compressed bytes go to a buffer this file owns, through its own
 * destination manager. libjpeg's memory destination (jpeg_mem_dest) frees
 * its first buffer when it grows it but leaves the caller's pointer on it,
 * and frees nothing on an error: freeing that pointer after an error was a
 * double free, and not freeing it a leak. Here exactly one pointer (out)
 * owns the buffer at every moment, and it is freed once. */
struct jpeg_job {
    struct jpeg_compress_struct c;
    struct jpeg_werr err;
    struct jpeg_destination_mgr dest;
    unsigned char *out;     /* malloc'd here; NULL or the only owner */
    size_t cap, out_len;
    bool nomem;             /* the buffer could not grow */
};

#define FIRST_CAP 65536

static struct jpeg_job *job_of(j_compress_ptr c) { return (struct jpeg_job *)((char *)c - offsetof(struct jpeg_job, c)); }

static void dest_init(j_compress_ptr c)
{
    struct jpeg_job *job = job_of(c);
    job->out = malloc(FIRST_CAP);
    if (!job->out) {
        job->nomem = true;
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 1);
    }
    job->cap = FIRST_CAP;
    job->dest.next_output_byte = job->out;
    job->dest.free_in_buffer = job->cap;
}

/* libjpeg calls this when the whole buffer is full. */
static boolean dest_grow(j_compress_ptr c)
{
    struct jpeg_job *job = job_of(c);
    size_t cap = job->cap > SIZE_MAX / 2 ? 0 : job->cap * 2;
    unsigned char *bigger = cap ? realloc(job->out, cap) : NULL;
    if (!bigger) {
        /* job->out still owns the old buffer: the error path frees it */
        job->nomem = true;
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 2);
    }
    job->out = bigger;
    job->dest.next_output_byte = bigger + job->cap;
    job->dest.free_in_buffer = cap - job->cap;
    job->cap = cap;
    return TRUE;
}

static void dest_term(j_compress_ptr c)
{
    struct jpeg_job *job = job_of(c);
    job->out_len = job->cap - job->dest.free_in_buffer;
}

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
        if (job->nomem || job->err.pub.msg_code == JERR_OUT_OF_MEMORY)
            return nn_fail(NN_ERR_NOMEM, "%s: out of memory for the compressed %dx%d image", path, w, h);
        return nn_fail(NN_ERR_INTERNAL, "%s: libjpeg: %s", path, job->err.msg);
    }
    jpeg_create_compress(c);
    job->dest.init_destination = dest_init;
    job->dest.empty_output_buffer = dest_grow;
    job->dest.term_destination = dest_term;
    c->dest = &job->dest;
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
    struct jpeg_job job = {.out = NULL, .out_len = 0, .nomem = false};
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
