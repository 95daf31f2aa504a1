// x86 INT8 kernels of the table (kernel_table.h): avx2-s16 (u8 and s8 widened to s16, vpmaddwd),
// avx2-u8s8 (vpmaddubsw + vpmaddwd, exact under the pair bound), avx-vnni (VEX vpdpbusd, 256-bit),
// avx512-u8s8 (512-bit vpmaddubsw, exact under the pair bound) and avx512-vnni (vpdpbusd).
#include "kernel_table.h"

#if defined(__x86_64__)
#include <immintrin.h>

/// Four A bytes starting at `t` as one little-endian int32, zero beyond `k`.
static inline int32_t load_a4(const uint8_t *row, size_t t, size_t k) {
    uint8_t bytes[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < 4 && t + i < k; i++) bytes[i] = row[t + i];
    int32_t value;
    memcpy(&value, bytes, 4);
    return value;
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void store16(const epilogue *e, size_t column, size_t valid, __m512i acc, void *out) {
    __mmask16 mask = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
    __m512i sums = _mm512_maskz_loadu_epi32(mask, e->sums + column);
    __m512i value = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(e->zero_point), sums));
    if (e->requantize) {
        if (e->bias_s32) value = _mm512_add_epi32(value, _mm512_maskz_loadu_epi32(mask, e->bias_s32 + column));
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(value), _mm512_maskz_loadu_ps(mask, e->multiplier + column));
        f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(-STOKE_REQUANT_BOUND)), _mm512_set1_ps(STOKE_REQUANT_BOUND));
        __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                     _mm512_set1_epi32(e->y_zero_point));
        q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(e->lo)), _mm512_set1_epi32(e->hi));
        _mm_mask_storeu_epi8(out, mask, _mm512_cvtepi32_epi8(q));
        return;
    }
    if (!e->dequantize) {
        _mm512_mask_storeu_epi32(out, mask, value);
        return;
    }
    __m512 scale = _mm512_mul_ps(_mm512_set1_ps(e->a_scale), _mm512_maskz_loadu_ps(mask, e->b_scale + column));
    __m512 f = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(value));
    if (e->bias) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mask, e->bias + column));
    if (e->relu) f = _mm512_max_ps(_mm512_setzero_ps(), f);  // zero first: NaN stays NaN
    _mm512_mask_storeu_ps(out, mask, f);
}

// Micro-kernel: up to 6 rows × 4 column blocks of 16 (24 accumulators); per k quad, 4 weight loads and
// 6 broadcasts feed 24 vpdpbusd, so loads do not bound the loop.
#define VNNI_ROWS 6
#define VNNI_BLOCKS 4

/// Row-invariant requantization constants of up to 4 column blocks: bias − za · colsum, the
/// multipliers and the store masks, computed once per column panel instead of once per row.
typedef struct {
    __m512i offset[VNNI_BLOCKS];
    __m512 multiplier[VNNI_BLOCKS];
    __mmask16 mask[VNNI_BLOCKS];
} requant_panel;

/// The epilogue of 8 s32 accumulators (columns column ..< column + valid): the same arithmetic as
/// store_scalar and store16, so every entry gives the same bytes.
__attribute__((target("avx2")))
static void store8_avx2(const epilogue *e, size_t column, size_t valid, __m256i acc, void *out) {
    if (valid < 8) {
        int32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, acc);
        for (size_t j = 0; j < valid; j++) store_scalar(e, column + j, lanes[j], (uint8_t *)out + e->out_bytes * j);
        return;
    }
    __m256i sums = _mm256_loadu_si256((const __m256i *)(e->sums + column));
    __m256i value = _mm256_sub_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(e->zero_point), sums));
    if (e->requantize) {
        if (e->bias_s32) value = _mm256_add_epi32(value, _mm256_loadu_si256((const __m256i *)(e->bias_s32 + column)));
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(value), _mm256_loadu_ps(e->multiplier + column));
        f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(-STOKE_REQUANT_BOUND)), _mm256_set1_ps(STOKE_REQUANT_BOUND));
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(e->y_zero_point));
        q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(e->lo)), _mm256_set1_epi32(e->hi));
        __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)out, _mm_packus_epi16(words, words));
        return;
    }
    if (!e->dequantize) {
        _mm256_storeu_si256((__m256i *)out, value);
        return;
    }
    __m256 scale = _mm256_mul_ps(_mm256_set1_ps(e->a_scale), _mm256_loadu_ps(e->b_scale + column));
    __m256 f = _mm256_mul_ps(scale, _mm256_cvtepi32_ps(value));
    if (e->bias) f = _mm256_add_ps(f, _mm256_loadu_ps(e->bias + column));
    if (e->relu) f = _mm256_max_ps(_mm256_setzero_ps(), f);  // zero first: NaN stays NaN
    _mm256_storeu_ps((float *)out, f);
}

