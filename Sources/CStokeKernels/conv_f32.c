// Direct FP32 convolution (stride 1, group 1, any kernel size, padding and dilation) for the
// small, few-channel convolutions of CNNs such as the Fashion-MNIST benchmark's 16 -> 32 3x3 conv,
// where im2col + GEMM spent its time writing and re-reading a [C*KH*KW, plane] column matrix and
// the GEMM's 8x32 tiles fit a 32-filter, 196-pixel product badly (about 70 GFLOP/s measured).
//
// Each image is copied once into a zero-bordered buffer [C][Hp][Wp] (Hp = OH + (KH-1)*DH,
// Wp = OW + (KW-1)*DW). With stride 1, output pixel (oy, ox) reads input (oy + ky*DH, ox + kx*DW) of
// each channel, so 16 consecutive outputs of a row read 16 consecutive inputs: one unaligned vector
// load per tap. Lanes past OW read on into the next row (or the buffer's zero margin) and are never
// stored. A register tile is 8 filters (weights broadcast from a prepacked [filter block][c][ky][kx][8]
// array) by 2 output rows by 16 columns: 16 accumulators, 10 loads per 16 FMAs. Bias, ReLU and a
// fused 2x2 max pool (the tile's two rows are one pooling row pair) are applied in registers and the
// tile is stored straight into the NCHW output: no column matrix, no full-resolution scratch.
// Measured on the benchmark CNN (batch 256, one core, CPU time, shared machine): the 16 -> 32 conv
// at 140 GFLOP/s and the 1 -> 16 conv at ~90 GFLOP/s, against 124 and 60 for an earlier version that
// staged flat tiles in a scratch buffer and pooled in a second pass, and ~70 for im2col + GEMM.
#include "CStokeKernels.h"
#include <string.h>

enum { CV_NF = 8, CV_LANES = 16 };

static int64_t round_up64(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

typedef struct {
    int64_t hp, wp, plane, row_vectors, padded_floats;
} conv_layout;

static conv_layout layout_of(int64_t channels, const stoke_window2d *g) {
    conv_layout l;
    l.hp = g->out_h + (g->kernel_h - 1) * g->dilation_h;
    l.wp = g->out_w + (g->kernel_w - 1) * g->dilation_w;
    l.plane = l.hp * l.wp;
    l.row_vectors = (g->out_w + CV_LANES - 1) / CV_LANES;
    // The last row's lanes past out_w read up to CV_LANES - 1 + (KW-1)*DW floats past the last plane.
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

size_t stoke_conv2d_direct_workspace_count(int64_t channels, const stoke_window2d *g) {
    return (size_t)layout_of(channels, g).padded_floats;
}

// The interior of the padded buffer that one image fills; the border stays zero.
typedef struct {
    int64_t first_row, rows, first_column, columns;
} conv_interior;

static conv_interior interior_of(const stoke_window2d *g, const conv_layout *l) {
    conv_interior in;
    in.first_row = g->pad_top;
    in.rows = g->in_h;
    if (in.first_row + in.rows > l->hp) in.rows = l->hp - in.first_row;
    in.first_column = g->pad_left;
    in.columns = g->in_w;
    if (in.first_column + in.columns > l->wp) in.columns = l->wp - in.first_column;
    return in;
}

static void copy_padded_portable(const float *x, int64_t channels, const stoke_window2d *g, const conv_layout *l,
                                 const conv_interior *in, float *padded) {
    if (in->rows <= 0 || in->columns <= 0) return;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t r = 0; r < in->rows; r++)
            memcpy(padded + c * l->plane + (in->first_row + r) * l->wp + in->first_column, x + (c * g->in_h + r) * g->in_w,
                   (size_t)in->columns * sizeof(float));
}

// Reference order of a 2x2 max, shared with stoke_maxpool2x2_f32: max(a, b) = a > b ? a : b,
// max(max(r0[0], r0[1]), max(r1[0], r1[1])).
static float larger(float a, float b) { return a > b ? a : b; }

static float conv_at(const float *padded, int64_t channels, const stoke_window2d *g, const conv_layout *l, const float *wf,
                     int64_t oy, int64_t ox, float bias, int relu) {
    float sum = 0.0f;
    int64_t t = 0;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t ky = 0; ky < g->kernel_h; ky++)
            for (int64_t kx = 0; kx < g->kernel_w; kx++, t++)
                sum += wf[t * CV_NF] * padded[c * l->plane + (oy + ky * g->dilation_h) * l->wp + ox + kx * g->dilation_w];
    float v = sum + bias;
    return relu ? (v < 0.0f ? 0.0f : v) : v;  // NaN stays NaN
}

