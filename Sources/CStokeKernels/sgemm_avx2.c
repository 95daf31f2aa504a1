// A packed FP32 GEMM for AVX2/FMA CPUs without AVX-512 (6x16 register tile: 12 ymm accumulators, two
// B vectors and one broadcast), the same blocking and epilogue as sgemm_avx512.c. StokeEngine measures
// it against OpenBLAS once per process and keeps the faster (GemmBackend).
#include "CStokeKernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

enum { MR = 6, NR = 16, KC = 256, MC = 144, NC = 2048 };

// Per-thread packing buffers, grown on demand and then reused: steady state allocates nothing.
static _Thread_local float *packed_a = NULL, *packed_b = NULL;
static _Thread_local size_t packed_a_size = 0, packed_b_size = 0;

static float *ensure(float **buffer, size_t *size, size_t needed) {
    if (*size < needed) {
        free(*buffer);
        *buffer = aligned_alloc(64, ((needed * sizeof(float) + 63) / 64) * 64);
        *size = *buffer ? needed : 0;
    }
    return *buffer;
}

#define A_AT(i, k) (trans_a ? a[(size_t)(k) * lda + (i)] : a[(size_t)(i) * lda + (k)])
#define B_AT(k, j) (trans_b ? b[(size_t)(j) * ldb + (k)] : b[(size_t)(k) * ldb + (j)])

// Packs op(A)[i0:i0+mc, k0:k0+kc] as consecutive MR-row panels, k-major inside a panel.
static void pack_a(const float *a, size_t lda, int trans_a, size_t i0, size_t mc, size_t k0, size_t kc, float *dst) {
    for (size_t ir = 0; ir < mc; ir += MR) {
        size_t rows = mc - ir < MR ? mc - ir : MR;
        for (size_t k = 0; k < kc; k++) {
            for (size_t r = 0; r < MR; r++) dst[r] = r < rows ? A_AT(i0 + ir + r, k0 + k) : 0.0f;
            dst += MR;
        }
    }
}

// Packs op(B)[k0:k0+kc, j0:j0+nc] as consecutive NR-column panels, k-major inside a panel.
static void pack_b(const float *b, size_t ldb, int trans_b, size_t k0, size_t kc, size_t j0, size_t nc, float *dst) {
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t cols = nc - jr < NR ? nc - jr : NR;
        for (size_t k = 0; k < kc; k++) {
            for (size_t c = 0; c < NR; c++) dst[c] = c < cols ? B_AT(k0 + k, j0 + jr + c) : 0.0f;
            dst += NR;
        }
    }
}

static const int32_t mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

