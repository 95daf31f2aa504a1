#include "CStokeKernels.h"
#include <string.h>

/// Patch rows are K = channels · kh · kw bytes padded to a multiple of 4 (the GEMM's k quads); the
/// packed weights carry zero rows there, so whatever the tail bytes hold adds nothing.
static size_t padded_k(int64_t channels, const stoke_window2d *g) {
    return (size_t)((channels * g->kernel_h * g->kernel_w + 3) / 4 * 4);
}

size_t stoke_qconv2d_patch_bytes(int64_t channels, const stoke_window2d *g) { return padded_k(channels, g); }

size_t stoke_qconv2d_workspace_bytes(int64_t channels, const stoke_window2d *g, size_t filters) {
    const size_t plane = (size_t)(g->out_h * g->out_w);
    const size_t padded = (size_t)((g->in_h + g->pad_top + g->pad_bottom) * (g->in_w + g->pad_left + g->pad_right) * channels);
    // 64 bytes of slack after each part: the short copies below move up to 16 bytes at a time.
    return padded + 64 + plane * padded_k(channels, g) + 64 + plane * filters + 64;
}

/// Copies n bytes in at most two overlapping word moves when n <= 16 (rows of 3 or 12 bytes are the
/// common case). Reads and writes may run up to 15 bytes past n: callers keep slack there and write
/// in increasing address order, so later copies overwrite the spill.
static inline void copy_spill(uint8_t *to, const uint8_t *from, size_t n) {
    if (n <= 4) {
        uint32_t v;
        memcpy(&v, from, 4);
        memcpy(to, &v, 4);
    } else if (n <= 8) {
        uint64_t v;
        memcpy(&v, from, 8);
        memcpy(to, &v, 8);
    } else if (n <= 16) {
        uint64_t a, b;
        memcpy(&a, from, 8);
        memcpy(&b, from + 8, 8);
        memcpy(to, &a, 8);
        memcpy(to + 8, &b, 8);
    } else {
        memcpy(to, from, n);
    }
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
    const int64_t c = channels, kh = g->kernel_h, kw = g->kernel_w;
    const int64_t pw = g->in_w + g->pad_left + g->pad_right, ph = g->in_h + g->pad_top + g->pad_bottom;
    const size_t plane = (size_t)(g->out_h * g->out_w), in_plane = (size_t)(g->in_h * g->in_w), k = padded_k(c, g);
    const int input_nhwc = layout & STOKE_QCONV_INPUT_NHWC, output_nhwc = layout & STOKE_QCONV_OUTPUT_NHWC;
    // The image is copied into an NHWC buffer with a border of zero points, so the patch rows are
    // plain copies: kernel_w · channels contiguous bytes per kernel row (stride-1 width, no dilation).
    uint8_t *padded = workspace, *rows = padded + ph * pw * c + 64, *product = rows + plane * k + 64;
    memset(padded, (uint8_t)x_zero_point, (size_t)(ph * pw * c));
    const int contiguous = g->stride_w == 1 && g->dilation_w == 1;
    for (size_t image = 0; image < images; image++) {
        const uint8_t *input = x + image * (size_t)c * in_plane;
        for (int64_t iy = 0; iy < g->in_h; iy++) {
            uint8_t *line = padded + ((iy + g->pad_top) * pw + g->pad_left) * c;
            if (input_nhwc || c == 1) {
                memcpy(line, input + iy * g->in_w * c, (size_t)(g->in_w * c));
            } else {
                for (int64_t ix = 0; ix < g->in_w; ix++)
                    for (int64_t ch = 0; ch < c; ch++) line[ix * c + ch] = input[(ch * g->in_h + iy) * g->in_w + ix];
            }
        }
        const size_t span = (size_t)(kw * c);
        if (contiguous && kh <= 8 && span <= 64) {
            // Window rows of up to 64 bytes: 4-byte or 16-byte moves, the source lines hoisted per
            // output row. Moves spill up to 15 bytes past a segment; the next segment, the next row
            // or the workspace slack takes it, and is written afterwards.
            for (int64_t oy = 0; oy < g->out_h; oy++) {
                const uint8_t *lines[8];
                for (int64_t i = 0; i < kh; i++) lines[i] = padded + (oy * g->stride_h + i * g->dilation_h) * pw * c;
                uint8_t *row = rows + (size_t)(oy * g->out_w) * k;
                if (span <= 4) {
                    for (int64_t ox = 0; ox < g->out_w; ox++, row += k) {
                        const size_t offset = (size_t)(ox * g->stride_w * c);
                        for (int64_t i = 0; i < kh; i++) {
                            uint32_t v;
                            memcpy(&v, lines[i] + offset, 4);
                            memcpy(row + i * span, &v, 4);
                        }
                    }
                    continue;
                }
                for (int64_t ox = 0; ox < g->out_w; ox++, row += k) {
                    const size_t offset = (size_t)(ox * g->stride_w * c);
                    for (int64_t i = 0; i < kh; i++)
                        for (size_t t = 0; t < span; t += 16) {
                            uint8_t v[16];
                            memcpy(v, lines[i] + offset + t, 16);
                            memcpy(row + i * span + t, v, 16);
                        }
                }
            }
        } else
        for (int64_t oy = 0; oy < g->out_h; oy++)
            for (int64_t ox = 0; ox < g->out_w; ox++) {
                uint8_t *row = rows + (size_t)(oy * g->out_w + ox) * k;
                for (int64_t i = 0; i < kh; i++) {
                    const uint8_t *source = padded + ((oy * g->stride_h + i * g->dilation_h) * pw + ox * g->stride_w) * c;
                    if (contiguous) {
                        copy_spill(row + i * kw * c, source, (size_t)(kw * c));
                    } else {
                        for (int64_t j = 0; j < kw; j++) copy_spill(row + (i * kw + j) * c, source + j * g->dilation_w * c, (size_t)c);
                    }
                }
            }
        uint8_t *target = y + image * filters * plane;
        stoke_int8_gemm_u8(plane, filters, k, rows, k, packed, x_zero_point, multiplier, bias, y_zero_point, lo, hi,
                           output_nhwc ? target : product, filters);
        if (!output_nhwc) transpose_u8(product, plane, filters, target);
    }
}

