#include "CStokeKernels.h"

// The end every path shares: a trailing odd byte as the high half of a word, then the last folds.
static inline uint32_t fletcher32_finish(uint32_t sum1, uint32_t sum2, const uint8_t *data, size_t nbytes) {
    if (nbytes % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

// HDF5's H5_checksum_fletcher32 (H5checksum.c): 16-bit big-endian words, uint32 sums folded every 360
// words, a trailing odd byte as the high half of a word. The scalar version is the reference.
static uint32_t fletcher32_scalar(const uint8_t *data, size_t nbytes) {
    size_t words = nbytes / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (words) {
        size_t block = words > 360 ? 360 : words;
        words -= block;
        do {
            sum1 += (uint32_t)(((uint16_t)data[0]) << 8) | ((uint16_t)data[1]);
            data += 2;
            sum2 += sum1;
        } while (--block);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    return fletcher32_finish(sum1, sum2, data, nbytes);
}

#if defined(__x86_64__)
#include <immintrin.h>

// The same sums a block at a time. Within a block of n words every step is a uint32 addition, so
//   sum1' = sum1 + Σ w_i,   sum2' = sum2 + n·sum1 + Σ (n − i)·w_i   (mod 2^32)
// equals the scalar loop exactly, wraparound included; the folds between blocks are the scalar ones.
__attribute__((target("avx2")))
static uint32_t fletcher32_avx2(const uint8_t *data, size_t nbytes) {
    const __m256i swap = _mm256_setr_epi8(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14,
                                          1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    const __m256i lane_offsets = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    size_t words = nbytes / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (words) {
        uint32_t block = words > 360 ? 360 : (uint32_t)words;
        words -= block;
        __m256i s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256();
        uint32_t i = 0;
        for (; i + 16 <= block; i += 16) {
            __m256i raw = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(data + 2 * i)), swap);
            __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(raw));
            __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(raw, 1));
            __m256i weight_lo = _mm256_sub_epi32(_mm256_set1_epi32((int)(block - i)), lane_offsets);
            __m256i weight_hi = _mm256_sub_epi32(weight_lo, _mm256_set1_epi32(8));
            s1 = _mm256_add_epi32(s1, _mm256_add_epi32(lo, hi));
            s2 = _mm256_add_epi32(s2, _mm256_add_epi32(_mm256_mullo_epi32(lo, weight_lo), _mm256_mullo_epi32(hi, weight_hi)));
        }
        uint32_t lanes1[8], lanes2[8];
        _mm256_storeu_si256((__m256i *)lanes1, s1);
        _mm256_storeu_si256((__m256i *)lanes2, s2);
        uint32_t total1 = 0, total2 = 0;
        for (int lane = 0; lane < 8; lane++) {
            total1 += lanes1[lane];
            total2 += lanes2[lane];
        }
        for (; i < block; i++) {
            uint32_t w = (uint32_t)(((uint16_t)data[2 * i]) << 8) | data[2 * i + 1];
            total1 += w;
            total2 += (block - i) * w;
        }
        sum2 += block * sum1 + total2;
        sum1 += total1;
        data += 2 * (size_t)block;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    return fletcher32_finish(sum1, sum2, data, nbytes);
}
#endif

uint32_t stoke_fletcher32(const uint8_t *data, size_t nbytes) {
#if defined(__x86_64__)
    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX2)) return fletcher32_avx2(data, nbytes);
#endif
    return fletcher32_scalar(data, nbytes);
}

uint32_t stoke_fletcher32_reference(const uint8_t *data, size_t nbytes) { return fletcher32_scalar(data, nbytes); }