__attribute__((target("avx2")))
static void gemm_avx2_s16(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const uint8_t *packed,
                          const epilogue *e, void *c, size_t ldc) {
    const int16_t *b = (const int16_t *)packed;
    size_t pairs = ROUND_UP(k, 2) / 2, full_pairs = k / 2, blocks = ROUND_UP(n, 8) / 8;
    for (size_t i0 = 0; i0 < m; i0 += 4) {
        size_t rows = m - i0 < 4 ? m - i0 : 4;
        for (size_t block = 0; block < blocks; block += 2) {
            size_t pair = blocks - block < 2 ? 1 : 2;
            __m256i acc[4][2];
            for (size_t r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
            const int16_t *b0 = b + block * pairs * 16, *b1 = b0 + pairs * 16;
            for (size_t p = 0; p < pairs; p++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(b0 + p * 16));
                __m256i w1 = pair == 2 ? _mm256_loadu_si256((const __m256i *)(b1 + p * 16)) : _mm256_setzero_si256();
                for (size_t r = 0; r < rows; r++) {
                    const uint8_t *row = a + (i0 + r) * lda;
                    uint32_t lo = row[2 * p], hi = p < full_pairs ? row[2 * p + 1] : 0;
                    __m256i x = _mm256_set1_epi32((int32_t)(lo | (hi << 16)));
                    acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, w0));
                    if (pair == 2) acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, w1));
                }
            }
            for (size_t r = 0; r < rows; r++)
                for (size_t q = 0; q < pair; q++) {
                    size_t column = (block + q) * 8;
                    if (column >= n) continue;
                    store8_avx2(e, column, n - column, acc[r][q], (uint8_t *)c + e->out_bytes * ((i0 + r) * ldc + column));
                }
        }
    }
}
// avx512-vnni: 6 rows x 64 columns, one vpdpbusd per 64 multiply-adds.
#define T512_NAME gemm_avx512_vnni
#define T512_TARGET "avx512f,avx512bw,avx512vl,avx512vnni"
#define T512_DOT(acc, x, w) acc = _mm512_dpbusd_epi32(acc, x, w)
#include "int8_tile512.inc"

// avx512-u8s8 (AVX-512BW without VNNI): vpmaddubsw (u8 x s8 pairs into s16: exact under the pair
// bound), vpmaddwd with ones (exact widening), vpaddd.
#define T512_NAME gemm_avx512_u8s8
#define T512_TARGET "avx512f,avx512bw,avx512vl"
#define T512_DOT(acc, x, w) acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(x, w), _mm512_set1_epi16(1)))
#include "int8_tile512.inc"

// avx2-u8s8: 4 rows x 16 columns (8 accumulators + 2 weights + broadcast + ones + product).
#define T256_NAME gemm_avx2_u8s8
#define T256_TARGET "avx2"
#define T256_ROWS 4
#define T256_DOT(acc, x, w) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones))
#include "int8_tile256.inc"

// avx-vnni: 6 rows x 16 columns, one VEX vpdpbusd per 32 multiply-adds (exact, no bound needed).
#define T256_NAME gemm_avx_vnni
#define T256_TARGET "avx2,avxvnni"
#define T256_ROWS 6
#define T256_DOT(acc, x, w) acc = _mm256_dpbusd_avx_epi32(acc, x, w)
#include "int8_tile256.inc"

static size_t k4x8_bytes(size_t k, size_t n) { return stoke_int8_k4_bytes(k, n, 8); }
static size_t k4x16_bytes(size_t k, size_t n) { return stoke_int8_k4_bytes(k, n, 16); }
static void pack_k4x8(const int8_t *b, size_t ldb, size_t k, size_t n, uint8_t *dst) { stoke_int8_pack_k4(b, ldb, k, n, 8, dst); }
static void pack_k4x16(const int8_t *b, size_t ldb, size_t k, size_t n, uint8_t *dst) { stoke_int8_pack_k4(b, ldb, k, n, 16, dst); }

static size_t s16_bytes(size_t k, size_t n) { return ROUND_UP(n, 8) * ROUND_UP(k, 2) * 2; }
static void pack_s16(const int8_t *b, size_t ldb, size_t k, size_t n, uint8_t *data) {
    // [n/8][k/2][8 columns][2 k] as int16: one 32-byte vector per (column block, k pair).
    size_t pairs = ROUND_UP(k, 2) / 2, blocks = ROUND_UP(n, 8) / 8;
    int16_t *out = (int16_t *)data;
    for (size_t block = 0; block < blocks; block++)
        for (size_t p = 0; p < pairs; p++)
            for (size_t lane = 0; lane < 8; lane++)
                for (size_t t = 0; t < 2; t++) {
                    size_t row = 2 * p + t, column = 8 * block + lane;
                    *out++ = (row < k && column < n) ? (int16_t)b[row * ldb + column] : 0;
                }
}

#define AVX2_FEATURES (STOKE_CPU_FEATURE_AVX2)
#define AVX512_FEATURES (STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_AVX512BW | STOKE_CPU_FEATURE_AVX512VL)

const stoke_int8_kernel stoke_int8_avx2_s16 = {"avx2-s16", STOKE_CPU_AVX2, AVX2_FEATURES, 0, s16_bytes, pack_s16, gemm_avx2_s16};
const stoke_int8_kernel stoke_int8_avx2_u8s8 = {"avx2-u8s8", STOKE_CPU_AVX2, AVX2_FEATURES, 1, k4x8_bytes, pack_k4x8, gemm_avx2_u8s8};
const stoke_int8_kernel stoke_int8_avx_vnni = {"avx-vnni", STOKE_CPU_AVX_VNNI, AVX2_FEATURES | STOKE_CPU_FEATURE_AVXVNNI, 0,
                                               k4x8_bytes, pack_k4x8, gemm_avx_vnni};
const stoke_int8_kernel stoke_int8_avx512_u8s8 = {"avx512-u8s8", STOKE_CPU_AVX512, AVX512_FEATURES, 1, k4x16_bytes, pack_k4x16,
                                                  gemm_avx512_u8s8};
const stoke_int8_kernel stoke_int8_avx512_vnni = {"avx512-vnni", STOKE_CPU_AVX512_VNNI, AVX512_FEATURES | STOKE_CPU_FEATURE_AVX512VNNI, 0,
                                                  k4x16_bytes, pack_k4x16, gemm_avx512_vnni};
#endif