void stoke_maxpool2d_nhwc_u8(const uint8_t *x, int64_t images, int64_t channels, const stoke_window2d *g, uint8_t *y) {
    const int64_t c = channels;
    const int two_by_two = g->kernel_h == 2 && g->kernel_w == 2 && g->stride_h == 2 && g->stride_w == 2 && g->pad_top == 0 &&
                           g->pad_left == 0 && g->dilation_h == 1 && g->dilation_w == 1;
    for (int64_t image = 0; image < images; image++) {
        const uint8_t *source = x + image * g->in_h * g->in_w * c;
        uint8_t *target = y + image * g->out_h * g->out_w * c;
        if (two_by_two) {
            // Four channel vectors per output pixel, no bounds checks (the window never leaves the image).
            for (int64_t oy = 0; oy < g->out_h; oy++)
                for (int64_t ox = 0; ox < g->out_w; ox++) {
                    const uint8_t *a = source + (2 * oy * g->in_w + 2 * ox) * c, *b = a + c, *d = a + g->in_w * c, *e = d + c;
                    uint8_t *out = target + (oy * g->out_w + ox) * c;
                    for (int64_t k = 0; k < c; k++) {
                        uint8_t top = a[k] > b[k] ? a[k] : b[k], bottom = d[k] > e[k] ? d[k] : e[k];
                        out[k] = top > bottom ? top : bottom;
                    }
                }
            continue;
        }
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
    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_AVX512BW)) {
        quantize_linear_avx512(x, n, scale, zero_point, q);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) q[i] = quantize_one(x[i], scale, zero_point);
}
