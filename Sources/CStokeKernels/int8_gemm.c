#include <math.h>
#include "CStokeKernels.h"
#include <string.h>

// Packed weights: a header, the column sums (N int32, padded to 16), then the level's layout.
typedef struct {
    uint32_t magic;
    int32_t level;
    uint64_t k, n;
    uint64_t data_offset;
} int8_header;

#define INT8_MAGIC 0x53384b50u /* "PK8S" */
#define ROUND_UP(x, m) (((x) + (m) - 1) / (m) * (m))

static size_t header_and_sums(size_t n) { return ROUND_UP(sizeof(int8_header) + 4 * ROUND_UP(n, 16), 64); }

static int clamp_level(int level) {
    if (level == STOKE_CPU_AVX512_VNNI && stoke_cpu_level_supported(STOKE_CPU_AVX512_VNNI)) return level;
    return level != STOKE_CPU_PORTABLE && stoke_cpu_level_supported(STOKE_CPU_AVX2) ? STOKE_CPU_AVX2 : STOKE_CPU_PORTABLE;
}

size_t stoke_int8_packed_bytes(size_t k, size_t n, int level) {
    level = clamp_level(level);
    size_t data;
    switch (level) {
    case STOKE_CPU_AVX512_VNNI: data = ROUND_UP(n, 16) * ROUND_UP(k, 4); break;           // bytes
    case STOKE_CPU_AVX2: data = ROUND_UP(n, 8) * ROUND_UP(k, 2) * 2; break;                 // int16
    default: data = n * k; break;
    }
    return header_and_sums(n) + data;
}

int stoke_int8_packed_level(const void *packed) { return ((const int8_header *)packed)->level; }

void stoke_int8_pack_b(const int8_t *b, size_t ldb, size_t k, size_t n, int level, void *packed) {
    level = clamp_level(level);
    int8_header *header = (int8_header *)packed;
    header->magic = INT8_MAGIC;
    header->level = level;
    header->k = k;
    header->n = n;
    header->data_offset = header_and_sums(n);
    int32_t *sums = (int32_t *)((uint8_t *)packed + sizeof(int8_header));
    for (size_t j = 0; j < ROUND_UP(n, 16); j++) {
        int32_t sum = 0;
        if (j < n) for (size_t i = 0; i < k; i++) sum += b[i * ldb + j];
        sums[j] = sum;
    }
    uint8_t *data = (uint8_t *)packed + header->data_offset;
    if (level == STOKE_CPU_AVX512_VNNI) {
        // [n/16][k/4][16 columns][4 k]: one 64-byte vector per (column block, k quad).
        size_t quads = ROUND_UP(k, 4) / 4, blocks = ROUND_UP(n, 16) / 16;
        int8_t *out = (int8_t *)data;
        for (size_t block = 0; block < blocks; block++)
            for (size_t q = 0; q < quads; q++)
                for (size_t lane = 0; lane < 16; lane++)
                    for (size_t t = 0; t < 4; t++) {
                        size_t row = 4 * q + t, column = 16 * block + lane;
                        *out++ = (row < k && column < n) ? b[row * ldb + column] : 0;
                    }
    } else if (level == STOKE_CPU_AVX2) {
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
    } else {
        int8_t *out = (int8_t *)data;
        for (size_t i = 0; i < k; i++) memcpy(out + i * n, b + i * ldb, n);
    }
}

// The epilogue every path shares: one output row segment from s32 accumulators. `mode` 0 stores
// s32, 1 dequantizes to f32, 2 requantizes to u8 (out_bytes is then 1, else 4).
typedef struct {
    int32_t zero_point;
    const int32_t *sums;
    int dequantize;
    float a_scale;
    const float *b_scale;
    const float *bias;
    int relu;
    int requantize;
    size_t out_bytes;
    const float *multiplier;
    const int32_t *bias_s32;
    int32_t y_zero_point, lo, hi;
} epilogue;

/// A product bounded to ±2^30 before the integer conversion, so a huge multiplier saturates (instead
/// of undefined behaviour in C, or INT_MIN from cvtps2dq) and NaN gives the low bound; every path
/// applies the same bound, so they stay bit-identical.
#define STOKE_REQUANT_BOUND 1073741824.0f
static inline float bounded(float v) { return fminf(fmaxf(v, -STOKE_REQUANT_BOUND), STOKE_REQUANT_BOUND); }

