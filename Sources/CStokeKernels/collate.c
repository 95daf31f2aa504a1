#include "CStokeKernels.h"
#include <string.h>

static void normalize_run_portable(const uint8_t *src, float *dst, size_t n, float scale, float bias) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i] * scale + bias;
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static void normalize_run_avx2(const uint8_t *src, float *dst, size_t n, float scale, float bias) {
    __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(bias);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i bytes = _mm_loadl_epi64((const __m128i *)(src + i));
        __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
        _mm256_storeu_ps(dst + i, _mm256_fmadd_ps(x, vs, vb));
    }
    normalize_run_portable(src + i, dst + i, n - i, scale, bias);
}

__attribute__((target("avx512f")))
static void normalize_run_avx512(const uint8_t *src, float *dst, size_t n, float scale, float bias) {
    __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(bias);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(src + i));
        __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
        _mm512_storeu_ps(dst + i, _mm512_fmadd_ps(x, vs, vb));
    }
    normalize_run_portable(src + i, dst + i, n - i, scale, bias);
}
#endif

typedef void (*normalize_run_fn)(const uint8_t *, float *, size_t, float, float);

static normalize_run_fn pick_run(void) {
#if defined(__x86_64__)
    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F)) return normalize_run_avx512;
    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX2 | STOKE_CPU_FEATURE_FMA)) return normalize_run_avx2;
#endif
    return normalize_run_portable;
}

void stoke_normalize_u8_f32(const uint8_t *src, float *dst, size_t count, size_t inner, size_t channels,
                            const float *scale, const float *bias) {
    if (channels == 0 || inner == 0) return;
    normalize_run_fn run = pick_run();
    if (inner == 1 && channels > 1) {
        // Interleaved channels (HWC): element-wise, the channel cycles every element.
        for (size_t i = 0; i < count; i++) {
            size_t c = i % channels;
            dst[i] = (float)src[i] * scale[c] + bias[c];
        }
        return;
    }
    for (size_t start = 0, run_index = 0; start < count; start += inner, run_index++) {
        size_t n = count - start < inner ? count - start : inner;
        size_t c = run_index % channels;
        run(src + start, dst + start, n, scale[c], bias[c]);
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void copy_stream_avx512(uint8_t *dst, const uint8_t *src, size_t n) {
    size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
    if (head > n) head = n;
    memcpy(dst, src, head);
    size_t i = head;
    for (; i + 64 <= n; i += 64) _mm512_stream_si512((void *)(dst + i), _mm512_loadu_si512(src + i));
    memcpy(dst + i, src + i, n - i);
    _mm_sfence();
}
#endif

void stoke_copy_rows_streaming(void *dst, const void *src, size_t nbytes) {
#if defined(__x86_64__)

    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F) && nbytes >= 4096) {
        copy_stream_avx512((uint8_t *)dst, (const uint8_t *)src, nbytes);
        return;
    }
#endif
    memcpy(dst, src, nbytes);
}
