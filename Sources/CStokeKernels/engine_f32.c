// FP32 kernels for StokeEngine. Plain C loops written so that -O2 vectorizes the inner ones;
// the heavy lifting (GEMM) is OpenBLAS, called from Swift.
#include "CStokeKernels.h"
#include <math.h>
#include <string.h>
#include <float.h>

#define STOKE_MAX_DIMS 8

static inline float unary_one(int op, float v, float alpha, float beta) {
    switch (op) {
    case STOKE_UNARY_RELU: return v < 0.0f ? 0.0f : v;  // NaN stays NaN
    case STOKE_UNARY_LEAKY_RELU: return v >= 0.0f ? v : v * alpha;
    case STOKE_UNARY_SIGMOID: return v >= 0.0f ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v));
    case STOKE_UNARY_TANH: return tanhf(v);
    case STOKE_UNARY_ERF: return erff(v);
    case STOKE_UNARY_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case STOKE_UNARY_GELU_TANH:
        return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case STOKE_UNARY_CLIP: return v < alpha ? alpha : (v > beta ? beta : v);
    case STOKE_UNARY_EXP: return expf(v);
    case STOKE_UNARY_NEG: return -v;
    case STOKE_UNARY_ABS: return fabsf(v);
    case STOKE_UNARY_SQRT: return sqrtf(v);
    case STOKE_UNARY_LOG: return logf(v);
    case STOKE_UNARY_RECIPROCAL: return 1.0f / v;
    case STOKE_UNARY_ELU: return v >= 0.0f ? v : alpha * (expf(v) - 1.0f);
    case STOKE_UNARY_SELU: return v > 0.0f ? beta * v : beta * alpha * (expf(v) - 1.0f);
    case STOKE_UNARY_HARD_SIGMOID: { float h = alpha * v + beta; return h < 0.0f ? 0.0f : (h > 1.0f ? 1.0f : h); }
    case STOKE_UNARY_HARD_SWISH: { float h = v / 6.0f + 0.5f; h = h < 0.0f ? 0.0f : (h > 1.0f ? 1.0f : h); return v * h; }
    case STOKE_UNARY_SOFTPLUS: return v > 20.0f ? v : log1pf(expf(v));
    case STOKE_UNARY_SOFTSIGN: return v / (1.0f + fabsf(v));
    case STOKE_UNARY_THRESHOLDED_RELU: return v > alpha ? v : 0.0f;
    case STOKE_UNARY_FLOOR: return floorf(v);
    case STOKE_UNARY_CEIL: return ceilf(v);
    default: return v;
    }
}

void stoke_unary_f32(int op, const float *x, float *y, size_t n, float alpha, float beta) {
    // The hot activations get their own loops so the compiler vectorizes them.
    switch (op) {
    case STOKE_UNARY_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];  // NaN stays NaN
        return;
    case STOKE_UNARY_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? x[i] : x[i] * alpha;
        return;
    case STOKE_UNARY_CLIP:
        for (size_t i = 0; i < n; i++) { float v = x[i]; v = v < alpha ? alpha : v; y[i] = v > beta ? beta : v; }
        return;
    case STOKE_UNARY_IDENTITY:
        if (x != y) memmove(y, x, n * sizeof(float));
        return;
    default:
        for (size_t i = 0; i < n; i++) y[i] = unary_one(op, x[i], alpha, beta);
    }
}

// Walks an ndim-axis index space, calling BODY once per run of the innermost axis with
// a_off/b_off/o_off at the start of the run. Shared by the binary, copy and pad kernels.
#define FOR_EACH_ROW(ndim, shape, ...)                                                 \
    do {                                                                              \
        int64_t idx_[STOKE_MAX_DIMS] = {0};                                           \
        int64_t rows_ = 1;                                                            \
        for (int d_ = 0; d_ < (ndim) - 1; d_++) rows_ *= (shape)[d_];                 \
        for (int64_t r_ = 0; r_ < rows_; r_++) {                                      \
            __VA_ARGS__;                                                               \
            for (int d_ = (ndim) - 2; d_ >= 0; d_--) {                                \
                if (++idx_[d_] < (shape)[d_]) break;                                  \
                idx_[d_] = 0;                                                         \
            }                                                                         \
        }                                                                             \
    } while (0)