static void conv_portable(const float *padded, int64_t channels, int64_t filters, const stoke_window2d *g, const conv_layout *l,
                          const float *packed, const float *bias, int relu, int pool2x2, float *y) {
    int64_t taps = channels * g->kernel_h * g->kernel_w;
    int64_t oh = pool2x2 ? g->out_h / 2 : g->out_h, ow = pool2x2 ? g->out_w / 2 : g->out_w;
    for (int64_t f = 0; f < filters; f++) {
        const float *wf = packed + (f / CV_NF) * taps * CV_NF + f % CV_NF;
        float b = bias ? bias[f] : 0.0f;
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                float v;
                if (pool2x2) {
                    float top = larger(conv_at(padded, channels, g, l, wf, 2 * oy, 2 * ox, b, relu),
                                       conv_at(padded, channels, g, l, wf, 2 * oy, 2 * ox + 1, b, relu));
                    float bottom = larger(conv_at(padded, channels, g, l, wf, 2 * oy + 1, 2 * ox, b, relu),
                                          conv_at(padded, channels, g, l, wf, 2 * oy + 1, 2 * ox + 1, b, relu));
                    v = larger(top, bottom);
                } else {
                    v = conv_at(padded, channels, g, l, wf, oy, ox, b, relu);
                }
                y[(f * oh + oy) * ow + ox] = v;
            }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static void copy_padded_avx512(const float *x, int64_t channels, const stoke_window2d *g, const conv_layout *l,
                               const conv_interior *in, float *padded) {
    if (in->rows <= 0 || in->columns <= 0) return;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t r = 0; r < in->rows; r++) {
            const float *src = x + (c * g->in_h + r) * g->in_w;
            float *dst = padded + c * l->plane + (in->first_row + r) * l->wp + in->first_column;
            for (int64_t i = 0; i < in->columns; i += CV_LANES) {
                int64_t n = in->columns - i < CV_LANES ? in->columns - i : CV_LANES;
                __mmask16 m = (__mmask16)((1u << n) - 1);
                _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
            }
        }
}

