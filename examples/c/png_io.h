/* Minimal PNG reading/writing with libpng for the C examples and tests (8-bit RGB(A)). */
#ifndef TTPO_EXAMPLE_PNG_IO_H
#define TTPO_EXAMPLE_PNG_IO_H
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reads any PNG as 8-bit RGBA; returns malloc'ed pixels (stride = 4 * width) or NULL. */
static inline uint8_t *png_read_rgba(const char *path, uint32_t *width, uint32_t *height) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return NULL;
    img.format = PNG_FORMAT_RGBA;
    uint8_t *buf = (uint8_t *)malloc(PNG_IMAGE_SIZE(img));
    if (!buf) { png_image_free(&img); return NULL; }
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) { free(buf); return NULL; }
    *width = img.width;
    *height = img.height;
    return buf;
}

/* Writes 8-bit RGBA pixels (stride = 4 * width) as PNG; returns 0 on success. */
static inline int png_write_rgba(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = width;
    img.height = height;
    img.format = PNG_FORMAT_RGBA;
    return png_image_write_to_file(&img, path, 0, pixels, 0, NULL) ? 0 : -1;
}
#endif