static inline int64_t offset_of(const int64_t *idx, const int64_t *strides, int n) {
    int64_t off = 0;
    for (int d = 0; d < n; d++) off += idx[d] * strides[d];
    return off;
}

#define EXTRA_F32(op, x, y) ((op) == 4 ? ((x) > (y) || (x) != (x) ? (x) : (y)) : (op) == 5 ? ((x) < (y) || (x) != (x) ? (x) : (y)) : powf((x), (y)))
#define EXTRA_I64(op, x, y) ((op) == 4 ? ((x) > (y) ? (x) : (y)) : (op) == 5 ? ((x) < (y) ? (x) : (y)) : 0)
#define BINARY_KERNEL(NAME, T, DIVEXPR, EXTRA)                                                   \
    void NAME(int op, const T *a, const int64_t *as, const T *b, const int64_t *bs, T *out,     \
              const int64_t *shape, int ndim) {                                                 \
        if (ndim == 0) {                                                                        \
            T x = a[0], y = b[0];                                                               \
            out[0] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : op == 3 ? (DIVEXPR) : EXTRA(op, x, y); \
            return;                                                                             \
        }                                                                                       \
        int64_t n = shape[ndim - 1], sa = as[ndim - 1], sb = bs[ndim - 1];                      \
        int64_t o = 0;                                                                          \
        FOR_EACH_ROW(ndim, shape, {                                                             \
            const T *pa = a + offset_of(idx_, as, ndim - 1);                                    \
            const T *pb = b + offset_of(idx_, bs, ndim - 1);                                    \
            T *po = out + o;                                                                    \
            if (op > 3) {                                                                       \
                for (int64_t i = 0; i < n; i++) {                                               \
                    T x = pa[i * sa], y = pb[i * sb];                                           \
                    po[i] = EXTRA(op, x, y);                                                    \
                }                                                                               \
            } else if (sa == 1 && sb == 1) {                                                    \
                switch (op) {                                                                   \
                case 0: for (int64_t i = 0; i < n; i++) po[i] = pa[i] + pb[i]; break;           \
                case 1: for (int64_t i = 0; i < n; i++) po[i] = pa[i] - pb[i]; break;           \
                case 2: for (int64_t i = 0; i < n; i++) po[i] = pa[i] * pb[i]; break;           \
                default: for (int64_t i = 0; i < n; i++) { T x = pa[i], y = pb[i]; po[i] = (DIVEXPR); } \
                }                                                                               \
            } else if (sa == 1 && sb == 0) {                                                    \
                T y = pb[0];                                                                    \
                switch (op) {                                                                   \
                case 0: for (int64_t i = 0; i < n; i++) po[i] = pa[i] + y; break;               \
                case 1: for (int64_t i = 0; i < n; i++) po[i] = pa[i] - y; break;               \
                case 2: for (int64_t i = 0; i < n; i++) po[i] = pa[i] * y; break;               \
                default: for (int64_t i = 0; i < n; i++) { T x = pa[i]; po[i] = (DIVEXPR); }    \
                }                                                                               \
            } else {                                                                            \
                for (int64_t i = 0; i < n; i++) {                                               \
                    T x = pa[i * sa], y = pb[i * sb];                                           \
                    po[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : (DIVEXPR);    \
                }                                                                               \
            }                                                                                   \
            o += n;                                                                             \
        });                                                                                     \
    }

BINARY_KERNEL(stoke_binary_f32, float, x / y, EXTRA_F32)
BINARY_KERNEL(stoke_binary_i64, int64_t, (y == 0 ? 0 : x / y), EXTRA_I64)

void stoke_strided_copy(const void *src, const int64_t *ss, void *dst, const int64_t *ds,
                        const int64_t *shape, int ndim, size_t es) {
    const char *s = (const char *)src;
    char *d = (char *)dst;
    if (ndim == 0) { memcpy(d, s, es); return; }
    for (int k = 0; k < ndim; k++) if (shape[k] == 0) return;
    int64_t n = shape[ndim - 1], sn = ss[ndim - 1], dn = ds[ndim - 1];
    FOR_EACH_ROW(ndim, shape, {
        const char *ps = s + offset_of(idx_, ss, ndim - 1) * (int64_t)es;
        char *pd = d + offset_of(idx_, ds, ndim - 1) * (int64_t)es;
        if (sn == 1 && dn == 1) {
            memcpy(pd, ps, (size_t)n * es);
        } else if (es == 4) {
            for (int64_t i = 0; i < n; i++) ((int32_t *)pd)[i * dn] = ((const int32_t *)ps)[i * sn];
        } else if (es == 8) {
            for (int64_t i = 0; i < n; i++) ((int64_t *)pd)[i * dn] = ((const int64_t *)ps)[i * sn];
        } else {
            for (int64_t i = 0; i < n; i++) memcpy(pd + i * dn * (int64_t)es, ps + i * sn * (int64_t)es, es);
        }
    });
}

void stoke_fill(void *dst, const void *value, size_t n, size_t es) {
    char *d = (char *)dst;
    if (es == 4) { int32_t v; memcpy(&v, value, 4); for (size_t i = 0; i < n; i++) ((int32_t *)d)[i] = v; return; }
    if (es == 8) { int64_t v; memcpy(&v, value, 8); for (size_t i = 0; i < n; i++) ((int64_t *)d)[i] = v; return; }
    for (size_t i = 0; i < n; i++) memcpy(d + i * es, value, es);
}

int stoke_gather(const void *data, size_t outer, int64_t extent, size_t inner_bytes,
                 const int64_t *indices, size_t n_indices, void *out) {
    const char *src = (const char *)data;
    char *dst = (char *)out;
    for (size_t j = 0; j < n_indices; j++) {
        int64_t k = indices[j];
        if (k < -extent || k >= extent) return -1;
    }
    for (size_t o = 0; o < outer; o++) {
        for (size_t j = 0; j < n_indices; j++) {
            int64_t k = indices[j];
            if (k < 0) k += extent;
            memcpy(dst, src + ((int64_t)o * extent + k) * (int64_t)inner_bytes, inner_bytes);
            dst += inner_bytes;
        }
    }
    return 0;
}

void stoke_softmax_f32(const float *x, float *y, size_t rows, size_t cols, int log) {
    for (size_t r = 0; r < rows; r++) {
        const float *px = x + r * cols;
        float *py = y + r * cols;
        float m = -INFINITY;
        for (size_t i = 0; i < cols; i++) m = px[i] > m ? px[i] : m;
        double sum = 0.0;
        for (size_t i = 0; i < cols; i++) {
            float e = expf(px[i] - m);
            sum += e;
            if (!log) py[i] = e;
        }
        if (log) {
            float ls = (float)logf((float)sum);
            for (size_t i = 0; i < cols; i++) py[i] = px[i] - m - ls;
        } else {
            float inv = (float)(1.0 / sum);
            for (size_t i = 0; i < cols; i++) py[i] *= inv;
        }
    }
}

void stoke_channel_affine_f32(const float *x, float *y, size_t n, size_t c, size_t s,
                              const float *scale, const float *shift) {
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < c; j++) {
            const float *px = x + (i * c + j) * s;
            float *py = y + (i * c + j) * s;
            float a = scale[j], b = shift[j];
            for (size_t k = 0; k < s; k++) py[k] = px[k] * a + b;
        }
    }
}