/// The requantization every path must reproduce bit for bit: one f32 multiply, round half to even
/// (the default rounding mode, as cvtps2dq does), zero point, clamp.
static inline uint8_t requantize_scalar(const epilogue *e, size_t column, int32_t value) {
    if (e->bias_s32) value += e->bias_s32[column];
    int32_t q = (int32_t)__builtin_nearbyintf(bounded((float)value * e->multiplier[column])) + e->y_zero_point;
    return (uint8_t)(q < e->lo ? e->lo : q > e->hi ? e->hi : q);
}

static inline void store_scalar(const epilogue *e, size_t column, int32_t acc, void *out) {
    int32_t value = acc - e->zero_point * e->sums[column];
    if (e->requantize) {
        *(uint8_t *)out = requantize_scalar(e, column, value);
        return;
    }
    if (!e->dequantize) {
        *(int32_t *)out = value;
        return;
    }
    float f = e->a_scale * e->b_scale[column] * (float)value + (e->bias ? e->bias[column] : 0.0f);
    if (e->relu && f < 0) f = 0;
    *(float *)out = f;
}

static void gemm_portable(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const int8_t *b,
                          const epilogue *e, void *c, size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            int32_t acc = 0;
            for (size_t t = 0; t < k; t++) acc += (int32_t)a[i * lda + t] * (int32_t)b[t * n + j];
            store_scalar(e, j, acc, (uint8_t *)c + e->out_bytes * (i * ldc + j));
        }
}

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

/// 6 full rows × NB column blocks (NB a constant after inlining, so the accumulators stay in
/// registers), requantized to u8 with a precomputed panel. Same arithmetic as store16: the s32
/// offset is added in one step (integer addition is associative, so the bytes are identical).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))
static inline void vnni_requant_tile(const size_t NB, size_t quads, size_t full_quads, size_t k, const uint8_t *const *rowp,
                                     const int8_t *panel, const epilogue *e, const requant_panel *rp, uint8_t *out, size_t ldc) {
    __m512i acc[VNNI_ROWS][VNNI_BLOCKS];
    for (size_t r = 0; r < VNNI_ROWS; r++)
        for (size_t p = 0; p < NB; p++) acc[r][p] = _mm512_setzero_si512();
    for (size_t q = 0; q < quads; q++) {
        __m512i w[VNNI_BLOCKS];
        for (size_t p = 0; p < NB; p++) w[p] = _mm512_loadu_si512(panel + (p * quads + q) * 64);
        for (size_t r = 0; r < VNNI_ROWS; r++) {
            int32_t word;
            if (q < full_quads) memcpy(&word, rowp[r] + 4 * q, 4); else word = load_a4(rowp[r], 4 * q, k);
            __m512i x = _mm512_set1_epi32(word);
            for (size_t p = 0; p < NB; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
        }
    }
    const __m512i zero = _mm512_set1_epi32(e->y_zero_point), lo = _mm512_set1_epi32(e->lo), hi = _mm512_set1_epi32(e->hi);
    for (size_t r = 0; r < VNNI_ROWS; r++)
        for (size_t p = 0; p < NB; p++) {
            __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][p], rp->offset[p])), rp->multiplier[p]);
            f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(-STOKE_REQUANT_BOUND)), _mm512_set1_ps(STOKE_REQUANT_BOUND));
            __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero);
            q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
            _mm_mask_storeu_epi8(out + r * ldc + p * 16, rp->mask[p], _mm512_cvtepi32_epi8(q));
        }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
