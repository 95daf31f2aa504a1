#include "CStokeKernels.h"
#include <string.h>

void stoke_im2row_u8(const uint8_t *x, int64_t channels, const stoke_window2d *g, uint8_t pad_value, uint8_t *rows,
                     size_t ldrow) {
    const int64_t kh = g->kernel_h, kw = g->kernel_w;
    const int64_t unit_width = g->stride_w == 1 && g->dilation_w == 1;
    for (int64_t oy = 0; oy < g->out_h; oy++) {
        for (int64_t ox = 0; ox < g->out_w; ox++) {
            uint8_t *row = rows + (size_t)(oy * g->out_w + ox) * ldrow;
            const int64_t x0 = ox * g->stride_w - g->pad_left;
            // The window's columns all inside the plane: one copy of kernel_w bytes per (c, i).
            const int inside = unit_width && x0 >= 0 && x0 + kw <= g->in_w;
            for (int64_t c = 0; c < channels; c++) {
                const uint8_t *plane = x + c * g->in_h * g->in_w;
                for (int64_t i = 0; i < kh; i++, row += kw) {
                    const int64_t iy = oy * g->stride_h - g->pad_top + i * g->dilation_h;
                    if (iy < 0 || iy >= g->in_h) {
                        memset(row, pad_value, (size_t)kw);
                        continue;
                    }
                    const uint8_t *source = plane + iy * g->in_w;
                    if (inside) {
                        memcpy(row, source + x0, (size_t)kw);
                        continue;
                    }
                    for (int64_t j = 0; j < kw; j++) {
                        const int64_t ix = x0 + j * g->dilation_w;
                        row[j] = ix >= 0 && ix < g->in_w ? source[ix] : pad_value;
                    }
                }
            }
        }
    }
}

size_t stoke_qconv2d_workspace_bytes(int64_t channels, const stoke_window2d *g, size_t filters) {
    const size_t plane = (size_t)(g->out_h * g->out_w), k = (size_t)(channels * g->kernel_h * g->kernel_w);
    return plane * k + plane * filters + 64;
}

/// y[f][p] = t[p][f] for a [plane, filters] matrix, in 16×16 tiles so both sides stay in cache.
static void transpose_u8(const uint8_t *t, size_t plane, size_t filters, uint8_t *y) {
    for (size_t p0 = 0; p0 < plane; p0 += 16)
        for (size_t f0 = 0; f0 < filters; f0 += 16) {
            const size_t p1 = p0 + 16 < plane ? p0 + 16 : plane, f1 = f0 + 16 < filters ? f0 + 16 : filters;
            for (size_t f = f0; f < f1; f++)
                for (size_t p = p0; p < p1; p++) y[f * plane + p] = t[p * filters + f];
        }
}

void stoke_qconv2d_u8(const uint8_t *x, size_t images, int64_t channels, const stoke_window2d *g, size_t filters,
                      const void *packed, int32_t x_zero_point, const float *multiplier, const int32_t *bias,
                      int32_t y_zero_point, int32_t lo, int32_t hi, uint8_t *workspace, uint8_t *y) {
    const size_t plane = (size_t)(g->out_h * g->out_w), in_plane = (size_t)(g->in_h * g->in_w);
    const size_t k = (size_t)(channels * g->kernel_h * g->kernel_w);
    uint8_t *rows = workspace, *product = workspace + plane * k;
    for (size_t image = 0; image < images; image++) {
        const uint8_t *input = x + image * (size_t)channels * in_plane;
        stoke_im2row_u8(input, channels, g, (uint8_t)x_zero_point, rows, k);
        stoke_int8_gemm_u8(plane, filters, k, rows, k, packed, x_zero_point, multiplier, bias,
                           y_zero_point, lo, hi, product, filters);
        transpose_u8(product, plane, filters, y + image * filters * plane);
    }
}

void stoke_maxpool2d_u8(const uint8_t *x, int64_t planes, const stoke_window2d *g, uint8_t *y) {
    const int64_t in_plane = g->in_h * g->in_w, out_plane = g->out_h * g->out_w;
    const int two_by_two = g->kernel_h == 2 && g->kernel_w == 2 && g->stride_h == 2 && g->stride_w == 2 && g->pad_top == 0 &&
                           g->pad_left == 0 && g->dilation_h == 1 && g->dilation_w == 1;
    for (int64_t p = 0; p < planes; p++) {
        const uint8_t *source = x + p * in_plane;
        uint8_t *target = y + p * out_plane;
        if (two_by_two) {
            for (int64_t oy = 0; oy < g->out_h; oy++) {
                const uint8_t *r0 = source + 2 * oy * g->in_w, *r1 = r0 + g->in_w;
                for (int64_t ox = 0; ox < g->out_w; ox++) {
                    uint8_t a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                    uint8_t b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                    target[oy * g->out_w + ox] = a > b ? a : b;
                }
            }
            continue;
        }
        for (int64_t oy = 0; oy < g->out_h; oy++)
            for (int64_t ox = 0; ox < g->out_w; ox++) {
                uint8_t best = 0;
                for (int64_t i = 0; i < g->kernel_h; i++) {
                    const int64_t iy = oy * g->stride_h - g->pad_top + i * g->dilation_h;
                    if (iy < 0 || iy >= g->in_h) continue;
                    for (int64_t j = 0; j < g->kernel_w; j++) {
                        const int64_t ix = ox * g->stride_w - g->pad_left + j * g->dilation_w;
                        if (ix >= 0 && ix < g->in_w && source[iy * g->in_w + ix] > best) best = source[iy * g->in_w + ix];
                    }
                }
                target[oy * g->out_w + ox] = best;
            }
    }
}