void stoke_bias_activation_f32(float *y, size_t rows, size_t cols, const float *bias, int bias_kind,
                               int act, float alpha, float beta) {
    for (size_t r = 0; r < rows; r++) {
        float *py = y + r * cols;
        if (bias && bias_kind == 1) for (size_t i = 0; i < cols; i++) py[i] += bias[i];
        else if (bias && bias_kind == 2) { float b = bias[r]; for (size_t i = 0; i < cols; i++) py[i] += b; }
        else if (bias && bias_kind == 3) { float b = bias[0]; for (size_t i = 0; i < cols; i++) py[i] += b; }
        if (act != STOKE_UNARY_IDENTITY) stoke_unary_f32(act, py, py, cols, alpha, beta);
    }
}

void stoke_im2col_f32(const float *x, int64_t channels, const stoke_window2d *g, float *col) {
    stoke_im2col_ld_f32(x, channels, g, col, g->out_h * g->out_w);
}

void stoke_im2col_ld_f32(const float *x, int64_t channels, const stoke_window2d *g, float *col, int64_t plane) {
    for (int64_t c = 0; c < channels; c++) {
        const float *xc = x + c * g->in_h * g->in_w;
        for (int64_t kh = 0; kh < g->kernel_h; kh++) {
            for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                float *row = col + ((c * g->kernel_h + kh) * g->kernel_w + kw) * plane;
                // Output columns whose input column lies inside the image: [lo, hi).
                int64_t base = kw * g->dilation_w - g->pad_left;
                int64_t lo = base >= 0 ? 0 : (-base + g->stride_w - 1) / g->stride_w;
                int64_t hi = base > g->in_w - 1 ? 0 : (g->in_w - 1 - base) / g->stride_w + 1;
                if (hi > g->out_w) hi = g->out_w;
                if (lo > hi) lo = hi;
                if (g->stride_h == 1 && g->stride_w == 1 && g->out_w == g->in_w && hi > lo) {
                    // "Same"-style windows: output rows map onto consecutive input rows with one
                    // fixed shift, so all valid rows are one contiguous copy; the few columns that
                    // wrapped across a row edge are zeroed afterwards.
                    int64_t shift = kh * g->dilation_h - g->pad_top;
                    int64_t oh_lo = shift >= 0 ? 0 : -shift;
                    int64_t oh_hi = g->in_h - shift < g->out_h ? g->in_h - shift : g->out_h;
                    if (oh_hi <= oh_lo) { memset(row, 0, (size_t)(g->out_h * g->out_w) * sizeof(float)); continue; }
                    if (oh_lo > 0) memset(row, 0, (size_t)(oh_lo * g->out_w) * sizeof(float));
                    int64_t first = oh_lo * g->out_w + lo, last = (oh_hi - 1) * g->out_w + hi;
                    memcpy(row + first, xc + (oh_lo + shift) * g->in_w + lo + base, (size_t)(last - first) * sizeof(float));
                    for (int64_t oh = oh_lo; oh < oh_hi; oh++) {
                        float *line = row + oh * g->out_w;
                        for (int64_t ow = 0; ow < lo; ow++) line[ow] = 0.0f;
                        for (int64_t ow = hi; ow < g->out_w; ow++) line[ow] = 0.0f;
                    }
                    if (oh_hi < g->out_h) memset(row + oh_hi * g->out_w, 0, (size_t)((g->out_h - oh_hi) * g->out_w) * sizeof(float));
                    continue;
                }
                for (int64_t oh = 0; oh < g->out_h; oh++) {
                    int64_t ih = oh * g->stride_h - g->pad_top + kh * g->dilation_h;
                    float *dst = row + oh * g->out_w;
                    if (ih < 0 || ih >= g->in_h) {
                        memset(dst, 0, (size_t)g->out_w * sizeof(float));
                        continue;
                    }
                    const float *src = xc + ih * g->in_w + base;
                    for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    if (g->stride_w == 1) {
                        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * g->stride_w];
                    }
                    for (int64_t ow = hi; ow < g->out_w; ow++) dst[ow] = 0.0f;
                }
            }
        }
    }
}

