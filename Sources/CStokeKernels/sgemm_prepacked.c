// FP32 GEMM with one operand packed ahead of time, for constant weights: a Gemm/MatMul's B (the
// weights, [k, n]) or a Conv's A (the filters, [m, k]). Packing constant weights once at plan time
// removes per-run packing (for a Conv it ran once per image) and gives the kernel panels that are
// contiguous in memory, so a 32-column panel of B stays in L1 whatever the matrix's row stride.
//
// Same 8x32 register tile as sgemm_avx512.c. K is split into equal blocks of at most KC, rather
// than KC-sized blocks and a short remainder, because every block costs a pass over C (784 = 3 x
// 256 + 16 would spend a whole pass on 16 products). Both operands are row-major and untransposed;
// alpha is 1 and beta 0, which is all the engine's Gemm, MatMul and Conv ask of this path.
#include "CStokeKernels.h"
#include <stdlib.h>
#include <string.h>

enum { PK_MR = 8, PK_NR = 32, PK_KC = 256, PK_MC = 128 };

static size_t round_up(size_t value, size_t step) { return (value + step - 1) / step * step; }

/// The nominal K block: k split into ceil(k / KC) equal blocks (the last may be shorter).
static size_t k_block(size_t k) {
    size_t blocks = (k + PK_KC - 1) / PK_KC;
    return blocks == 0 ? 0 : (k + blocks - 1) / blocks;
}

size_t stoke_sgemm_packed_a_count(size_t m, size_t k) { return round_up(m, PK_MR) * k; }
size_t stoke_sgemm_packed_b_count(size_t k, size_t n) { return round_up(n, PK_NR) * k; }

void stoke_sgemm_pack_a(size_t m, size_t k, const float *a, size_t lda, float *dst) {
    size_t m_pad = round_up(m, PK_MR), kcn = k_block(k);
    for (size_t k0 = 0; k0 < k; k0 += kcn) {
        size_t kc = k - k0 < kcn ? k - k0 : kcn;
        float *block = dst + k0 * m_pad;
        for (size_t i0 = 0; i0 < m_pad; i0 += PK_MR) {
            float *panel = block + i0 * kc;
            for (size_t kk = 0; kk < kc; kk++)
                for (size_t r = 0; r < PK_MR; r++)
                    panel[kk * PK_MR + r] = i0 + r < m ? a[(i0 + r) * lda + k0 + kk] : 0.0f;
        }
    }
}

