/* JPEG decoding through libjpeg-turbo.
 *
 * The decode settings are pinned to libjpeg's defaults (ISLOW integer DCT,
 * fancy upsampling) because the golden eval-transform files were made with
 * them: a different IDCT or upsampler moves pixels by one or two levels,
 * which is far outside the 1e-4 tolerance after the transform.
 *
 * libjpeg reports fatal errors through error_exit and expects it not to
 * return; we longjmp back to decode_job. On a truncated file libjpeg-turbo
 * only *warns* (JWRN_JPEG_EOF), pads the rest of the image with grey and
 * carries on; a training set silently full of half-grey photos is worse
 * than an error, so the warnings that mean lost image data are fatal too. */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* after jpeglib.h: its message list depends on JPEG_LIB_VERSION */

#include "base/log.h"
#include "io/image_codec.h"

struct jpeg_err {
    struct jpeg_error_mgr pub; /* first, so the j_common_ptr's err can be cast back */
    jmp_buf jump;
    const char *name;
    enum nn_status status;
    char msg[JMSG_LENGTH_MAX];
};

static void on_error_exit(j_common_ptr cinfo)
{
    struct jpeg_err *e = (struct jpeg_err *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    switch (e->pub.msg_code) {
    case JERR_OUT_OF_MEMORY: e->status = NN_ERR_NOMEM; break;
    case JERR_BAD_PRECISION: /* 12-bit JPEG: valid, but we only decode 8-bit */
    case JERR_NOT_COMPILED: e->status = NN_ERR_UNSUPPORTED; break;
    default: e->status = NN_ERR_CORRUPT; break;
    }
    longjmp(e->jump, 1);
}

/* Warnings after which the decoded pixels are not the picture's pixels. */
static int warning_loses_data(int code)
{
    switch (code) {
    case JWRN_JPEG_EOF:       /* premature end of file: rest filled with grey */
    case JWRN_HIT_MARKER:     /* premature end of data segment */
    case JWRN_HUFF_BAD_CODE:  /* corrupt entropy-coded data */
#if JPEG_LIB_VERSION >= 70 || defined(D_ARITH_CODING_SUPPORTED)
    case JWRN_ARITH_BAD_CODE:
#endif
    case JWRN_MUST_RESYNC:    /* lost sync: rows skipped */
        return 1;
    default:
        return 0;
    }
}

/* msg_level -1 is a warning; >= 0 are trace messages, which we drop. */
static void on_emit_message(j_common_ptr cinfo, int msg_level)
{
    struct jpeg_err *e = (struct jpeg_err *)cinfo->err;
    if (msg_level >= 0) return;
    e->pub.num_warnings++;
    e->pub.format_message(cinfo, e->msg);
    if (warning_loses_data(e->pub.msg_code)) {
        e->status = NN_ERR_CORRUPT;
        longjmp(e->jump, 1);
    }
    /* E.g. "extraneous bytes before marker": common in camera files and harmless. */
    nn_debug("%s: libjpeg warning: %s", e->name, e->msg);
}

/* The library must never write to stderr on its own. */
static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Everything decode_job changes lives here, in the caller's frame, so that
 * after a longjmp its values are well defined (C11 7.13.2.1) and the caller
 * can release them. */
struct jpeg_job {
    const unsigned char *data;
    size_t len;
    const char *name;
    int min_side;
    struct nn_image *out;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_err err;
    unsigned char *cmyk_row;
};

/* CMYK as libjpeg returns it to RGB. Photoshop (which writes the Adobe APP14
 * marker) stores CMYK inverted, 0 = full ink; libjpeg passes that through
 * untouched and leaves the inversion to the application (libjpeg.txt,
 * "Special color spaces"). So with the Adobe marker a stored value is already
 * "light" (255 - ink); without it, it is ink. */
static void cmyk_to_rgb(const unsigned char *cmyk, int width, int adobe_inverted, uint8_t *rgb)
{
    for (int x = 0; x < width; x++) {
        unsigned c = cmyk[4 * x], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
        if (!adobe_inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        rgb[3 * x] = (uint8_t)((c * k + 127) / 255);
        rgb[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
        rgb[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* The smallest libjpeg scale n/8 (DCT scaling) whose output's shorter side
 * is still >= min_side; 8/8 when even full size is smaller.
 *
 * For the training path only: there the random crop is resized to the
 * training size anyway, and decoding a 4000 x 3000 photo at 1/8 is several
 * times faster than at full size. DCT scaling drops the high-frequency
 * coefficients, a proper low-pass downscale, so it removes only detail that
 * the later bilinear resize (which has no antialiasing) would discard or
 * alias; a crop of the whole image still has >= min_side pixels a side.
 * The cost: a small crop comes from fewer source pixels (it may be
 * upsampled where a full decode would have downsampled it); callers that
 * care pass a min_side above the training size. The eval transform must
 * decode at full size (min_side 0): the golden files were made that way. */
static void choose_scale(struct jpeg_decompress_struct *cinfo, int min_side)
{
    for (unsigned n = 1; n <= 8; n++) {
        cinfo->scale_num = n;
        cinfo->scale_denom = 8;
        jpeg_calc_output_dimensions(cinfo);
        JDIMENSION shorter = cinfo->output_width < cinfo->output_height ? cinfo->output_width : cinfo->output_height;
        if (shorter >= (JDIMENSION)min_side) return;
    }
}

static enum nn_status decode_job(struct jpeg_job *job)
{
    struct jpeg_decompress_struct *cinfo = &job->cinfo;
    cinfo->err = jpeg_std_error(&job->err.pub);
    job->err.pub.error_exit = on_error_exit;
    job->err.pub.emit_message = on_emit_message;
    job->err.pub.output_message = on_output_message;
    job->err.name = job->name;
    if (setjmp(job->err.jump))
        return nn_fail(job->err.status, "%s: corrupt or truncated JPEG: %s", job->name, job->err.msg);

    jpeg_create_decompress(cinfo);
    jpeg_mem_src(cinfo, job->data, (unsigned long)job->len);
    jpeg_read_header(cinfo, TRUE);
    NN_TRY(nn_image_check_size(job->name, cinfo->image_width, cinfo->image_height));

    int cmyk = 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB: cinfo->out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo->out_color_space = JCS_CMYK; cmyk = 1; break;
    default:
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: JPEG colour space %d with %d components is not supported",
                       job->name, (int)cinfo->jpeg_color_space, cinfo->num_components);
    }
    /* libjpeg's defaults, set explicitly: the golden files depend on them. */
    cinfo->dct_method = JDCT_ISLOW;
    cinfo->do_fancy_upsampling = TRUE;
    if (job->min_side > 0) choose_scale(cinfo, job->min_side);

    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != (cmyk ? 4 : 3))
        return nn_fail(NN_ERR_INTERNAL, "%s: libjpeg gave %d components", job->name, cinfo->output_components);
    NN_TRY(nn_image_alloc(job->name, (int)cinfo->output_width, (int)cinfo->output_height, job->out));
    size_t stride = (size_t)cinfo->output_width * 3;
    if (cmyk) {
        job->cmyk_row = malloc((size_t)cinfo->output_width * 4);
        if (!job->cmyk_row) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", job->name);
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        uint8_t *dst = job->out->rgb + cinfo->output_scanline * stride;
        if (cmyk) {
            JSAMPROW row = job->cmyk_row;
            if (jpeg_read_scanlines(cinfo, &row, 1) != 1) break;
            cmyk_to_rgb(job->cmyk_row, (int)cinfo->output_width, cinfo->saw_Adobe_marker, dst);
        } else {
            JSAMPROW rows[16];
            JDIMENSION left = cinfo->output_height - cinfo->output_scanline;
            int n = left < 16 ? (int)left : 16;
            for (int i = 0; i < n; i++) rows[i] = dst + i * stride;
            if (jpeg_read_scanlines(cinfo, rows, (JDIMENSION)n) == 0) break;
        }
    }
    if (cinfo->output_scanline < cinfo->output_height)
        return nn_fail(NN_ERR_CORRUPT, "%s: JPEG ended after %u of %u rows", job->name,
                       (unsigned)cinfo->output_scanline, (unsigned)cinfo->output_height);
    /* Reads on to the EOI marker, so damage after the last row is caught too. */
    jpeg_finish_decompress(cinfo);
    return NN_OK;
}

enum nn_status nn_jpeg_decode(const void *data, size_t len, const char *name, int min_side,
                              struct nn_image *out)
{
    struct jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return nn_fail(NN_ERR_NOMEM, "%s: out of memory", name);
    job->data = data;
    job->len = len;
    job->name = name;
    job->min_side = min_side;
    job->out = out;
    enum nn_status st = decode_job(job);
    /* Safe after a longjmp at any point, even before jpeg_create_decompress
     * finished: it only frees what cinfo->mem holds. */
    jpeg_destroy_decompress(&job->cinfo);
    free(job->cmyk_row);
    free(job);
    return st;
}
