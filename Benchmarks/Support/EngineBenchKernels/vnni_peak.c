// The INT8 dot-product peak, measured like the FMA peak (fma_peak.c): a register-only loop of 16
// independent vpdpbusd chains (u8 × s8 products summed in groups of 4 into s32 lanes). 16 chains cover
// its 5-cycle latency on the ports that issue it, so the loop is bound by vpdpbusd throughput at the
// clock the core runs 512-bit integer work at, the clock the int8 GEMM gets.
#include "EngineBenchKernels.h"

#include <immintrin.h>

extern int engine_bench_vnni_allowed;

int engine_bench_has_vnni(void) {
    __builtin_cpu_init();
    return engine_bench_vnni_allowed && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
}

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static uint64_t vnni_loop(uint64_t iterations, int32_t *sink) {
    // Small operands (1 × 1) keep the s32 sums far from overflow for any iteration count that fits a
    // measurement (they wrap harmlessly if they ever did: the value is only a sink).
    const __m512i u = _mm512_set1_epi8(1), s = _mm512_set1_epi8(1);
#define DECLARE(i) __m512i a##i = _mm512_set1_epi32(i);
    CHAINS(DECLARE)
    for (uint64_t r = 0; r < iterations; r++) {
#define STEP(i) a##i = _mm512_dpbusd_epi32(a##i, u, s);
        CHAINS(STEP)
        // The empty asm keeps the compiler from folding the chains into a multiply.
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7));
        __asm__ volatile("" : "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11), "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15));
    }
    __m512i t = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                                 _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
    t = _mm512_add_epi32(t, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)),
                                             _mm512_add_epi32(_mm512_add_epi32(a12, a13), _mm512_add_epi32(a14, a15))));
    *sink = _mm512_reduce_add_epi32(t);
    // Each vpdpbusd: 16 lanes × 4 multiply-adds = 128 int8 ops (a multiply and an add each, as FLOPs count).
    return iterations * 16 * 16 * 4 * 2;
}

uint64_t engine_bench_vnni_loop(uint64_t iterations, int32_t *sink) {
    if (!engine_bench_has_vnni()) {
        *sink = 0;
        return 0;
    }
    return vnni_loop(iterations, sink);
}

#define CHAINS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2"))) static uint64_t u8s8_loop(uint64_t iterations, int32_t *sink) {
    const __m256i u = _mm256_set1_epi8(1), s = _mm256_set1_epi8(1), ones = _mm256_set1_epi16(1);
#define DECLARE12(i) __m256i b##i = _mm256_set1_epi32(i);
    CHAINS12(DECLARE12)
    for (uint64_t r = 0; r < iterations; r++) {
#define STEP12(i) b##i = _mm256_add_epi32(b##i, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
        CHAINS12(STEP12)
        __asm__ volatile("" : "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3), "+x"(b4), "+x"(b5));
        __asm__ volatile("" : "+x"(b6), "+x"(b7), "+x"(b8), "+x"(b9), "+x"(b10), "+x"(b11));
    }
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(b0, b1), _mm256_add_epi32(b2, b3)),
                                 _mm256_add_epi32(_mm256_add_epi32(b4, b5), _mm256_add_epi32(b6, b7)));
    t = _mm256_add_epi32(t, _mm256_add_epi32(_mm256_add_epi32(b8, b9), _mm256_add_epi32(b10, b11)));
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, t);
    *sink = lanes[0] + lanes[7];
    // Each chain step: 8 lanes x 4 multiply-adds = 32 products = 64 int8 ops.
    return iterations * 12 * 64;
}

uint64_t engine_bench_u8s8_avx2_loop(uint64_t iterations, int32_t *sink) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) {
        *sink = 0;
        return 0;
    }
    return u8s8_loop(iterations, sink);
}