void stoke_depthwise_conv2d_f32(const float *x, int64_t channels, const float *w, const float *bias,
                                const stoke_window2d *g, float *y) {
    for (int64_t c = 0; c < channels; c++) {
        const float *xc = x + c * g->in_h * g->in_w;
        const float *wc = w + c * g->kernel_h * g->kernel_w;
        float *yc = y + c * g->out_h * g->out_w;
        float b = bias ? bias[c] : 0.0f;
        for (int64_t i = 0; i < g->out_h * g->out_w; i++) yc[i] = b;
        for (int64_t kh = 0; kh < g->kernel_h; kh++) {
            for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                float wv = wc[kh * g->kernel_w + kw];
                for (int64_t oh = 0; oh < g->out_h; oh++) {
                    int64_t ih = oh * g->stride_h - g->pad_top + kh * g->dilation_h;
                    if (ih < 0 || ih >= g->in_h) continue;
                    const float *src = xc + ih * g->in_w;
                    float *dst = yc + oh * g->out_w;
                    int64_t base = kw * g->dilation_w - g->pad_left;
                    for (int64_t ow = 0; ow < g->out_w; ow++) {
                        int64_t iw = ow * g->stride_w + base;
                        if (iw >= 0 && iw < g->in_w) dst[ow] += wv * src[iw];
                    }
                }
            }
        }
    }
}

