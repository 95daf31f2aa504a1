#ifndef STOKE_INT8_H
#define STOKE_INT8_H
#include <stddef.h>
#include <stdint.h>

// INT8 matrix products for quantized inference: u8 activations × s8 weights → s32, exact on every path.
// Weights are packed once per kernel level (the layout each level's instructions want) together with
// their column sums, which turn an activation zero point into one subtraction per output:
//   C[m][n] = Σ_k (A[m][k] − za) · B[k][n] = Σ_k A[m][k] · B[k][n] − za · colsum[n].
// Levels: 2 = AVX-512 VNNI (vpdpbusd: exact u8×s8 dot products of 4), 1 = AVX2 (u8 and s8 widened to
// s16, vpmaddwd: exact, no vpmaddubsw saturation), 0 = portable C.

/// Bytes `stoke_int8_pack_b` writes for a K×N weight matrix at `level`.
size_t stoke_int8_packed_bytes(size_t k, size_t n, int level);

/// Packs B (K×N s8, row stride `ldb` elements) for `level` into `packed` (`stoke_int8_packed_bytes`
/// bytes, 64-byte aligned), with its column sums. A level above the CPU's is clamped to it.
void stoke_int8_pack_b(const int8_t *_Nonnull b, size_t ldb, size_t k, size_t n, int level, void *_Nonnull packed);

/// The level a packed matrix was packed for.
int stoke_int8_packed_level(const void *_Nonnull packed);

/// C (M×N s32, row stride `ldc`) = A (M×K u8, row stride `lda`) × packed B − `a_zero_point` · colsum.
void stoke_int8_gemm_s32(size_t m, size_t n, size_t k, const uint8_t *_Nonnull a, size_t lda,
                         const void *_Nonnull packed, int32_t a_zero_point, int32_t *_Nonnull c, size_t ldc);

/// The same product dequantized: C[m][n] = a_scale · b_scale[n] · (acc − za · colsum[n]) + bias[n]
/// (bias may be NULL), then max(0, ·) when `relu` is set. f32 out, row stride `ldc`.
void stoke_int8_gemm_f32(size_t m, size_t n, size_t k, const uint8_t *_Nonnull a, size_t lda,
                         const void *_Nonnull packed, int32_t a_zero_point, float a_scale,
                         const float *_Nonnull b_scale, const float *_Nullable bias, int relu,
                         float *_Nonnull c, size_t ldc);
/// The product requantized to u8 (static quantization): with v = acc − za · colsum[n] + bias[n]
/// (bias may be NULL), C[m][n] = clamp(round_half_even(v · multiplier[n]) + y_zero_point, lo, hi).
/// multiplier[n] = a_scale · b_scale[n] / y_scale; a fused ReLU is lo = y_zero_point. u8 out, row
/// stride `ldc` bytes. Bit-identical on every level (one f32 multiply, then rounding).
void stoke_int8_gemm_u8(size_t m, size_t n, size_t k, const uint8_t *_Nonnull a, size_t lda,
                        const void *_Nonnull packed, int32_t a_zero_point, const float *_Nonnull multiplier,
                        const int32_t *_Nullable bias, int32_t y_zero_point, int32_t lo, int32_t hi,
                        uint8_t *_Nonnull c, size_t ldc);

/// The scalar requantization of an M×N s32 matrix (already zero-point compensated), for tests.
void stoke_requantize_reference(size_t m, size_t n, const int32_t *_Nonnull acc, const float *_Nonnull multiplier,
                                const int32_t *_Nullable bias, int32_t y_zero_point, int32_t lo, int32_t hi,
                                uint8_t *_Nonnull c);

/// Smallest and largest of `n` floats (0 and 0 when `n` is 0).
void stoke_minmax_f32(const float *_Nonnull x, size_t n, float *_Nonnull min_out, float *_Nonnull max_out);

/// q[i] = clamp(round(x[i] / scale) + zero_point, 0, 255), rounding half to even.
void stoke_quantize_u8(const float *_Nonnull x, size_t n, float scale, int32_t zero_point, uint8_t *_Nonnull q);
#endif
