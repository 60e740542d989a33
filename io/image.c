/* Format detection and the entry points of io/image.h; the codecs live in
 * jpeg.c and png.c, the resampling in resize.c. */
#include "io/image.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "io/image_codec.h"

enum nn_image_format nn_image_sniff(const void *data, size_t len)
{
    const unsigned char *p = data;
    /* JPEG: SOI marker followed by the first byte of another marker. */
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return NN_IMAGE_JPEG;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len >= 8 && !memcmp(p, png_sig, 8)) return NN_IMAGE_PNG;
    return NN_IMAGE_UNKNOWN;
}

enum nn_status nn_image_check_size(const char *name, long long width, long long height)
{
    if (width <= 0 || height <= 0)
        return nn_fail(NN_ERR_FORMAT, "%s: image has an empty size (%lld x %lld)", name, width, height);
    if (width > NN_IMAGE_MAX_SIDE || height > NN_IMAGE_MAX_SIDE || width * height > NN_IMAGE_MAX_PIXELS)
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: image is %lld x %lld, larger than nn accepts (%d per side, %lld pixels)",
                       name, width, height, NN_IMAGE_MAX_SIDE, NN_IMAGE_MAX_PIXELS);
    return NN_OK;
}

enum nn_status nn_image_alloc(const char *name, int width, int height, struct nn_image *out)
{
    NN_TRY(nn_image_check_size(name, width, height));
    out->rgb = nn_alloc((size_t)width * (size_t)height * 3);
    if (!out->rgb)
        return nn_fail(NN_ERR_NOMEM, "%s: out of memory for a %d x %d image", name, width, height);
    out->width = width;
    out->height = height;
    return NN_OK;
}

/* Names what the bytes are when they are not something we decode, so the
 * message says more than "bad format". */
static enum nn_status refuse_unknown(const unsigned char *p, size_t len, const char *name)
{
    if (len == 0) return nn_fail(NN_ERR_FORMAT, "%s: empty file, not an image", name);
    if (len >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: GIF images are not supported (only JPEG and PNG)", name);
    if (len >= 2 && p[0] == 'B' && p[1] == 'M')
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: BMP images are not supported (only JPEG and PNG)", name);
    if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: WebP images are not supported (only JPEG and PNG)", name);
    if (len >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
        return nn_fail(NN_ERR_UNSUPPORTED, "%s: TIFF images are not supported (only JPEG and PNG)", name);
    return nn_fail(NN_ERR_FORMAT, "%s: not a JPEG or PNG image (unrecognised first bytes)", name);
}

enum nn_status nn_image_decode(const void *data, size_t len, const char *name, int min_side,
                               struct nn_image *out)
{
    if (!out) return nn_fail(NN_ERR_ARG, "nn_image_decode: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "(image)";
    if (!data && len) return nn_fail(NN_ERR_ARG, "%s: data is NULL", name);
    if (min_side < 0) return nn_fail(NN_ERR_ARG, "%s: min_side %d is negative", name, min_side);
    enum nn_status st;
    switch (nn_image_sniff(data, len)) {
    case NN_IMAGE_JPEG: st = nn_jpeg_decode(data, len, name, min_side, out); break;
    /* PNG has no cheap reduced-size decode; min_side only ever shrinks JPEGs. */
    case NN_IMAGE_PNG: st = nn_png_decode(data, len, name, out); break;
    default: return refuse_unknown(data, len, name);
    }
    if (st != NN_OK) nn_image_free(out);
    return st;
}

enum nn_status nn_image_load(const char *path, int min_side, struct nn_image *out)
{
    if (!out) return nn_fail(NN_ERR_ARG, "nn_image_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return nn_fail(NN_ERR_ARG, "nn_image_load: path is NULL");
    char *data;
    size_t len;
    NN_TRY(nn_read_file(path, &data, &len));
    enum nn_status st = nn_image_decode(data, len, path, min_side, out);
    free(data);
    return st;
}

void nn_image_free(struct nn_image *img)
{
    if (!img) return;
    nn_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