void stoke_pool2d_f32(int kind, const float *x, int64_t planes, const stoke_window2d *g,
                      int count_include_pad, float *y) {
    // Fast path: every window lies inside the input (no padding reached, no dilation), so the
    // inner loops need no bounds checks.
    if (g->pad_top == 0 && g->pad_left == 0 && g->dilation_h == 1 && g->dilation_w == 1 &&
        (g->out_h - 1) * g->stride_h + g->kernel_h <= g->in_h && (g->out_w - 1) * g->stride_w + g->kernel_w <= g->in_w) {
        const float scale = 1.0f / (float)(g->kernel_h * g->kernel_w);
        for (int64_t p = 0; p < planes; p++) {
            const float *xp = x + p * g->in_h * g->in_w;
            float *yp = y + p * g->out_h * g->out_w;
            for (int64_t oh = 0; oh < g->out_h; oh++) {
                const float *rows = xp + oh * g->stride_h * g->in_w;
                float *out = yp + oh * g->out_w;
                if (kind == 0 && g->kernel_h == 2 && g->kernel_w == 2 && g->stride_w == 2) {
                    for (int64_t ow = 0; ow < g->out_w; ow++) {
                        const float *r0 = rows + 2 * ow, *r1 = r0 + g->in_w;
                        float a = r0[0] > r0[1] ? r0[0] : r0[1], b = r1[0] > r1[1] ? r1[0] : r1[1];
                        out[ow] = a > b ? a : b;
                    }
                    continue;
                }
                for (int64_t ow = 0; ow < g->out_w; ow++) {
                    const float *window = rows + ow * g->stride_w;
                    float acc = kind == 0 ? -INFINITY : 0.0f;
                    for (int64_t kh = 0; kh < g->kernel_h; kh++) {
                        const float *row = window + kh * g->in_w;
                        for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                            if (kind == 0) acc = row[kw] > acc ? row[kw] : acc;
                            else acc += row[kw];
                        }
                    }
                    out[ow] = kind == 0 ? acc : acc * scale;
                }
            }
        }
        return;
    }
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * g->in_h * g->in_w;
        float *yp = y + p * g->out_h * g->out_w;
        for (int64_t oh = 0; oh < g->out_h; oh++) {
            for (int64_t ow = 0; ow < g->out_w; ow++) {
                float acc = kind == 0 ? -INFINITY : 0.0f;
                int64_t inside = 0, window = 0;
                for (int64_t kh = 0; kh < g->kernel_h; kh++) {
                    int64_t ih = oh * g->stride_h - g->pad_top + kh * g->dilation_h;
                    for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                        int64_t iw = ow * g->stride_w - g->pad_left + kw * g->dilation_w;
                        // The window counts padding positions only up to the padded input's end.
                        if (ih < g->in_h + g->pad_bottom && iw < g->in_w + g->pad_right) window++;
                        if (ih < 0 || ih >= g->in_h || iw < 0 || iw >= g->in_w) continue;
                        float v = xp[ih * g->in_w + iw];
                        if (kind == 0) acc = v > acc ? v : acc;
                        else acc += v;
                        inside++;
                    }
                }
                if (kind == 1) {
                    int64_t div = count_include_pad ? window : inside;
                    acc = div > 0 ? acc / (float)div : 0.0f;
                }
                yp[oh * g->out_w + ow] = acc;
            }
        }
    }
}

