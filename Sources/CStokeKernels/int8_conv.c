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

/// Copies a few bytes: windows are rows of kernel_w · channels bytes, often 3, so the call to
/// memcpy (which dominates at that size) is avoided for the common short lengths.
static inline void copy_short(uint8_t *to, const uint8_t *from, size_t n) {
    switch (n) {
    case 3: memcpy(to, from, 3); return;
    case 16: memcpy(to, from, 16); return;
    case 48: memcpy(to, from, 48); return;
    default: memcpy(to, from, n); return;
    }
}

void stoke_im2row_nhwc_u8(const uint8_t *x, int64_t channels, const stoke_window2d *g, uint8_t pad_value, uint8_t *rows,
                          size_t ldrow) {
    const int64_t kh = g->kernel_h, kw = g->kernel_w, c = channels;
    const int unit_width = g->stride_w == 1 && g->dilation_w == 1;
    for (int64_t oy = 0; oy < g->out_h; oy++) {
        for (int64_t ox = 0; ox < g->out_w; ox++) {
            uint8_t *row = rows + (size_t)(oy * g->out_w + ox) * ldrow;
            const int64_t x0 = ox * g->stride_w - g->pad_left;
            const int inside = unit_width && x0 >= 0 && x0 + kw <= g->in_w;
            for (int64_t i = 0; i < kh; i++, row += kw * c) {
                const int64_t iy = oy * g->stride_h - g->pad_top + i * g->dilation_h;
                if (iy < 0 || iy >= g->in_h) {
                    memset(row, pad_value, (size_t)(kw * c));
                    continue;
                }
                const uint8_t *source = x + iy * g->in_w * c;
                // The window's row is kernel_w consecutive pixels: kernel_w · channels contiguous bytes.
                if (inside) {
                    copy_short(row, source + x0 * c, (size_t)(kw * c));
                    continue;
                }
                for (int64_t j = 0; j < kw; j++) {
                    const int64_t ix = x0 + j * g->dilation_w;
                    if (ix >= 0 && ix < g->in_w) copy_short(row + j * c, source + ix * c, (size_t)c);
                    else memset(row + j * c, pad_value, (size_t)c);
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
                      int32_t y_zero_point, int32_t lo, int32_t hi, int layout, uint8_t *workspace, uint8_t *y) {
    const size_t plane = (size_t)(g->out_h * g->out_w), in_plane = (size_t)(g->in_h * g->in_w);
    const size_t k = (size_t)(channels * g->kernel_h * g->kernel_w);
    const int input_nhwc = layout & STOKE_QCONV_INPUT_NHWC, output_nhwc = layout & STOKE_QCONV_OUTPUT_NHWC;
    uint8_t *rows = workspace, *product = workspace + plane * k;
    for (size_t image = 0; image < images; image++) {
        const uint8_t *input = x + image * (size_t)channels * in_plane;
        if (input_nhwc) stoke_im2row_nhwc_u8(input, channels, g, (uint8_t)x_zero_point, rows, k);
        else stoke_im2row_u8(input, channels, g, (uint8_t)x_zero_point, rows, k);
        uint8_t *target = y + image * filters * plane;
        stoke_int8_gemm_u8(plane, filters, k, rows, k, packed, x_zero_point, multiplier, bias, y_zero_point, lo, hi,
                           output_nhwc ? target : product, filters);
        if (!output_nhwc) transpose_u8(product, plane, filters, target);
    }
}

void stoke_maxpool2d_nhwc_u8(const uint8_t *x, int64_t images, int64_t channels, const stoke_window2d *g, uint8_t *y) {
    const int64_t c = channels;
    for (int64_t image = 0; image < images; image++) {
        const uint8_t *source = x + image * g->in_h * g->in_w * c;
        uint8_t *target = y + image * g->out_h * g->out_w * c;
        for (int64_t oy = 0; oy < g->out_h; oy++)
            for (int64_t ox = 0; ox < g->out_w; ox++) {
                uint8_t *out = target + (oy * g->out_w + ox) * c;
                memset(out, 0, (size_t)c);
                for (int64_t i = 0; i < g->kernel_h; i++) {
                    const int64_t iy = oy * g->stride_h - g->pad_top + i * g->dilation_h;
                    if (iy < 0 || iy >= g->in_h) continue;
                    for (int64_t j = 0; j < g->kernel_w; j++) {
                        const int64_t ix = ox * g->stride_w - g->pad_left + j * g->dilation_w;
                        if (ix < 0 || ix >= g->in_w) continue;
                        const uint8_t *in = source + (iy * g->in_w + ix) * c;
                        for (int64_t k = 0; k < c; k++) out[k] = in[k] > out[k] ? in[k] : out[k];
                    }
                }
            }
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

/// The scalar QuantizeLinear both paths share for leftovers: NaN gives the zero point, and the
/// quotient is bounded before the integer conversion so huge values saturate instead of wrapping.
static inline uint8_t quantize_one(float x, float scale, int32_t zero_point) {
    float v = x / scale;
    if (v != v) return (uint8_t)zero_point;
    v = v < -1e6f ? -1e6f : v > 1e6f ? 1e6f : v;
    int32_t r = (int32_t)__builtin_nearbyintf(v) + zero_point;
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f,avx512bw")))
static void quantize_linear_avx512(const float *x, size_t n, float scale, int32_t zero_point, uint8_t *q) {
    const __m512 s = _mm512_set1_ps(scale), low = _mm512_set1_ps(-1e6f), high = _mm512_set1_ps(1e6f);
    const __m512i zp = _mm512_set1_epi32(zero_point), lo = _mm512_setzero_si512(), hi = _mm512_set1_epi32(255);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), s);
        __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        v = _mm512_min_ps(_mm512_max_ps(v, low), high);
        __m512i r = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
        r = _mm512_mask_mov_epi32(_mm512_min_epi32(_mm512_max_epi32(r, lo), hi), nan, zp);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(r));
    }
    for (; i < n; i++) q[i] = quantize_one(x[i], scale, zero_point);
}
#endif

void stoke_quantize_linear_u8(const float *x, size_t n, float scale, int32_t zero_point, uint8_t *q) {
#if defined(__x86_64__)
    if (stoke_cpu_active() == STOKE_CPU_AVX512_VNNI) {
        quantize_linear_avx512(x, n, scale, zero_point, q);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) q[i] = quantize_one(x[i], scale, zero_point);
}
