// Direct FP32 convolution (stride 1, group 1, any kernel size, padding and dilation) for the
// small, few-channel convolutions of CNNs such as the Fashion-MNIST benchmark's 16 -> 32 3x3 conv,
// where im2col + GEMM spent its time writing and re-reading a [C*KH*KW, plane] column matrix and
// the GEMM's 8x32 tiles fit a 32-filter, 196-pixel product badly (about 70 GFLOP/s measured).
//
// Each image is copied once into a zero-bordered buffer [C][Hp][Wp] (Hp = OH + (KH-1)*DH,
// Wp = OW + (KW-1)*DW). With stride 1, output pixel (oy, ox) at flat position p = oy*Wp + ox reads
// input position p + ky*DH*Wp + kx*DW of each channel, so 16 consecutive flat outputs read 16
// consecutive inputs: one unaligned vector load per tap, whatever the image width. The flat
// positions with ox >= OW (the Wp - OW "wrap" columns) are computed and thrown away; they read only
// buffer memory, never past it. A register tile is 8 filters (weights broadcast from a prepacked
// [filter block][c][ky][kx][8] array) by 3 vectors of 16 flat pixels: 24 accumulators, 11 loads
// per 24 FMAs. Bias and ReLU are applied in registers; the tile goes to a per-call scratch
// [filters][P] from which the image's output (or its fused 2x2 max pool) is written in NCHW.
#include "CStokeKernels.h"
#include <string.h>

enum { CV_NF = 8, CV_NP = 3, CV_LANES = 16 };

static int64_t round_up64(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

typedef struct {
    int64_t hp, wp, plane, flat, padded_floats;
} conv_layout;

static conv_layout layout_of(int64_t channels, const stoke_window2d *g) {
    conv_layout l;
    l.hp = g->out_h + (g->kernel_h - 1) * g->dilation_h;
    l.wp = g->out_w + (g->kernel_w - 1) * g->dilation_w;
    l.plane = l.hp * l.wp;
    l.flat = round_up64(g->out_h * l.wp, CV_LANES);
    // The last channel's wrap columns read up to CV_LANES - 1 + (KW-1)*DW floats past its plane.
    l.padded_floats = round_up64(channels * l.plane + CV_LANES + (g->kernel_w - 1) * g->dilation_w, CV_LANES);
    return l;
}

int stoke_conv2d_direct_supported(const stoke_window2d *g) {
    return g->stride_h == 1 && g->stride_w == 1 && g->kernel_h > 0 && g->kernel_w > 0 && g->dilation_h > 0 &&
           g->dilation_w > 0 && g->out_h > 0 && g->out_w > 0;
}

size_t stoke_conv2d_direct_packed_count(int64_t filters, int64_t channels, int64_t kernel_h, int64_t kernel_w) {
    return (size_t)(round_up64(filters, CV_NF) * channels * kernel_h * kernel_w);
}

void stoke_conv2d_direct_pack(const float *w, int64_t filters, int64_t channels, int64_t kernel_h, int64_t kernel_w, float *dst) {
    int64_t taps = channels * kernel_h * kernel_w;
    for (int64_t f0 = 0; f0 < filters; f0 += CV_NF)
        for (int64_t t = 0; t < taps; t++)
            for (int64_t f = 0; f < CV_NF; f++)
                *dst++ = f0 + f < filters ? w[(f0 + f) * taps + t] : 0.0f;
}

size_t stoke_conv2d_direct_workspace_count(int64_t channels, int64_t filters, const stoke_window2d *g) {
    conv_layout l = layout_of(channels, g);
    return (size_t)(l.padded_floats + round_up64(filters, CV_NF) * l.flat);
}

// Copies one [C][H][W] image into the interior of the padded buffer; the border stays zero.
static void copy_padded(const float *x, int64_t channels, const stoke_window2d *g, const conv_layout *l, float *padded) {
    int64_t col0 = g->pad_left, first_x = 0;
    if (col0 < 0) { first_x = -col0; col0 = 0; }
    int64_t width = g->in_w - first_x;
    if (col0 + width > l->wp) width = l->wp - col0;
    if (width <= 0) return;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t py = 0; py < l->hp; py++) {
            int64_t iy = py - g->pad_top;
            if (iy < 0 || iy >= g->in_h) continue;
            memcpy(padded + c * l->plane + py * l->wp + col0, x + (c * g->in_h + iy) * g->in_w + first_x, (size_t)width * sizeof(float));
        }
}

// Writes the valid part of the scratch rows to y: the [OH, OW] planes, or their 2x2 max pools.
static void write_output(const float *scratch, int64_t filters, const stoke_window2d *g, const conv_layout *l, int pool2x2, float *y) {
    if (pool2x2) {
        stoke_maxpool2x2_strided_f32(scratch, filters, g->out_h, g->out_w, l->wp, l->flat, y);
        return;
    }
    for (int64_t f = 0; f < filters; f++)
        for (int64_t oy = 0; oy < g->out_h; oy++)
            memcpy(y + (f * g->out_h + oy) * g->out_w, scratch + f * l->flat + oy * l->wp, (size_t)g->out_w * sizeof(float));
}