void stoke_reduce_sum_f32(const float *x, const int64_t *shape, int ndim, const int *mask, float *y) {
    int64_t out_strides[STOKE_MAX_DIMS], total = 1, out_total = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        out_strides[d] = mask[d] ? 0 : out_total;
        if (!mask[d]) out_total *= shape[d];
        total *= shape[d];
    }
    for (int64_t i = 0; i < out_total; i++) y[i] = 0.0f;
    if (total == 0) return;
    if (ndim == 0) { y[0] = x[0]; return; }
    int64_t n = shape[ndim - 1], sn = out_strides[ndim - 1];
    int64_t o = 0;
    FOR_EACH_ROW(ndim, shape, {
        float *py = y + offset_of(idx_, out_strides, ndim - 1);
        const float *px = x + o;
        if (sn == 0) { float s = 0.0f; for (int64_t i = 0; i < n; i++) s += px[i]; py[0] += s; }
        else for (int64_t i = 0; i < n; i++) py[i] += px[i];
        o += n;
    });
}

void stoke_pad(const void *x, const int64_t *in_shape, const int64_t *pads_begin, void *y,
               const int64_t *out_shape, int ndim, size_t es, int mode, const void *value) {
    const char *src = (const char *)x;
    char *dst = (char *)y;
    int64_t in_strides[STOKE_MAX_DIMS], s = 1, out_total = 1;
    for (int d = ndim - 1; d >= 0; d--) { in_strides[d] = s; s *= in_shape[d]; out_total *= out_shape[d]; }
    if (out_total == 0) return;
    if (ndim == 0) { memcpy(dst, src, es); return; }
    int in_empty = s == 0;
    int64_t idx[STOKE_MAX_DIMS] = {0};
    for (int64_t o = 0; o < out_total; o++) {
        int64_t off = 0;
        int outside = in_empty;
        for (int d = 0; d < ndim && !outside; d++) {
            int64_t n = in_shape[d], i = idx[d] - pads_begin[d];
            if (i < 0 || i >= n) {
                switch (mode) {
                case 1: i = i < 0 ? 0 : n - 1; break;
                case 2:
                    if (n == 1) { i = 0; break; }
                    while (i < 0 || i >= n) { if (i < 0) i = -i; if (i >= n) i = 2 * (n - 1) - i; }
                    break;
                case 3: i = ((i % n) + n) % n; break;
                default: outside = 1;
                }
            }
            off += i * in_strides[d];
        }
        memcpy(dst + o * (int64_t)es, outside ? (const char *)value : src + off * (int64_t)es, es);
        for (int d = ndim - 1; d >= 0; d--) { if (++idx[d] < out_shape[d]) break; idx[d] = 0; }
    }
}

void stoke_reduce_extreme_f32(const float *x, const int64_t *shape, int ndim, const int *mask, int kind, float *y) {
    int64_t out_strides[STOKE_MAX_DIMS], total = 1, out_total = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        out_strides[d] = mask[d] ? 0 : out_total;
        if (!mask[d]) out_total *= shape[d];
        total *= shape[d];
    }
    for (int64_t i = 0; i < out_total; i++) y[i] = kind == 0 ? -INFINITY : INFINITY;
    if (total == 0) return;
    if (ndim == 0) { y[0] = x[0]; return; }
    int64_t n = shape[ndim - 1], sn = out_strides[ndim - 1];
    int64_t o = 0;
    FOR_EACH_ROW(ndim, shape, {
        float *py = y + offset_of(idx_, out_strides, ndim - 1);
        const float *px = x + o;
        for (int64_t i = 0; i < n; i++) {
            float v = px[i];
            float *target = py + i * sn;
            if (kind == 0 ? v > *target : v < *target) *target = v;
            if (v != v) *target = v;  // NaN propagates
        }
        o += n;
    });
}

void stoke_layer_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *scale, const float *bias,
                          float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        const float *px = x + r * cols;
        float *py = y + r * cols;
        double sum = 0.0, squares = 0.0;
        for (size_t j = 0; j < cols; j++) sum += px[j];
        double mean = cols ? sum / (double)cols : 0.0;
        for (size_t j = 0; j < cols; j++) { double d = px[j] - mean; squares += d * d; }
        float inv = (float)(1.0 / sqrt((cols ? squares / (double)cols : 0.0) + epsilon));
        float m = (float)mean;
        for (size_t j = 0; j < cols; j++) py[j] = (px[j] - m) * inv * scale[j] + (bias ? bias[j] : 0.0f);
    }
}

