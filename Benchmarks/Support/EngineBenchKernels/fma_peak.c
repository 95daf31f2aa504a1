// The FP32 FMA peak, measured rather than taken from a data sheet: a register-only loop of
// independent FMA chains. 16 chains cover 4-cycle FMA latency on 2 ports with room to spare, so the
// loop is bound by FMA throughput (and by whatever clock the core runs wide vectors at, which is
// the same clock the engine's AVX-512 SGEMM gets).
#include "EngineBenchKernels.h"

#include <immintrin.h>

static int allow_avx512 = 1;
int engine_bench_vnni_allowed = 1;

void engine_bench_restrict(int avx512, int vnni) {
    allow_avx512 = avx512;
    engine_bench_vnni_allowed = vnni;
}

int engine_bench_fma_width(void) {
    __builtin_cpu_init();
    if (allow_avx512 && __builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

__attribute__((target("avx512f"))) static uint64_t fma_loop_avx512(uint64_t iterations, float *sink) {
    // x ← x·m + c with m slightly below 1 keeps values bounded and normal (no denormal slowdowns).
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
#define DECLARE(i) __m512 a##i = _mm512_set1_ps(1.0f + (float)(i) * 1e-3f);
    CHAINS(DECLARE)
    for (uint64_t r = 0; r < iterations; r++) {
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, m, c);
        CHAINS(STEP)
        // An empty asm with the accumulators as operands stops the compiler from collapsing the
        // chains algebraically or hoisting them out of the loop.
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7));
        __asm__ volatile("" : "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11), "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    *sink = _mm512_reduce_add_ps(s);
    return iterations * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) static uint64_t fma_loop_avx2(uint64_t iterations, float *sink) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
#define DECLARE8(i) __m256 a##i = _mm256_set1_ps(1.0f + (float)(i) * 1e-3f);
    CHAINS(DECLARE8)
    for (uint64_t r = 0; r < iterations; r++) {
#define STEP8(i) a##i = _mm256_fmadd_ps(a##i, m, c);
        CHAINS(STEP8)
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7));
        __asm__ volatile("" : "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11), "+x"(a12), "+x"(a13), "+x"(a14), "+x"(a15));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)),
                                       _mm256_add_ps(_mm256_add_ps(a12, a13), _mm256_add_ps(a14, a15))));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    *sink = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
    return iterations * 16 * 8 * 2;
}

uint64_t engine_bench_fma_loop(uint64_t iterations, float *sink) {
    switch (engine_bench_fma_width()) {
    case 2: return fma_loop_avx512(iterations, sink);
    case 1: return fma_loop_avx2(iterations, sink);
    default: *sink = 0; return 0;
    }
}