// C[0:rows, 0:cols] = alpha * Ap B + beta * C over one MR x NR tile, then the epilogue. B rows are
// `b_stride` floats apart: NR for a packed panel, ldb when B is read in place (masked at the right edge).
__attribute__((target("avx2,fma")))
static void micro_kernel(size_t kc, const float *ap, const float *bp, size_t b_stride, float *c, size_t ldc,
                         size_t rows, size_t cols, float alpha, float beta,
                         const float *row_bias, const float *col_bias, int relu) {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = _mm256_setzero_ps(); acc[r][1] = _mm256_setzero_ps(); }
    size_t c0 = cols < 8 ? cols : 8, c1 = cols > 8 ? cols - 8 : 0;
    __m256i m0 = _mm256_loadu_si256((const __m256i *)(mask_table + 8 - c0));
    __m256i m1 = _mm256_loadu_si256((const __m256i *)(mask_table + 8 - c1));
    if (cols == NR) {
        for (size_t k = 0; k < kc; k++) {
            __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
            for (int r = 0; r < MR; r++) {
                __m256 av = _mm256_broadcast_ss(ap + r);
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
            ap += MR;
            bp += b_stride;
        }
    } else {
        for (size_t k = 0; k < kc; k++) {
            __m256 b0 = _mm256_maskload_ps(bp, m0), b1 = _mm256_maskload_ps(bp + 8, m1);
            for (int r = 0; r < MR; r++) {
                __m256 av = _mm256_broadcast_ss(ap + r);
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
            ap += MR;
            bp += b_stride;
        }
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta), zero = _mm256_setzero_ps();
    __m256 cb0 = col_bias ? _mm256_maskload_ps(col_bias, m0) : zero;
    __m256 cb1 = col_bias ? _mm256_maskload_ps(col_bias + 8, m1) : zero;
    for (size_t r = 0; r < rows; r++) {
        float *row = c + r * ldc;
        __m256 y0 = _mm256_mul_ps(acc[r][0], va), y1 = _mm256_mul_ps(acc[r][1], va);
        if (beta != 0.0f) {
            y0 = _mm256_fmadd_ps(_mm256_maskload_ps(row, m0), vb, y0);
            y1 = _mm256_fmadd_ps(_mm256_maskload_ps(row + 8, m1), vb, y1);
        }
        if (row_bias) {
            __m256 rb = _mm256_set1_ps(row_bias[r]);
            y0 = _mm256_add_ps(y0, rb);
            y1 = _mm256_add_ps(y1, rb);
        }
        if (col_bias) {
            y0 = _mm256_add_ps(y0, cb0);
            y1 = _mm256_add_ps(y1, cb1);
        }
        if (relu) {
            y0 = _mm256_max_ps(zero, y0);  // zero first: NaN stays NaN
            y1 = _mm256_max_ps(zero, y1);
        }
        _mm256_maskstore_ps(row, m0, y0);
        _mm256_maskstore_ps(row + 8, m1, y1);
    }
}

int stoke_sgemm_avx2_fused(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                           const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                           const float *row_bias, const float *col_bias, int relu) {
    if (!stoke_cpu_has(STOKE_CPU_FEATURE_AVX2 | STOKE_CPU_FEATURE_FMA)) return -1;
    if (m == 0 || n == 0) return 0;
    if (k == 0) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                float v = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
                if (row_bias) v += row_bias[i];
                if (col_bias) v += col_bias[j];
                c[i * ldc + j] = relu && v < 0.0f ? 0.0f : v;  // NaN stays NaN
            }
        return 0;
    }
    // Without a transpose B is read in place (its rows are contiguous panels), as in sgemm_avx512.c.
    int pack = trans_b;
    float *bp = pack ? ensure(&packed_b, &packed_b_size, (size_t)KC * (((NC < n ? NC : n) + NR - 1) / NR * NR)) : NULL;
    float *ap = ensure(&packed_a, &packed_a_size, (size_t)KC * (((MC < m ? MC : m) + MR - 1) / MR * MR));
    if ((pack && !bp) || !ap) return -2;
    for (size_t jc = 0; jc < n; jc += NC) {
        size_t nc = n - jc < NC ? n - jc : NC;
        for (size_t pc = 0; pc < k; pc += KC) {
            size_t kc = k - pc < KC ? k - pc : KC;
            float block_beta = pc == 0 ? beta : 1.0f;
            int last = pc + kc == k;  // the epilogue runs once, on the final partial sums
            if (pack) pack_b(b, ldb, trans_b, pc, kc, jc, nc, bp);
            for (size_t ic = 0; ic < m; ic += MC) {
                size_t mc = m - ic < MC ? m - ic : MC;
                pack_a(a, lda, trans_a, ic, mc, pc, kc, ap);
                for (size_t jr = 0; jr < nc; jr += NR) {
                    size_t cols = nc - jr < NR ? nc - jr : NR;
                    for (size_t ir = 0; ir < mc; ir += MR) {
                        size_t rows = mc - ir < MR ? mc - ir : MR;
                        const float *panel = pack ? bp + jr * kc : b + pc * ldb + jc + jr;
                        micro_kernel(kc, ap + ir * kc, panel, pack ? NR : ldb, c + (ic + ir) * ldc + jc + jr, ldc, rows, cols,
                                     alpha, block_beta, last && row_bias ? row_bias + ic + ir : NULL,
                                     last && col_bias ? col_bias + jc + jr : NULL, last && relu);
                    }
                }
            }
        }
    }
    return 0;
}
#else
int stoke_sgemm_avx2_fused(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                           const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc,
                           const float *row_bias, const float *col_bias, int relu) {
    (void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb;
    (void)beta; (void)c; (void)ldc; (void)row_bias; (void)col_bias; (void)relu;
    return -1;
}
#endif