void stoke_sgemm_pack_b(size_t k, size_t n, const float *b, size_t ldb, int trans_b, float *dst) {
    size_t n_pad = round_up(n, PK_NR), kcn = k_block(k);
    for (size_t k0 = 0; k0 < k; k0 += kcn) {
        size_t kc = k - k0 < kcn ? k - k0 : kcn;
        float *block = dst + k0 * n_pad;
        for (size_t j0 = 0; j0 < n_pad; j0 += PK_NR) {
            float *panel = block + j0 * kc;
            for (size_t kk = 0; kk < kc; kk++)
                for (size_t c = 0; c < PK_NR; c++) {
                    size_t j = j0 + c, row = k0 + kk;
                    panel[kk * PK_NR + c] = j < n ? (trans_b ? b[j * ldb + row] : b[row * ldb + j]) : 0.0f;
                }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

// Per-thread buffer for packing a partial last band of A at run time (when B is the prepacked operand).
static _Thread_local float *runtime_a = NULL;
static _Thread_local size_t runtime_a_size = 0;

// C tile [rows, cols] = (beta ? C : 0) + A Bp, then + row/col bias and ReLU when `last`. Element
// (r, k) of A is ap[r * a_row + k * a_k]: a packed panel (1, 8), or 8 rows of a row-major A read in
// place (lda, 1), which spares the MLP's layers the pack (4% of their time) since the broadcasts
// read any address at the same cost. Inlined into the two wrappers below, so the packed case keeps
// constant offsets.
__attribute__((target("avx512f,fma"), always_inline))
static inline void tile_body(size_t kc, const float *ap, size_t a_row, size_t a_k, const float *bp, size_t b_stride, float *c, size_t ldc,
                             size_t rows, size_t cols, int accumulate, const float *row_bias, const float *col_bias, int relu) {
    __m512 acc[PK_MR][2];
    for (int r = 0; r < PK_MR; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    if (m0 == 0xFFFF && m1 == 0xFFFF) {
        for (size_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
            for (int r = 0; r < PK_MR; r++) {
                __m512 av = _mm512_set1_ps(ap[r * a_row]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
            ap += a_k;
            bp += b_stride;
        }
    } else if (m1 == 0) {
        // At most 16 columns (e.g. a 10-class output layer): half the FMAs of the general case.
        for (size_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
            for (int r = 0; r < PK_MR; r++) acc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(ap[r * a_row]), b0, acc[r][0]);
            ap += a_k;
            bp += b_stride;
        }
    } else {
        for (size_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, bp), b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
            for (int r = 0; r < PK_MR; r++) {
                __m512 av = _mm512_set1_ps(ap[r * a_row]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
            ap += a_k;
            bp += b_stride;
        }
    }
    __m512 zero = _mm512_setzero_ps();
    __m512 cb0 = col_bias ? _mm512_maskz_loadu_ps(m0, col_bias) : zero;
    __m512 cb1 = col_bias ? _mm512_maskz_loadu_ps(m1, col_bias + 16) : zero;
    for (size_t r = 0; r < rows; r++) {
        float *row = c + r * ldc;
        __m512 y0 = acc[r][0], y1 = acc[r][1];
        if (accumulate) {
            y0 = _mm512_add_ps(y0, _mm512_maskz_loadu_ps(m0, row));
            y1 = _mm512_add_ps(y1, _mm512_maskz_loadu_ps(m1, row + 16));
        }
        if (row_bias) {
            __m512 rb = _mm512_set1_ps(row_bias[r]);
            y0 = _mm512_add_ps(y0, rb);
            y1 = _mm512_add_ps(y1, rb);
        }
        y0 = _mm512_add_ps(y0, cb0);
        y1 = _mm512_add_ps(y1, cb1);
        if (relu) {
            y0 = _mm512_max_ps(zero, y0);  // zero first: NaN stays NaN
            y1 = _mm512_max_ps(zero, y1);
        }
        _mm512_mask_storeu_ps(row, m0, y0);
        _mm512_mask_storeu_ps(row + 16, m1, y1);
    }
}

__attribute__((target("avx512f,fma")))
static void tile(size_t kc, const float *ap, const float *bp, size_t b_stride, float *c, size_t ldc,
                 size_t rows, size_t cols, int accumulate, const float *row_bias, const float *col_bias, int relu) {
    tile_body(kc, ap, 1, PK_MR, bp, b_stride, c, ldc, rows, cols, accumulate, row_bias, col_bias, relu);
}

__attribute__((target("avx512f,fma")))
static void tile_rows(size_t kc, const float *a, size_t lda, const float *bp, size_t b_stride, float *c, size_t ldc,
                      size_t rows, size_t cols, int accumulate, const float *row_bias, const float *col_bias, int relu) {
    tile_body(kc, a, lda, 1, bp, b_stride, c, ldc, rows, cols, accumulate, row_bias, col_bias, relu);
}

int stoke_sgemm_avx512_prepacked(size_t m, size_t n, size_t k,
                                 const float *a, size_t lda, const float *packed_a, size_t packed_a_rows, size_t packed_a_first_row,
                                 const float *b, size_t ldb, const float *packed_b, size_t packed_b_columns, size_t packed_b_first_column,
                                 float *c, size_t ldc, const float *row_bias, const float *col_bias, int relu) {
    if (!stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_FMA)) return -1;
    if (m == 0 || n == 0) return 0;
    if ((packed_a == NULL) == (a == NULL) || (packed_b == NULL) == (b == NULL)) return -3;
    if ((packed_a && packed_a_first_row % PK_MR) || (packed_b && packed_b_first_column % PK_NR)) return -3;
    if (k == 0) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                float v = (row_bias ? row_bias[i] : 0.0f) + (col_bias ? col_bias[j] : 0.0f);
                c[i * ldc + j] = relu && v < 0.0f ? 0.0f : v;
            }
        return 0;
    }
    size_t m_pad = round_up(packed_a_rows, PK_MR), n_pad = round_up(packed_b_columns, PK_NR), kcn = k_block(k);
    float *abuf = NULL;
    if (!packed_a) {
        size_t needed = round_up(PK_MC < m ? PK_MC : m, PK_MR) * kcn;
        if (runtime_a_size < needed) {
            free(runtime_a);
            runtime_a = aligned_alloc(64, round_up(needed * sizeof(float), 64));
            runtime_a_size = runtime_a ? needed : 0;
        }
        if (!runtime_a) return -2;
        abuf = runtime_a;
    }
    for (size_t k0 = 0; k0 < k; k0 += kcn) {
        size_t kc = k - k0 < kcn ? k - k0 : kcn;
        int first = k0 == 0, last = k0 + kc == k;
        for (size_t ic = 0; ic < m; ic += PK_MC) {
            size_t mc = m - ic < PK_MC ? m - ic : PK_MC;
            const float *ap;
            if (packed_a) {
                ap = packed_a + k0 * m_pad + (packed_a_first_row + ic) * kc;
            } else {
                // Full 8-row bands are read in place (tile_rows); only a last, partial band is packed
                // (zero rows below it), so the kernel never reads past A.
                for (size_t i0 = 0; i0 < mc; i0 += PK_MR) {
                    float *panel = abuf + i0 * kc;
                    size_t rows = mc - i0 < PK_MR ? mc - i0 : PK_MR;
                    if (rows == PK_MR) continue;
                    for (size_t r = 0; r < PK_MR; r++) {
                        if (r < rows) {
                            const float *src = a + (ic + i0 + r) * lda + k0;
                            for (size_t kk = 0; kk < kc; kk++) panel[kk * PK_MR + r] = src[kk];
                        } else {
                            for (size_t kk = 0; kk < kc; kk++) panel[kk * PK_MR + r] = 0.0f;
                        }
                    }
                }
                ap = abuf;
            }
            for (size_t jr = 0; jr < n; jr += PK_NR) {
                size_t cols = n - jr < PK_NR ? n - jr : PK_NR;
                const float *panel = packed_b ? packed_b + k0 * n_pad + (packed_b_first_column + jr) * kc : b + k0 * ldb + jr;
                size_t stride = packed_b ? PK_NR : ldb;
                for (size_t ir = 0; ir < mc; ir += PK_MR) {
                    size_t rows = mc - ir < PK_MR ? mc - ir : PK_MR;
                    const float *rb = last && row_bias ? row_bias + ic + ir : NULL, *cb = last && col_bias ? col_bias + jr : NULL;
                    if (!packed_a && rows == PK_MR)
                        tile_rows(kc, a + (ic + ir) * lda + k0, lda, panel, stride, c + (ic + ir) * ldc + jr, ldc, rows, cols, !first,
                                  rb, cb, last && relu);
                    else
                        tile(kc, ap + ir * kc, panel, stride, c + (ic + ir) * ldc + jr, ldc, rows, cols, !first, rb, cb, last && relu);
                }
            }
        }
    }
    return 0;
}
#else
int stoke_sgemm_avx512_prepacked(size_t m, size_t n, size_t k,
                                 const float *a, size_t lda, const float *packed_a, size_t packed_a_rows, size_t packed_a_first_row,
                                 const float *b, size_t ldb, const float *packed_b, size_t packed_b_columns, size_t packed_b_first_column,
                                 float *c, size_t ldc, const float *row_bias, const float *col_bias, int relu) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)packed_a; (void)packed_a_rows; (void)packed_a_first_row;
    (void)b; (void)ldb; (void)packed_b; (void)packed_b_columns; (void)packed_b_first_column;
    (void)c; (void)ldc; (void)row_bias; (void)col_bias; (void)relu;
    return -1;
}
#endif