static void gemm_vnni(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const int8_t *b,
                      const epilogue *e, void *c, size_t ldc) {
    size_t quads = ROUND_UP(k, 4) / 4, full_quads = k / 4, blocks = ROUND_UP(n, 16) / 16;
    for (size_t block = 0; block < blocks; block += VNNI_BLOCKS) {
        size_t nb = blocks - block < VNNI_BLOCKS ? blocks - block : VNNI_BLOCKS;
        const int8_t *panel = b + block * quads * 64;
        requant_panel rp;
        if (e->requantize) {
            for (size_t p = 0; p < nb; p++) {
                size_t column = (block + p) * 16, valid = n - column;
                __mmask16 mask = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1);
                __m512i offset = _mm512_mullo_epi32(_mm512_set1_epi32(-e->zero_point), _mm512_maskz_loadu_epi32(mask, e->sums + column));
                if (e->bias_s32) offset = _mm512_add_epi32(offset, _mm512_maskz_loadu_epi32(mask, e->bias_s32 + column));
                rp.offset[p] = offset;
                rp.multiplier[p] = _mm512_maskz_loadu_ps(mask, e->multiplier + column);
                rp.mask[p] = mask;
            }
        }
        for (size_t i0 = 0; i0 < m; i0 += VNNI_ROWS) {
            size_t rows = m - i0 < VNNI_ROWS ? m - i0 : VNNI_ROWS;
            if (e->requantize && rows == VNNI_ROWS) {
                const uint8_t *rowp[VNNI_ROWS];
                for (size_t r = 0; r < VNNI_ROWS; r++) rowp[r] = a + (i0 + r) * lda;
                uint8_t *out = (uint8_t *)c + i0 * ldc + block * 16;
                switch (nb) {
                case 1: vnni_requant_tile(1, quads, full_quads, k, rowp, panel, e, &rp, out, ldc); break;
                case 2: vnni_requant_tile(2, quads, full_quads, k, rowp, panel, e, &rp, out, ldc); break;
                case 3: vnni_requant_tile(3, quads, full_quads, k, rowp, panel, e, &rp, out, ldc); break;
                default: vnni_requant_tile(4, quads, full_quads, k, rowp, panel, e, &rp, out, ldc); break;
                }
                continue;
            }
            __m512i acc[VNNI_ROWS][VNNI_BLOCKS];
            for (size_t r = 0; r < VNNI_ROWS; r++)
                for (size_t p = 0; p < VNNI_BLOCKS; p++) acc[r][p] = _mm512_setzero_si512();
            const uint8_t *rowp[VNNI_ROWS];
            for (size_t r = 0; r < VNNI_ROWS; r++) rowp[r] = a + (i0 + (r < rows ? r : 0)) * lda;
            if (rows == VNNI_ROWS && nb == VNNI_BLOCKS) {
                for (size_t q = 0; q < quads; q++) {
                    __m512i w[VNNI_BLOCKS];
                    for (size_t p = 0; p < VNNI_BLOCKS; p++) w[p] = _mm512_loadu_si512(panel + (p * quads + q) * 64);
                    for (size_t r = 0; r < VNNI_ROWS; r++) {
                        int32_t word;
                        if (q < full_quads) memcpy(&word, rowp[r] + 4 * q, 4); else word = load_a4(rowp[r], 4 * q, k);
                        __m512i x = _mm512_set1_epi32(word);
                        for (size_t p = 0; p < VNNI_BLOCKS; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
                    }
                }
            } else {
                for (size_t q = 0; q < quads; q++) {
                    __m512i w[VNNI_BLOCKS];
                    for (size_t p = 0; p < VNNI_BLOCKS; p++)
                        w[p] = p < nb ? _mm512_loadu_si512(panel + (p * quads + q) * 64) : _mm512_setzero_si512();
                    for (size_t r = 0; r < rows; r++) {
                        int32_t word;
                        if (q < full_quads) memcpy(&word, rowp[r] + 4 * q, 4); else word = load_a4(rowp[r], 4 * q, k);
                        __m512i x = _mm512_set1_epi32(word);
                        for (size_t p = 0; p < nb; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], x, w[p]);
                    }
                }
            }
            for (size_t r = 0; r < rows; r++)
                for (size_t p = 0; p < nb; p++) {
                    size_t column = (block + p) * 16;
                    if (column >= n) continue;
                    store16(e, column, n - column, acc[r][p], (uint8_t *)c + e->out_bytes * ((i0 + r) * ldc + column));
                }
        }
    }
}

__attribute__((target("avx2")))
static void store8(const epilogue *e, size_t column, size_t valid, __m256i acc, void *out) {
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    for (size_t j = 0; j < 8 && j < valid; j++) store_scalar(e, column + j, lanes[j], (uint8_t *)out + e->out_bytes * j);
}

// Micro-kernel: up to 4 rows × 2 column blocks of 8; vpmaddwd on s16-widened values, 2 k at a time.
__attribute__((target("avx2")))
static void gemm_avx2(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const int16_t *b,
                      const epilogue *e, void *c, size_t ldc) {
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
                    store8(e, column, n - column, acc[r][q], (uint8_t *)c + e->out_bytes * ((i0 + r) * ldc + column));
                }
        }
    }
}
#endif

static void gemm(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const void *packed, const epilogue *e,
                 void *c, size_t ldc) {
    const int8_header *header = (const int8_header *)packed;
    const uint8_t *data = (const uint8_t *)packed + header->data_offset;
    if (m == 0 || n == 0) return;
    switch (header->level) {
#if defined(__x86_64__)
    case STOKE_CPU_AVX512_VNNI: gemm_vnni(m, n, k, a, lda, (const int8_t *)data, e, c, ldc); return;
    case STOKE_CPU_AVX2: gemm_avx2(m, n, k, a, lda, (const int16_t *)data, e, c, ldc); return;
#endif
    default: gemm_portable(m, n, k, a, lda, (const int8_t *)data, e, c, ldc); return;
    }
}

