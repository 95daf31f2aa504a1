#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
#include <png.h>

/* libpng's simplified read API reports errors through the png_image, never by longjmp into Swift. */
static inline png_uint_32 cpng_image_version(void) { return PNG_IMAGE_VERSION; }
static inline png_uint_32 cpng_format_gray(void) { return PNG_FORMAT_GRAY; }
static inline png_uint_32 cpng_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline png_uint_32 cpng_format_flag_color(void) { return PNG_FORMAT_FLAG_COLOR; }
static inline png_uint_32 cpng_format_flag_alpha(void) { return PNG_FORMAT_FLAG_ALPHA; }
static inline png_uint_32 cpng_format_flag_linear(void) { return PNG_FORMAT_FLAG_LINEAR; }
static inline int cpng_failed(const png_image *image) { return PNG_IMAGE_FAILED(*image); }
static inline const char *cpng_message(const png_image *image) { return image->message; }
#endif