static void conv_portable(const float *padded, int64_t channels, int64_t filters, const stoke_window2d *g, const conv_layout *l,
                          const float *packed, const float *bias, int relu, float *scratch) {
    int64_t taps = channels * g->kernel_h * g->kernel_w;
    for (int64_t f = 0; f < filters; f++) {
        const float *wf = packed + (f / CV_NF) * taps * CV_NF + f % CV_NF;
        for (int64_t oy = 0; oy < g->out_h; oy++)
            for (int64_t ox = 0; ox < g->out_w; ox++) {
                int64_t p = oy * l->wp + ox, t = 0;
                float sum = 0.0f;
                for (int64_t c = 0; c < channels; c++)
                    for (int64_t ky = 0; ky < g->kernel_h; ky++)
                        for (int64_t kx = 0; kx < g->kernel_w; kx++, t++)
                            sum += wf[t * CV_NF] * padded[c * l->plane + p + ky * g->dilation_h * l->wp + kx * g->dilation_w];
                float v = sum + (bias ? bias[f] : 0.0f);
                scratch[f * l->flat + p] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

// One 8-filter x (np x 16)-pixel tile: np is a constant at each call site, so the accumulators stay
// in registers.
__attribute__((target("avx512f,fma"), always_inline))
static inline void conv_tile(int np, const float *x, const float *w, int64_t channels, int64_t kernel_h, int64_t kernel_w,
                             int64_t plane, int64_t row_step, int64_t dilation_w, const float *bias, int relu,
                             float *out, int64_t flat) {
    __m512 acc[CV_NP][CV_NF];
    for (int p = 0; p < np; p++)
        for (int f = 0; f < CV_NF; f++) acc[p][f] = _mm512_setzero_ps();
    for (int64_t c = 0; c < channels; c++, x += plane) {
        const float *row = x;
        for (int64_t ky = 0; ky < kernel_h; ky++, row += row_step) {
            const float *tap = row;
            for (int64_t kx = 0; kx < kernel_w; kx++, tap += dilation_w, w += CV_NF) {
                __m512 v[CV_NP];
                for (int p = 0; p < np; p++) v[p] = _mm512_loadu_ps(tap + p * CV_LANES);
                for (int f = 0; f < CV_NF; f++) {
                    __m512 wf = _mm512_set1_ps(w[f]);
                    for (int p = 0; p < np; p++) acc[p][f] = _mm512_fmadd_ps(v[p], wf, acc[p][f]);
                }
            }
        }
    }
    __m512 zero = _mm512_setzero_ps();
    for (int f = 0; f < CV_NF; f++) {
        __m512 b = _mm512_set1_ps(bias ? bias[f] : 0.0f);
        for (int p = 0; p < np; p++) {
            __m512 y = _mm512_add_ps(acc[p][f], b);
            if (relu) y = _mm512_max_ps(y, zero);
            _mm512_storeu_ps(out + f * flat + p * CV_LANES, y);
        }
    }
}

__attribute__((target("avx512f,fma")))
static void conv_avx512(const float *padded, int64_t channels, int64_t filters, const stoke_window2d *g, const conv_layout *l,
                        const float *packed, const float *bias, int relu, float *scratch) {
    int64_t taps = channels * g->kernel_h * g->kernel_w;
    int64_t row_step = g->dilation_h * l->wp, vectors = l->flat / CV_LANES;
    float block_bias[CV_NF];
    for (int64_t f0 = 0; f0 < filters; f0 += CV_NF) {
        const float *w = packed + f0 * taps;
        const float *b = NULL;
        if (bias) {
            for (int64_t f = 0; f < CV_NF; f++) block_bias[f] = f0 + f < filters ? bias[f0 + f] : 0.0f;
            b = block_bias;
        }
        float *out = scratch + f0 * l->flat;
        int64_t v = 0;
        for (; v + 3 <= vectors; v += 3)
            conv_tile(3, padded + v * CV_LANES, w, channels, g->kernel_h, g->kernel_w, l->plane, row_step, g->dilation_w, b, relu,
                      out + v * CV_LANES, l->flat);
        if (vectors - v == 2)
            conv_tile(2, padded + v * CV_LANES, w, channels, g->kernel_h, g->kernel_w, l->plane, row_step, g->dilation_w, b, relu,
                      out + v * CV_LANES, l->flat);
        else if (vectors - v == 1)
            conv_tile(1, padded + v * CV_LANES, w, channels, g->kernel_h, g->kernel_w, l->plane, row_step, g->dilation_w, b, relu,
                      out + v * CV_LANES, l->flat);
    }
}
#endif

int stoke_conv2d_direct_f32(const float *x, int64_t images, int64_t channels, int64_t filters, const stoke_window2d *g,
                            const float *packed, const float *bias, int relu, int pool2x2, float *workspace, float *y) {
    if (!stoke_conv2d_direct_supported(g) || channels <= 0 || filters <= 0) return -3;
    if (pool2x2 && (g->out_h < 2 || g->out_w < 2)) return -3;
    conv_layout l = layout_of(channels, g);
    float *padded = workspace, *scratch = workspace + l.padded_floats;
    // The border and the wrap margin stay zero for every image: only interiors are copied.
    memset(padded, 0, (size_t)l.padded_floats * sizeof(float));
    int64_t in_image = channels * g->in_h * g->in_w;
    int64_t out_image = filters * (pool2x2 ? (g->out_h / 2) * (g->out_w / 2) : g->out_h * g->out_w);
    int fast = 0;
#if defined(__x86_64__)
    fast = stoke_cpu_active() != STOKE_CPU_PORTABLE && __builtin_cpu_supports("avx512f");
#endif
    for (int64_t image = 0; image < images; image++) {
        copy_padded(x + image * in_image, channels, g, &l, padded);
#if defined(__x86_64__)
        if (fast) conv_avx512(padded, channels, filters, g, &l, packed, bias, relu, scratch);
        else
#endif
            conv_portable(padded, channels, filters, g, &l, packed, bias, relu, scratch);
        write_output(scratch, filters, g, &l, pool2x2, y + image * out_image);
    }
    return 0;
}