void stoke_int8_gemm_s32(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const void *packed,
                         int32_t a_zero_point, int32_t *c, size_t ldc) {
    const int8_header *header = (const int8_header *)packed;
    epilogue e = {a_zero_point, (const int32_t *)((const uint8_t *)packed + sizeof(int8_header)), 0, 0, NULL, NULL, 0,
                  0, 4, NULL, NULL, 0, 0, 0};
    (void)header;
    gemm(m, n, k, a, lda, packed, &e, c, ldc);
}

void stoke_int8_gemm_f32(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const void *packed,
                         int32_t a_zero_point, float a_scale, const float *b_scale, const float *bias, int relu,
                         float *c, size_t ldc) {
    epilogue e = {a_zero_point, (const int32_t *)((const uint8_t *)packed + sizeof(int8_header)), 1, a_scale, b_scale, bias, relu,
                  0, 4, NULL, NULL, 0, 0, 0};
    gemm(m, n, k, a, lda, packed, &e, c, ldc);
}

void stoke_int8_gemm_u8(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const void *packed,
                        int32_t a_zero_point, const float *multiplier, const int32_t *bias, int32_t y_zero_point,
                        int32_t lo, int32_t hi, uint8_t *c, size_t ldc) {
    epilogue e = {a_zero_point, (const int32_t *)((const uint8_t *)packed + sizeof(int8_header)), 0, 0, NULL, NULL, 0,
                  1, 1, multiplier, bias, y_zero_point, lo, hi};
    gemm(m, n, k, a, lda, packed, &e, c, ldc);
}

void stoke_requantize_reference(size_t m, size_t n, const int32_t *acc, const float *multiplier, const int32_t *bias,
                                int32_t y_zero_point, int32_t lo, int32_t hi, uint8_t *c) {
    epilogue e = {0, NULL, 0, 0, NULL, NULL, 0, 1, 1, multiplier, bias, y_zero_point, lo, hi};
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) c[i * n + j] = requantize_scalar(&e, j, acc[i * n + j]);
}

// MARK: - Activation quantization (dynamic: per tensor, asymmetric u8)

void stoke_minmax_f32(const float *x, size_t n, float *min_out, float *max_out) {
    float lo = 0, hi = 0;
    size_t i = 0;
#if defined(__x86_64__)
    if (n >= 16 && stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F)) {
        extern void stoke_minmax_avx512(const float *, size_t, float *, float *);
        stoke_minmax_avx512(x, n, &lo, &hi);
        *min_out = lo;
        *max_out = hi;
        return;
    }
#endif
    if (n > 0) lo = hi = x[0];
    for (; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    *min_out = lo;
    *max_out = hi;
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
void stoke_minmax_avx512(const float *x, size_t n, float *min_out, float *max_out) {
    __m512 lo = _mm512_set1_ps(x[0]), hi = lo;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
    }
    float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
    for (; i < n; i++) {
        if (x[i] < l) l = x[i];
        if (x[i] > h) h = x[i];
    }
    *min_out = l;
    *max_out = h;
}

__attribute__((target("avx512f,avx512bw")))
static void quantize_avx512(const float *x, size_t n, float inverse_scale, int32_t zero_point, uint8_t *q) {
    __m512 inv = _mm512_set1_ps(inverse_scale);
    __m512i zp = _mm512_set1_epi32(zero_point), lo = _mm512_setzero_si512(), hi = _mm512_set1_epi32(255);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), inv);
        v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-STOKE_REQUANT_BOUND)), _mm512_set1_ps(STOKE_REQUANT_BOUND));
        __m512i r = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, zp), lo), hi);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(r));
    }
    for (; i < n; i++) {
        int32_t r = (int32_t)__builtin_nearbyintf(bounded(x[i] * inverse_scale)) + zero_point;
        q[i] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
}
#endif

void stoke_quantize_u8(const float *x, size_t n, float scale, int32_t zero_point, uint8_t *q) {
    float inverse = scale > 0 ? 1.0f / scale : 0.0f;
#if defined(__x86_64__)
    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F | STOKE_CPU_FEATURE_AVX512BW)) {
        quantize_avx512(x, n, inverse, zero_point, q);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) {
        int32_t r = (int32_t)__builtin_nearbyintf(bounded(x[i] * inverse)) + zero_point;
        q[i] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
}