#define COMPARE_KERNEL(NAME, T)                                                                  \
    void NAME(int op, const T *a, const int64_t *as, const T *b, const int64_t *bs, int64_t *out, \
              const int64_t *shape, int ndim) {                                                 \
        if (ndim == 0) {                                                                        \
            int64_t dummy_shape[1] = {1}, zero[1] = {0};                                        \
            NAME(op, a, zero, b, zero, out, dummy_shape, 1);                                    \
            return;                                                                             \
        }                                                                                       \
        for (int k = 0; k < ndim; k++) if (shape[k] == 0) return;                               \
        int64_t n = shape[ndim - 1], sa = as[ndim - 1], sb = bs[ndim - 1];                      \
        int64_t o = 0;                                                                          \
        FOR_EACH_ROW(ndim, shape, {                                                             \
            const T *pa = a + offset_of(idx_, as, ndim - 1);                                    \
            const T *pb = b + offset_of(idx_, bs, ndim - 1);                                    \
            for (int64_t i = 0; i < n; i++) {                                                   \
                T x = pa[i * sa], y = pb[i * sb];                                               \
                int r;                                                                          \
                switch (op) {                                                                   \
                case 0: r = x == y; break;                                                      \
                case 1: r = x < y; break;                                                       \
                case 2: r = x <= y; break;                                                      \
                case 3: r = x > y; break;                                                       \
                case 4: r = x >= y; break;                                                      \
                case 5: r = (x != 0) && (y != 0); break;                                        \
                case 6: r = (x != 0) || (y != 0); break;                                        \
                default: r = (x != 0) != (y != 0); break;                                       \
                }                                                                               \
                out[o + i] = r;                                                                 \
            }                                                                                   \
            o += n;                                                                             \
        });                                                                                     \
    }

COMPARE_KERNEL(stoke_compare_f32, float)
COMPARE_KERNEL(stoke_compare_i64, int64_t)

void stoke_where(const int64_t *cond, const int64_t *cs, const void *x, const int64_t *xs, const void *y,
                 const int64_t *ys, void *out, const int64_t *shape, int ndim, size_t es) {
    if (ndim == 0) {
        memcpy(out, cond[0] ? x : y, es);
        return;
    }
    for (int k = 0; k < ndim; k++) if (shape[k] == 0) return;
    int64_t n = shape[ndim - 1], sc = cs[ndim - 1], sx = xs[ndim - 1], sy = ys[ndim - 1];
    int64_t o = 0;
    FOR_EACH_ROW(ndim, shape, {
        const int64_t *pc = cond + offset_of(idx_, cs, ndim - 1);
        const char *px = (const char *)x + offset_of(idx_, xs, ndim - 1) * (int64_t)es;
        const char *py = (const char *)y + offset_of(idx_, ys, ndim - 1) * (int64_t)es;
        char *po = (char *)out + o * (int64_t)es;
        for (int64_t i = 0; i < n; i++) {
            memcpy(po + i * (int64_t)es, pc[i * sc] ? px + i * sx * (int64_t)es : py + i * sy * (int64_t)es, es);
        }
        o += n;
    });
}

void stoke_col2im_add_f32(const float *col, int64_t channels, const stoke_window2d *g, float *x) {
    const int64_t plane = g->out_h * g->out_w;
    for (int64_t c = 0; c < channels; c++) {
        float *xc = x + c * g->in_h * g->in_w;
        for (int64_t kh = 0; kh < g->kernel_h; kh++) {
            for (int64_t kw = 0; kw < g->kernel_w; kw++) {
                const float *row = col + ((c * g->kernel_h + kh) * g->kernel_w + kw) * plane;
                for (int64_t oh = 0; oh < g->out_h; oh++) {
                    int64_t ih = oh * g->stride_h - g->pad_top + kh * g->dilation_h;
                    if (ih < 0 || ih >= g->in_h) continue;
                    float *dst = xc + ih * g->in_w;
                    const float *src = row + oh * g->out_w;
                    for (int64_t ow = 0; ow < g->out_w; ow++) {
                        int64_t iw = ow * g->stride_w - g->pad_left + kw * g->dilation_w;
                        if (iw >= 0 && iw < g->in_w) dst[iw] += src[ow];
                    }
                }
            }
        }
    }
}
