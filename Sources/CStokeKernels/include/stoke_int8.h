#ifndef STOKE_INT8_H
#define STOKE_INT8_H
#include <stddef.h>
#include <stdint.h>

// INT8 matrix products for quantized inference: u8 activations × s8 weights → s32, exact on every path.
// Weights are packed once for one entry of the kernel table (kernel_table.h), which carries the layout
// its instructions want, together with their column sums, which turn an activation zero point into
// one subtraction per output:
//   C[m][n] = Σ_k (A[m][k] − za) · B[k][n] = Σ_k A[m][k] · B[k][n] − za · colsum[n].
// Entries, best first: avx512-vnni and avx-vnni (vpdpbusd: exact u8×s8 dot products of 4),
// avx512-u8s8 and avx2-u8s8 (vpmaddubsw + vpmaddwd: exact only when each pair of consecutive weights
// along K has |w0| + |w1| <= 128, e.g. 7-bit weights in [-64, 64]; packing checks it), avx2-s16 (u8 and
// s8 widened to s16, vpmaddwd: exact for any weights), portable C. Every entry gives the same bytes.

/// Bytes `stoke_int8_pack_b` writes for a K×N weight matrix for kernel set `level` (the largest
/// layout any entry that set may pick uses).
size_t stoke_int8_packed_bytes(size_t k, size_t n, int level);

/// Packs B (K×N s8, row stride `ldb` elements) for the best table entry kernel set `level` allows
/// on this thread (`stoke_cpu_level` value; features the CPU lacks stay off) and these weights allow,
/// into `packed` (`stoke_int8_packed_bytes` bytes, 64-byte aligned), with its column sums.
void stoke_int8_pack_b(const int8_t *_Nonnull b, size_t ldb, size_t k, size_t n, int level, void *_Nonnull packed);

/// The smallest kernel set holding the features of the entry a matrix was packed for.
int stoke_int8_packed_level(const void *_Nonnull packed);

/// The name of the entry a matrix was packed for ("avx512-vnni", "avx-vnni", "avx512-u8s8",
/// "avx2-u8s8", "avx2-s16", "portable").
const char *_Nonnull stoke_int8_packed_kernel(const void *_Nonnull packed);

/// The name of the entry `stoke_int8_pack_b` would pick for these weights and kernel set.
const char *_Nonnull stoke_int8_kernel_for(const int8_t *_Nonnull b, size_t ldb, size_t k, size_t n, int level);

/// 1 when every pair of consecutive rows (0-1, 2-3, ...) of B has |b[i][j]| + |b[i+1][j]| <= 128 in
/// every column, so vpmaddubsw's saturating s16 pair sums are exact for any u8 activations; else 0.
int stoke_int8_pair_bounded(const int8_t *_Nonnull b, size_t ldb, size_t k, size_t n);

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
