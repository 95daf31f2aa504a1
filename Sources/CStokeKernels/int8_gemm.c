// The INT8 GEMM's public API over the kernel table (kernel_table.h): packing picks the best entry
// the kernel set allows for these weights; the product runs the entry the matrix was packed for.
#include "kernel_table.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Packed weights: a header, the column sums (N int32, padded to 16), then the entry's layout.
typedef struct {
    uint32_t magic;
    int32_t kernel;  // index into `table`
    uint64_t k, n;
    uint64_t data_offset;
} int8_header;

#define INT8_MAGIC 0x53384b50u /* "PK8S" */

static size_t header_and_sums(size_t n) { return ROUND_UP(sizeof(int8_header) + 4 * ROUND_UP(n, 16), 64); }

static size_t portable_bytes(size_t k, size_t n) { return n * k; }
static void pack_portable(const int8_t *b, size_t ldb, size_t k, size_t n, uint8_t *out) {
    for (size_t i = 0; i < k; i++) memcpy(out + i * n, b + i * ldb, n);
}

static void gemm_portable(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const uint8_t *packed,
                          const epilogue *e, void *c, size_t ldc) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            int32_t acc = 0;
            for (size_t t = 0; t < k; t++) acc += (int32_t)a[i * lda + t] * (int32_t)(int8_t)packed[t * n + j];
            store_scalar(e, j, acc, (uint8_t *)c + e->out_bytes * (i * ldc + j));
        }
}

static const stoke_int8_kernel portable_kernel = {"portable", STOKE_CPU_PORTABLE, 0, 0, portable_bytes, pack_portable, gemm_portable};

/// The table, best first: packing takes the first entry whose features the kernel set has and
/// whose bound (if any) the weights meet.
static const stoke_int8_kernel *const table[] = {
#if defined(__x86_64__)
    &stoke_int8_avx512_vnni, &stoke_int8_avx_vnni, &stoke_int8_avx512_u8s8, &stoke_int8_avx2_u8s8, &stoke_int8_avx2_s16,
#endif
    &portable_kernel,
};
#define TABLE_COUNT (sizeof(table) / sizeof(table[0]))

size_t stoke_int8_k4_bytes(size_t k, size_t n, size_t lanes) { return ROUND_UP(n, lanes) * ROUND_UP(k, 4); }

void stoke_int8_pack_k4(const int8_t *b, size_t ldb, size_t k, size_t n, size_t lanes, uint8_t *dst) {
    // [n/L][k/4][L columns][4 k]: one L*4-byte vector per (column block, k quad).
    size_t quads = ROUND_UP(k, 4) / 4, blocks = ROUND_UP(n, lanes) / lanes;
    int8_t *out = (int8_t *)dst;
    for (size_t block = 0; block < blocks; block++)
        for (size_t q = 0; q < quads; q++)
            for (size_t lane = 0; lane < lanes; lane++)
                for (size_t t = 0; t < 4; t++) {
                    size_t row = 4 * q + t, column = lanes * block + lane;
                    *out++ = (row < k && column < n) ? b[row * ldb + column] : 0;
                }
}

int stoke_int8_pair_bounded(const int8_t *b, size_t ldb, size_t k, size_t n) {
    for (size_t i = 0; i < k; i += 2)
        for (size_t j = 0; j < n; j++) {
            int sum = abs((int)b[i * ldb + j]) + (i + 1 < k ? abs((int)b[(i + 1) * ldb + j]) : 0);
            if (sum > 128) return 0;
        }
    return 1;
}

/// The features packing for `level` may use: the set's, within what this thread may use.
static uint32_t allowed(int level) { return stoke_cpu_level_features(level) & stoke_cpu_features(); }

size_t stoke_int8_packed_bytes(size_t k, size_t n, int level) {
    uint32_t have = allowed(level);
    size_t most = 0;
    for (size_t i = 0; i < TABLE_COUNT; i++) {
        if ((table[i]->features & have) != table[i]->features) continue;
        size_t bytes = table[i]->packed_bytes(k, n);
        if (bytes > most) most = bytes;
        if (!table[i]->needs_pair_bound) break;  // entries after an unconditional one are never chosen
    }
    return header_and_sums(n) + most;
}

static const stoke_int8_kernel *choose(const int8_t *b, size_t ldb, size_t k, size_t n, int level) {
    uint32_t have = allowed(level);
    int bounded_checked = 0, is_bounded = 0;
    for (size_t i = 0; i < TABLE_COUNT; i++) {
        const stoke_int8_kernel *entry = table[i];
        if ((entry->features & have) != entry->features) continue;
        if (entry->needs_pair_bound) {
            if (!bounded_checked) { is_bounded = stoke_int8_pair_bounded(b, ldb, k, n); bounded_checked = 1; }
            if (!is_bounded) continue;
        }
        return entry;
    }
    return &portable_kernel;
}

static int kernel_index(const stoke_int8_kernel *entry) {
    for (size_t i = 0; i < TABLE_COUNT; i++) if (table[i] == entry) return (int)i;
    return (int)TABLE_COUNT - 1;
}

int stoke_int8_packed_level(const void *packed) { return table[((const int8_header *)packed)->kernel]->level; }

const char *stoke_int8_packed_kernel(const void *packed) { return table[((const int8_header *)packed)->kernel]->name; }

const char *stoke_int8_kernel_for(const int8_t *b, size_t ldb, size_t k, size_t n, int level) {
    return choose(b, ldb, k, n, level)->name;
}

void stoke_int8_pack_b(const int8_t *b, size_t ldb, size_t k, size_t n, int level, void *packed) {
    const stoke_int8_kernel *entry = choose(b, ldb, k, n, level);
    int8_header *header = (int8_header *)packed;
    header->magic = INT8_MAGIC;
    header->kernel = kernel_index(entry);
    header->k = k;
    header->n = n;
    header->data_offset = header_and_sums(n);
    int32_t *sums = (int32_t *)((uint8_t *)packed + sizeof(int8_header));
    for (size_t j = 0; j < ROUND_UP(n, 16); j++) {
        int32_t sum = 0;
        if (j < n) for (size_t i = 0; i < k; i++) sum += b[i * ldb + j];
        sums[j] = sum;
    }
    entry->pack(b, ldb, k, n, (uint8_t *)packed + header->data_offset);
}

static void gemm(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const void *packed, const epilogue *e,
                 void *c, size_t ldc) {
    const int8_header *header = (const int8_header *)packed;
    if (m == 0 || n == 0) return;
    table[header->kernel]->gemm(m, n, k, a, lda, (const uint8_t *)packed + header->data_offset, e, c, ldc);
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
