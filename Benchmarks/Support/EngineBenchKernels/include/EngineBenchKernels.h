#ifndef ENGINE_BENCH_KERNELS_H
#define ENGINE_BENCH_KERNELS_H

#include <stdint.h>

/// Restricts the peak loops to a kernel set (`--cpu LEVEL`): with `avx512` 0 the FMA loop uses
/// 256-bit AVX2/FMA3 even on an AVX-512 CPU; with `vnni` 0 the VNNI loop reports 0. Call before measuring.
void engine_bench_restrict(int avx512, int vnni);

/// Runs `iterations` rounds of 12 independent 256-bit u8 x s8 chains, each vpmaddubsw + vpmaddwd
/// (with ones) + vpaddd (no memory traffic): the AVX2 int8 limit without VNNI. Returns the int8 ops
/// done (32 multiply-adds = 64 ops per chain step), or 0 without AVX2.
uint64_t engine_bench_u8s8_avx2_loop(uint64_t iterations, int32_t *sink);

/// Which FMA loop `engine_bench_fma_loop` runs: 2 = AVX-512 (16 floats per FMA), 1 = AVX2/FMA3 (8), 0 = none.
int engine_bench_fma_width(void);

/// Runs `iterations` rounds of 16 independent FMA chains on the widest vectors the CPU has (no
/// memory traffic), so the time it takes is the core's FMA throughput. Returns the FLOPs done
/// (2 per lane per FMA), or 0 when the CPU has no FMA. `sink` receives a value derived from the
/// results so the compiler cannot drop the loop.
uint64_t engine_bench_fma_loop(uint64_t iterations, float *sink);

/// 1 when the CPU has AVX-512 VNNI (vpdpbusd), else 0.
int engine_bench_has_vnni(void);

/// Runs `iterations` rounds of 16 independent vpdpbusd chains (no memory traffic): the core's int8
/// dot-product throughput. Returns the int8 ops done (a multiply and an add per u8×s8 product), or 0
/// without VNNI. `sink` receives a value derived from the results.
uint64_t engine_bench_vnni_loop(uint64_t iterations, int32_t *sink);

#endif
