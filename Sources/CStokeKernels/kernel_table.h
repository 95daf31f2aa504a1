#ifndef STOKE_KERNEL_TABLE_H
#define STOKE_KERNEL_TABLE_H
// The INT8 kernel table (MLAS-style): each entry carries its weight packing AND the kernel that
// reads it, so a packed matrix always runs on the code it was packed for. Entries live in per-ISA
// sources (int8_gemm.c: portable, avx2-s16, avx512-vnni; int8_u8s8.c: avx2-u8s8, avx-vnni,
// avx512-u8s8). Every entry is exact (s32 accumulation without saturation) and shares one
// epilogue arithmetic, so every entry gives the same bytes.
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "CStokeKernels.h"

// Products in the epilogues stay separate multiplies and adds (no FMA contraction), as on every path.
#pragma clang fp contract(off)

#define ROUND_UP(x, m) (((x) + (m) - 1) / (m) * (m))

// The epilogue every path shares: one output row segment from s32 accumulators. `requantize` set:
// u8 out (out_bytes 1); else `dequantize` set: f32 out; else s32 out.
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
    int32_t value = (int32_t)((uint32_t)acc - (uint32_t)e->zero_point * (uint32_t)e->sums[column]);
    if (e->requantize) {
        *(uint8_t *)out = requantize_scalar(e, column, value);
        return;
    }
    if (!e->dequantize) {
        *(int32_t *)out = value;
        return;
    }
    float scale = e->a_scale * e->b_scale[column];
    float f = scale * (float)value;
    if (e->bias) f = f + e->bias[column];
    if (e->relu && f < 0) f = 0;  // NaN stays NaN
    *(float *)out = f;
}

/// One INT8 kernel: the features it needs, whether it needs the u8s8 pair bound (each pair of
/// consecutive weights along k has |w0| + |w1| <= 128, so vpmaddubsw cannot saturate), its packed
/// size, its packing, and the product reading that packing.
typedef struct {
    const char *name;
    int level;  ///< the smallest kernel set holding `features` (what stoke_int8_packed_level reports)
    uint32_t features;
    int needs_pair_bound;
    size_t (*packed_bytes)(size_t k, size_t n);
    void (*pack)(const int8_t *b, size_t ldb, size_t k, size_t n, uint8_t *dst);
    void (*gemm)(size_t m, size_t n, size_t k, const uint8_t *a, size_t lda, const uint8_t *packed, const epilogue *e,
                 void *c, size_t ldc);
} stoke_int8_kernel;

/// Weights as [n/L][k/4][L columns][4 k] bytes (L = 8 for 256-bit kernels, 16 for 512-bit ones).
size_t stoke_int8_k4_bytes(size_t k, size_t n, size_t lanes);
void stoke_int8_pack_k4(const int8_t *b, size_t ldb, size_t k, size_t n, size_t lanes, uint8_t *dst);

#if defined(__x86_64__)
extern const stoke_int8_kernel stoke_int8_avx2_s16, stoke_int8_avx2_u8s8, stoke_int8_avx_vnni, stoke_int8_avx512_u8s8,
    stoke_int8_avx512_vnni;
#endif
#endif
