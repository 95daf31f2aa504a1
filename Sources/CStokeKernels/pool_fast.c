// 2x2, stride-2 max pooling, the pooling of nearly every small CNN, vectorized: the generic
// window loop in engine_f32.c runs one output at a time and is memory-latency bound.
//
// Results are bit-identical to the generic kernel, NaN and signed-zero cases included: both take
// max(a, b) as `a > b ? a : b`, which is exactly what vmaxps computes (the second operand when the
// comparison fails), and both reduce each window as max(max(r0[0], r0[1]), max(r1[0], r1[1])).
#include "CStokeKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static void maxpool2x2_avx512(const float *x, int64_t planes, int64_t in_h, int64_t in_w, float *y) {
    const int64_t out_h = in_h / 2, out_w = in_w / 2;
    // Lane i of the even (odd) selection is element 2i (2i + 1) of the 32 loaded from lo:hi.
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * in_h * in_w;
        float *yp = y + p * out_h * out_w;
        for (int64_t oh = 0; oh < out_h; oh++) {
            const float *r0 = xp + 2 * oh * in_w, *r1 = r0 + in_w;
            float *out = yp + oh * out_w;
            for (int64_t ow = 0; ow < out_w; ow += 16) {
                int64_t n = out_w - ow < 16 ? out_w - ow : 16;
                int64_t inputs = 2 * n;
                __mmask16 m_lo = inputs >= 16 ? 0xFFFF : (__mmask16)((1u << inputs) - 1);
                __mmask16 m_hi = inputs >= 32 ? 0xFFFF : inputs <= 16 ? 0 : (__mmask16)((1u << (inputs - 16)) - 1);
                __mmask16 m_out = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
                const float *a = r0 + 2 * ow, *b = r1 + 2 * ow;
                __m512 a_lo = _mm512_maskz_loadu_ps(m_lo, a), a_hi = _mm512_maskz_loadu_ps(m_hi, a + 16);
                __m512 b_lo = _mm512_maskz_loadu_ps(m_lo, b), b_hi = _mm512_maskz_loadu_ps(m_hi, b + 16);
                __m512 top = _mm512_max_ps(_mm512_permutex2var_ps(a_lo, even, a_hi), _mm512_permutex2var_ps(a_lo, odd, a_hi));
                __m512 bottom = _mm512_max_ps(_mm512_permutex2var_ps(b_lo, even, b_hi), _mm512_permutex2var_ps(b_lo, odd, b_hi));
                _mm512_mask_storeu_ps(out + ow, m_out, _mm512_max_ps(top, bottom));
            }
        }
    }
}
#endif

static void maxpool2x2_portable(const float *x, int64_t planes, int64_t in_h, int64_t in_w, float *y) {
    const int64_t out_h = in_h / 2, out_w = in_w / 2;
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * in_h * in_w;
        float *yp = y + p * out_h * out_w;
        for (int64_t oh = 0; oh < out_h; oh++) {
            const float *r0 = xp + 2 * oh * in_w, *r1 = r0 + in_w;
            for (int64_t ow = 0; ow < out_w; ow++) {
                float a = r0[2 * ow] > r0[2 * ow + 1] ? r0[2 * ow] : r0[2 * ow + 1];
                float b = r1[2 * ow] > r1[2 * ow + 1] ? r1[2 * ow] : r1[2 * ow + 1];
                yp[oh * out_w + ow] = a > b ? a : b;
            }
        }
    }
}

void stoke_maxpool2x2_f32(const float *x, int64_t planes, int64_t in_h, int64_t in_w, float *y) {
#if defined(__x86_64__)
    if (stoke_cpu_has(STOKE_CPU_FEATURE_AVX512F)) {
        maxpool2x2_avx512(x, planes, in_h, in_w, y);
        return;
    }
#endif
    maxpool2x2_portable(x, planes, in_h, in_w, y);
}