// One tile: 8 filters x 2 output rows x 16 columns. Stores the two rows (rows y_row apart), or with
// `pool` their 2x2 maxima (8 values, lanes 0-7 of `store`). Filters from `filters_left` on store nothing.
__attribute__((target("avx512f,avx512vl,fma"), always_inline)) inline
static void conv_tile2(const float *x, const float *w, int64_t channels, int64_t kernel_h, int64_t kernel_w,
                       int64_t plane, int64_t wp, int64_t row_step, int64_t dilation_w, const float *bias, int relu,
                       int pool, int64_t filters_left, float *y, int64_t y_plane, int64_t y_row, __mmask16 store) {
    __m512 a0[CV_NF], a1[CV_NF];
    for (int f = 0; f < CV_NF; f++) a0[f] = a1[f] = _mm512_setzero_ps();
    for (int64_t c = 0; c < channels; c++, x += plane) {
        const float *row = x;
        for (int64_t ky = 0; ky < kernel_h; ky++, row += row_step) {
            const float *tap = row;
            for (int64_t kx = 0; kx < kernel_w; kx++, tap += dilation_w, w += CV_NF) {
                __m512 v0 = _mm512_loadu_ps(tap), v1 = _mm512_loadu_ps(tap + wp);
                for (int f = 0; f < CV_NF; f++) {
                    __m512 wf = _mm512_set1_ps(w[f]);
                    a0[f] = _mm512_fmadd_ps(v0, wf, a0[f]);
                    a1[f] = _mm512_fmadd_ps(v1, wf, a1[f]);
                }
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    // Unrolled so the accumulators are never indexed at run time (which would keep them in memory).
#pragma clang loop unroll(full)
    for (int f = 0; f < CV_NF; f++) {
        __mmask16 lanes = f < filters_left ? store : 0;
        __m512 b = _mm512_set1_ps(bias ? bias[f] : 0.0f);
        __m512 top = _mm512_add_ps(a0[f], b), bottom = _mm512_add_ps(a1[f], b);
        if (relu) {
            top = _mm512_max_ps(zero, top);  // zero first: NaN stays NaN
            bottom = _mm512_max_ps(zero, bottom);
        }
        if (pool) {
            // Lane 2i of pairs(v) is max(v[2i], v[2i + 1]) in the reference order (the odd lane
            // shifted down onto the even one); vpmovqd then gathers the even lanes.
#define CV_PAIRS(v) _mm512_max_ps(v, _mm512_castsi512_ps(_mm512_srli_epi64(_mm512_castps_si512(v), 32)))
            // After ReLU there are no NaNs or negative zeros, so the four values may be combined in
            // any order: rows first saves one horizontal step.
            __m512 window = relu ? CV_PAIRS(_mm512_max_ps(top, bottom)) : _mm512_max_ps(CV_PAIRS(top), CV_PAIRS(bottom));
#undef CV_PAIRS
            __m256 pooled = _mm256_castsi256_ps(_mm512_cvtepi64_epi32(_mm512_castps_si512(window)));
            _mm256_mask_storeu_ps(y + f * y_plane, (__mmask8)lanes, pooled);
        } else {
            _mm512_mask_storeu_ps(y + f * y_plane, lanes, top);
            _mm512_mask_storeu_ps(y + f * y_plane + y_row, lanes, bottom);
        }
    }
}

// The odd last row of an unpooled output: 8 filters x 1 row x 16 columns.
__attribute__((target("avx512f,avx512vl,fma"), always_inline)) inline
static void conv_tile1(const float *x, const float *w, int64_t channels, int64_t kernel_h, int64_t kernel_w,
                       int64_t plane, int64_t row_step, int64_t dilation_w, const float *bias, int relu,
                       int64_t filters_left, float *y, int64_t y_plane, __mmask16 store) {
    __m512 a0[CV_NF];
    for (int f = 0; f < CV_NF; f++) a0[f] = _mm512_setzero_ps();
    for (int64_t c = 0; c < channels; c++, x += plane) {
        const float *row = x;
        for (int64_t ky = 0; ky < kernel_h; ky++, row += row_step) {
            const float *tap = row;
            for (int64_t kx = 0; kx < kernel_w; kx++, tap += dilation_w, w += CV_NF) {
                __m512 v0 = _mm512_loadu_ps(tap);
                for (int f = 0; f < CV_NF; f++) a0[f] = _mm512_fmadd_ps(v0, _mm512_set1_ps(w[f]), a0[f]);
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
#pragma clang loop unroll(full)
    for (int f = 0; f < CV_NF; f++) {
        __m512 v = _mm512_add_ps(a0[f], _mm512_set1_ps(bias ? bias[f] : 0.0f));
        if (relu) v = _mm512_max_ps(zero, v);  // zero first: NaN stays NaN
        _mm512_mask_storeu_ps(y + f * y_plane, f < filters_left ? store : 0, v);
    }
}

__attribute__((target("avx512f,avx512vl,fma")))
static void conv_avx512(const float *padded, int64_t channels, int64_t filters, const stoke_window2d *g, const conv_layout *l,
                        const float *packed, const float *bias, int relu, int pool2x2, float *y, const float *next, int64_t next_floats) {
    int64_t taps = channels * g->kernel_h * g->kernel_w;
    int64_t oh = pool2x2 ? g->out_h / 2 : g->out_h, ow = pool2x2 ? g->out_w / 2 : g->out_w, y_plane = oh * ow;
    // Full-resolution rows the tiles cover: a pool drops an odd last row (floor mode).
    int64_t rows = pool2x2 ? 2 * oh : g->out_h;
    // The next image's input is prefetched a few cache lines after each tile, spread over the whole
    // image: a batch's activations live in L3 or memory, and the copy into the padded buffer
    // otherwise waited on them (7% of the benchmark CNN's time).
    int64_t tiles = ((filters + CV_NF - 1) / CV_NF) * ((rows + 1) / 2) * l->row_vectors;
    int64_t lines = next ? (next_floats + 15) / 16 : 0, per_tile = tiles > 0 ? (lines + tiles - 1) / tiles : 0, fetched = 0;
    float block_bias[CV_NF];
    for (int64_t f0 = 0; f0 < filters; f0 += CV_NF) {
        const float *w = packed + f0 * taps;
        const float *b = NULL;
        if (bias) {
            for (int64_t f = 0; f < CV_NF; f++) block_bias[f] = f0 + f < filters ? bias[f0 + f] : 0.0f;
            b = block_bias;
        }
        float *yf = y + f0 * y_plane;
        for (int64_t oy = 0; oy < rows; oy += 2) {
            for (int64_t v = 0; v < l->row_vectors; v++) {
                const float *x = padded + oy * l->wp + v * CV_LANES;
                // Valid output columns in this tile's lanes (pooled columns with a pool).
                int64_t first = pool2x2 ? v * CV_LANES / 2 : v * CV_LANES;
                int64_t valid = ow - first;
                if (valid <= 0) continue;
                __mmask16 store = valid >= CV_LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
                float *out = yf + (pool2x2 ? oy / 2 : oy) * ow + first;
                if (oy + 1 < rows)
                    conv_tile2(x, w, channels, g->kernel_h, g->kernel_w, l->plane, l->wp, g->dilation_h * l->wp, g->dilation_w, b, relu,
                               pool2x2, filters - f0, out, y_plane, ow, store);
                else
                    conv_tile1(x, w, channels, g->kernel_h, g->kernel_w, l->plane, g->dilation_h * l->wp, g->dilation_w, b, relu,
                               filters - f0, out, y_plane, store);
                for (int64_t i = 0; i < per_tile && fetched < lines; i++, fetched++) _mm_prefetch((const char *)(next + fetched * 16), _MM_HINT_T0);
            }
        }
    }
}
#endif

int stoke_conv2d_direct_vectorized(void) {
#if defined(__x86_64__)
    return stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_AVX512VL | STOKE_CPU_FEATURE_FMA);
#else
    return 0;
#endif
}

int stoke_conv2d_direct_f32(const float *x, int64_t images, int64_t channels, int64_t filters, const stoke_window2d *g,
                            const float *packed, const float *bias, int relu, int pool2x2, float *workspace, float *y) {
    if (!stoke_conv2d_direct_supported(g) || channels <= 0 || filters <= 0) return -3;
    if (pool2x2 && (g->out_h < 2 || g->out_w < 2)) return -3;
    conv_layout l = layout_of(channels, g);
    conv_interior in = interior_of(g, &l);
    // The border and the margin stay zero for every image: only interiors are copied.
    memset(workspace, 0, (size_t)l.padded_floats * sizeof(float));
    int64_t in_image = channels * g->in_h * g->in_w;
    int64_t out_image = filters * (pool2x2 ? (g->out_h / 2) * (g->out_w / 2) : g->out_h * g->out_w);
    int fast = stoke_conv2d_direct_vectorized();
    for (int64_t image = 0; image < images; image++) {
#if defined(__x86_64__)
        if (fast) {
            copy_padded_avx512(x + image * in_image, channels, g, &l, &in, workspace);
            conv_avx512(workspace, channels, filters, g, &l, packed, bias, relu, pool2x2, y + image * out_image,
                        image + 1 < images ? x + (image + 1) * in_image : NULL, in_image);
            continue;
        }
#endif
        copy_padded_portable(x + image * in_image, channels, g, &l, &in, workspace);
        conv_portable(workspace, channels, filters, g, &l, packed, bias, relu, pool2x2, y + image * out_image);
    }
    return 0;
}
