#ifndef CSTOKEKERNELS_H
#define CSTOKEKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// CPU features Stoke's kernels dispatch on, probed once with cpuid (with the xgetbv check that the
/// OS saves the AVX / AVX-512 registers). Kernels ask `stoke_cpu_has` for the features they use.
enum {
    STOKE_CPU_FEATURE_AVX2 = 1u << 0,
    STOKE_CPU_FEATURE_FMA = 1u << 1,
    STOKE_CPU_FEATURE_F16C = 1u << 2,
    STOKE_CPU_FEATURE_AVX512F = 1u << 3,
    STOKE_CPU_FEATURE_AVX512BW = 1u << 4,
    STOKE_CPU_FEATURE_AVX512VL = 1u << 5,
    STOKE_CPU_FEATURE_AVX512VNNI = 1u << 6,
    STOKE_CPU_FEATURE_AVXVNNI = 1u << 7,   ///< AVX-VNNI (VEX-encoded vpdpbusd on 256-bit registers)
};

/// Kernel sets: the feature sets `STOKE_CPU` (and `stoke_cpu_force`) can restrict a process (a thread)
/// to. Not an order: AVX-VNNI without AVX-512 and AVX-512 without VNNI both exist.
typedef enum {
    STOKE_CPU_PORTABLE = 0,      ///< "portable": plain C
    STOKE_CPU_AVX2 = 1,          ///< "avx2": AVX2, FMA, F16C
    STOKE_CPU_AVX_VNNI = 2,      ///< "avx-vnni": avx2 + AVX-VNNI
    STOKE_CPU_AVX512 = 3,        ///< "avx512": avx2 + AVX-512F/BW/VL
    STOKE_CPU_AVX512_VNNI = 4,   ///< "avx512-vnni": every feature Stoke uses
} stoke_cpu_level;

/// Number of kernel sets (`stoke_cpu_level` values are 0 ..< this).
#define STOKE_CPU_LEVEL_COUNT 5

/// The features this CPU and OS support (probed once; thread-safe), before any restriction.
uint32_t stoke_cpu_probed_features(void);

/// The features kernels called from this thread may use: the probed ones, restricted by `STOKE_CPU`
/// (read from the environment on first use) and by `stoke_cpu_force` on this thread.
uint32_t stoke_cpu_features(void);

/// 1 when every feature in `features` (STOKE_CPU_FEATURE_* bits) may be used now, else 0.
int stoke_cpu_has(uint32_t features);

/// The features a kernel set allows (all bits for avx512-vnni), or 0 for an unknown set.
uint32_t stoke_cpu_level_features(int level);

/// The name of a kernel set ("portable", "avx2", "avx-vnni", "avx512", "avx512-vnni"), or "?".
const char *_Nonnull stoke_cpu_level_name(int level);

/// The kernel set a name means, or -1 for a name that is none of `stoke_cpu_level_name`'s.
int stoke_cpu_parse_level(const char *_Nonnull name);

/// Restricts the whole process to a kernel set (what `STOKE_CPU` does; the CLI calls it at start-up
/// after validating the name). -1 lifts the restriction.
void stoke_cpu_set_process_level(int level);

/// 1 when this CPU has every feature of kernel set `level` and the process restriction allows it.
int stoke_cpu_level_supported(int level);

/// The best kernel set this CPU supports within the process restriction.
stoke_cpu_level stoke_cpu_probe(void);

/// Restricts the kernels called from this thread to kernel set `level` (tests check every path);
/// features the CPU lacks stay off. Pass -1 to return to the process's set. Other threads are not affected.
void stoke_cpu_force(int level);

/// The best kernel set whose features are all usable now on this thread.
stoke_cpu_level stoke_cpu_active(void);

/// HDF5's shuffle filter (id 2): byte `b` of element `i` goes to `dst[b * count + i]`, where
/// `count = nbytes / element_size`; the `nbytes % element_size` trailing bytes are copied as they are.
void stoke_shuffle(const uint8_t *_Nonnull src, uint8_t *_Nonnull dst, size_t nbytes, size_t element_size);

/// The inverse of `stoke_shuffle`.
void stoke_unshuffle(const uint8_t *_Nonnull src, uint8_t *_Nonnull dst, size_t nbytes, size_t element_size);

/// HDF5's Fletcher-32 checksum (H5_checksum_fletcher32), byte-compatible with the library's filter (id 3).
uint32_t stoke_fletcher32(const uint8_t *_Nonnull data, size_t nbytes);

/// The scalar Fletcher-32 every vector path must match bit for bit (for tests).
uint32_t stoke_fletcher32_reference(const uint8_t *_Nonnull data, size_t nbytes);
/// Asks the kernel to start writing a file's dirty pages back, without waiting (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`; a no-op elsewhere). Returns 0 or -1 with errno.
int stoke_start_writeback(int fd);

#include "stoke_collate.h"
#include "stoke_int8.h"

// MARK: - FP32 engine kernels (engine_f32.c). Shapes and strides are in elements; all buffers are
// dense row-major unless a stride array says otherwise. Callers (StokeEngine) validate shapes.

/// Unary elementwise operators for `stoke_unary_f32`.
typedef enum {
    STOKE_UNARY_IDENTITY = 0,
    STOKE_UNARY_RELU = 1,
    STOKE_UNARY_LEAKY_RELU = 2,   ///< alpha = negative slope
    STOKE_UNARY_SIGMOID = 3,
    STOKE_UNARY_TANH = 4,
    STOKE_UNARY_ERF = 5,
    STOKE_UNARY_GELU = 6,         ///< exact: x/2 * (1 + erf(x/sqrt 2))
    STOKE_UNARY_GELU_TANH = 7,    ///< tanh approximation
    STOKE_UNARY_CLIP = 8,         ///< clamp to [alpha, beta]
    STOKE_UNARY_EXP = 9,
    STOKE_UNARY_NEG = 10,
    STOKE_UNARY_ABS = 11,
    STOKE_UNARY_SQRT = 12,
    STOKE_UNARY_LOG = 13,
    STOKE_UNARY_RECIPROCAL = 14,
    STOKE_UNARY_ELU = 15,             ///< alpha
    STOKE_UNARY_SELU = 16,            ///< alpha, beta = gamma
    STOKE_UNARY_HARD_SIGMOID = 17,    ///< max(0, min(1, alpha * x + beta))
    STOKE_UNARY_HARD_SWISH = 18,
    STOKE_UNARY_SOFTPLUS = 19,
    STOKE_UNARY_SOFTSIGN = 20,
    STOKE_UNARY_THRESHOLDED_RELU = 21, ///< alpha = threshold
    STOKE_UNARY_FLOOR = 22,
    STOKE_UNARY_CEIL = 23,
} stoke_unary_op;

/// y[i] = op(x[i]) for i < n; x and y may be the same buffer.
void stoke_unary_f32(int op, const float *_Nonnull x, float *_Nonnull y, size_t n, float alpha, float beta);

/// Binary elementwise operators for `stoke_binary_*`.
typedef enum {
    STOKE_BINARY_ADD = 0, STOKE_BINARY_SUB = 1, STOKE_BINARY_MUL = 2, STOKE_BINARY_DIV = 3,
    STOKE_BINARY_MAX = 4, STOKE_BINARY_MIN = 5, STOKE_BINARY_POW = 6,  ///< POW is float32 only
} stoke_binary_op;

/// out = a op b over an `ndim`-axis output `shape` (ndim <= 8), reading a and b through element
/// strides where a stride of 0 broadcasts that axis. out is dense.
void stoke_binary_f32(int op, const float *_Nonnull a, const int64_t *_Nonnull a_strides,
                      const float *_Nonnull b, const int64_t *_Nonnull b_strides,
                      float *_Nonnull out, const int64_t *_Nonnull shape, int ndim);
/// The int64 version of `stoke_binary_f32`; division truncates toward zero and x/0 gives 0.
void stoke_binary_i64(int op, const int64_t *_Nonnull a, const int64_t *_Nonnull a_strides,
                      const int64_t *_Nonnull b, const int64_t *_Nonnull b_strides,
                      int64_t *_Nonnull out, const int64_t *_Nonnull shape, int ndim);

/// Copies an `ndim`-axis (ndim <= 8) region of `shape` elements of `element_size` bytes from
/// src (read through src_strides) to dst (written through dst_strides). Transpose, Slice, Expand,
/// Concat and Pad are all this copy with different strides.
void stoke_strided_copy(const void *_Nonnull src, const int64_t *_Nonnull src_strides,
                        void *_Nonnull dst, const int64_t *_Nonnull dst_strides,
                        const int64_t *_Nonnull shape, int ndim, size_t element_size);

/// Fills n elements of element_size bytes with the value at `value`.
void stoke_fill(void *_Nonnull dst, const void *_Nonnull value, size_t n, size_t element_size);

/// Gather along one axis: data is [outer, axis_extent, inner_bytes]; out is [outer, n_indices,
/// inner_bytes]. Negative indices count from the end. Returns 0, or -1 if an index is out of range
/// (out is then unspecified).
int stoke_gather(const void *_Nonnull data, size_t outer, int64_t axis_extent, size_t inner_bytes,
                 const int64_t *_Nonnull indices, size_t n_indices, void *_Nonnull out);

/// Softmax (or log-softmax when `log` != 0) of each of `rows` rows of `cols` contiguous elements.
void stoke_softmax_f32(const float *_Nonnull x, float *_Nonnull y, size_t rows, size_t cols, int log);

/// y[n, c, s] = x[n, c, s] * scale[c] + shift[c] (BatchNormalization in inference form).
void stoke_channel_affine_f32(const float *_Nonnull x, float *_Nonnull y, size_t n, size_t c, size_t spatial,
                              const float *_Nonnull scale, const float *_Nonnull shift);

/// Adds a bias and applies an activation to a [rows, cols] matrix in place. bias_kind: 0 none,
/// 1 per column (bias[cols]), 2 per row (bias[rows]), 3 scalar bias[0]. act is a stoke_unary_op.
void stoke_bias_activation_f32(float *_Nonnull y, size_t rows, size_t cols, const float *_Nullable bias,
                               int bias_kind, int act, float alpha, float beta);

/// Geometry of a 2-D window operation (convolution or pooling) on one [H, W] plane; 1-D
/// operations use H = 1, kernel_h = 1. Pads are in elements at each edge.
typedef struct {
    int64_t in_h, in_w, kernel_h, kernel_w, pad_top, pad_left, stride_h, stride_w, dilation_h, dilation_w, out_h, out_w;
    int64_t pad_bottom, pad_right;
} stoke_window2d;

/// im2col for one image: x is [channels, in_h, in_w]; col is [channels * kernel_h * kernel_w, out_h * out_w],
/// zero where the window reads padding.
void stoke_im2col_f32(const float *_Nonnull x, int64_t channels, const stoke_window2d *_Nonnull g, float *_Nonnull col);

/// im2col writing row r of the column matrix at col + r * ldcol (ldcol >= out_h * out_w), so
/// several images can sit side by side in one [channels * kernel_h * kernel_w, images * out_h * out_w] matrix.
void stoke_im2col_ld_f32(const float *_Nonnull x, int64_t channels, const stoke_window2d *_Nonnull g,
                         float *_Nonnull col, int64_t ldcol);

/// The adjoint of im2col (for ConvTranspose): adds col [channels * kernel_h * kernel_w, out_h * out_w]
/// into x [channels, in_h, in_w] at the positions im2col would have read; x must be initialized.
void stoke_col2im_add_f32(const float *_Nonnull col, int64_t channels, const stoke_window2d *_Nonnull g, float *_Nonnull x);

/// Depthwise convolution of one image: x [channels, in_h, in_w], w [channels, kernel_h, kernel_w],
/// bias [channels] or NULL, y [channels, out_h, out_w].
void stoke_depthwise_conv2d_f32(const float *_Nonnull x, int64_t channels, const float *_Nonnull w,
                                const float *_Nullable bias, const stoke_window2d *_Nonnull g, float *_Nonnull y);

/// Pooling of `planes` independent [in_h, in_w] planes into [out_h, out_w] planes. kind 0 = max,
/// 1 = average; for average, count_include_pad != 0 divides by the full window size (padding
/// counts as zeros) and otherwise by the number of in-bounds elements.
void stoke_pool2d_f32(int kind, const float *_Nonnull x, int64_t planes, const stoke_window2d *_Nonnull g,
                      int count_include_pad, float *_Nonnull y);

/// Sums x over the axes where reduce_mask[axis] != 0 (ndim <= 8) into y, whose shape is `shape`
/// with those axes set to 1; y is overwritten. Multiply by the scale afterwards for a mean.
void stoke_reduce_sum_f32(const float *_Nonnull x, const int64_t *_Nonnull shape, int ndim,
                          const int *_Nonnull reduce_mask, float *_Nonnull y);

/// Like `stoke_reduce_sum_f32` but keeps the maximum (kind 0) or minimum (kind 1); reducing an
/// empty axis gives -inf (max) or +inf (min), as ONNX specifies.
void stoke_reduce_extreme_f32(const float *_Nonnull x, const int64_t *_Nonnull shape, int ndim,
                              const int *_Nonnull reduce_mask, int kind, float *_Nonnull y);

/// Comparisons for `stoke_compare_*`: out[i] = 1 when a op b holds, else 0.
typedef enum {
    STOKE_COMPARE_EQUAL = 0, STOKE_COMPARE_LESS = 1, STOKE_COMPARE_LESS_EQUAL = 2,
    STOKE_COMPARE_GREATER = 3, STOKE_COMPARE_GREATER_EQUAL = 4,
    STOKE_COMPARE_AND = 5, STOKE_COMPARE_OR = 6, STOKE_COMPARE_XOR = 7,  ///< logical, on nonzero = true
} stoke_compare_op;

/// Broadcasting comparison of float32 operands into 0/1 int64 (same stride rules as `stoke_binary_f32`).
void stoke_compare_f32(int op, const float *_Nonnull a, const int64_t *_Nonnull a_strides,
                       const float *_Nonnull b, const int64_t *_Nonnull b_strides,
                       int64_t *_Nonnull out, const int64_t *_Nonnull shape, int ndim);
/// Broadcasting comparison of int64 operands into 0/1 int64.
void stoke_compare_i64(int op, const int64_t *_Nonnull a, const int64_t *_Nonnull a_strides,
                       const int64_t *_Nonnull b, const int64_t *_Nonnull b_strides,
                       int64_t *_Nonnull out, const int64_t *_Nonnull shape, int ndim);

/// out = cond ? x : y elementwise with broadcasting (element_size 4 or 8 bytes for x, y, out).
void stoke_where(const int64_t *_Nonnull cond, const int64_t *_Nonnull cond_strides,
                 const void *_Nonnull x, const int64_t *_Nonnull x_strides,
                 const void *_Nonnull y, const int64_t *_Nonnull y_strides,
                 void *_Nonnull out, const int64_t *_Nonnull shape, int ndim, size_t element_size);

/// LayerNormalization over the last `cols` elements of each of `rows` rows:
/// y = (x - mean) / sqrt(var + epsilon) * scale[j] + (bias ? bias[j] : 0).
void stoke_layer_norm_f32(const float *_Nonnull x, float *_Nonnull y, size_t rows, size_t cols,
                          const float *_Nonnull scale, const float *_Nullable bias, float epsilon);

/// Pad: out coordinate o maps to input coordinate o - pads_begin[axis]; outside the input the element
/// is `value` (mode 0, constant), the nearest edge (mode 1, edge), the mirror without repeating the
/// edge (mode 2, reflect) or the wrapped coordinate (mode 3, wrap). ndim <= 8.
void stoke_pad(const void *_Nonnull x, const int64_t *_Nonnull in_shape, const int64_t *_Nonnull pads_begin,
               void *_Nonnull y, const int64_t *_Nonnull out_shape, int ndim, size_t element_size,
               int mode, const void *_Nonnull value);

/// C[m, n] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* != 0
/// (A is [m, k] or [k, m], B is [k, n] or [n, k]); a packed AVX-512 kernel independent of
/// OpenBLAS's CPU detection. Safe to call from several threads at once (per-thread packing buffers).
/// Returns 0, -1 when the CPU lacks AVX-512F (nothing written), or -2 when packing memory is unavailable.
int stoke_sgemm_avx512(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                       const float *_Nonnull a, size_t lda, const float *_Nonnull b, size_t ldb,
                       float beta, float *_Nonnull c, size_t ldc);

/// `stoke_sgemm_avx512` with an epilogue applied as each output tile is stored: adds
/// row_bias[i] (one per output row) and/or col_bias[j] (one per output column) when not NULL,
/// then clamps at zero when relu != 0. Saves a separate pass over C for bias and ReLU.
int stoke_sgemm_avx512_fused(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                             const float *_Nonnull a, size_t lda, const float *_Nonnull b, size_t ldb,
                             float beta, float *_Nonnull c, size_t ldc,
                             const float *_Nullable row_bias, const float *_Nullable col_bias, int relu);

/// `stoke_sgemm_avx512_fused` for AVX2/FMA CPUs (sgemm_avx2.c: a packed 6x16 tile). Returns 0, -1
/// when the kernel set in use lacks AVX2 or FMA (nothing written), or -2 when packing memory is unavailable.
int stoke_sgemm_avx2_fused(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                           const float *_Nonnull a, size_t lda, const float *_Nonnull b, size_t ldb,
                           float beta, float *_Nonnull c, size_t ldc,
                           const float *_Nullable row_bias, const float *_Nullable col_bias, int relu);

/// Max pooling with a 2x2 window and stride 2, no padding, over `planes` independent [in_h, in_w]
/// planes into [in_h / 2, in_w / 2] planes (an odd last row or column is dropped, as in floor mode).
/// Bit-identical to `stoke_pool2d_f32(0, ...)` for that geometry; AVX-512 when available.
void stoke_maxpool2x2_f32(const float *_Nonnull x, int64_t planes, int64_t in_h, int64_t in_w, float *_Nonnull y);

/// Floats `stoke_sgemm_pack_a` writes for an [m, k] A (m rounded up to 8 rows).
size_t stoke_sgemm_packed_a_count(size_t m, size_t k);
/// Floats `stoke_sgemm_pack_b` writes for a [k, n] B (n rounded up to 32 columns).
size_t stoke_sgemm_packed_b_count(size_t k, size_t n);
/// Packs a row-major [m, k] A (constant filters) into the panels `stoke_sgemm_avx512_prepacked` reads.
void stoke_sgemm_pack_a(size_t m, size_t k, const float *_Nonnull a, size_t lda, float *_Nonnull dst);
/// Packs op(B), [k, n] (B stored [n, k] when trans_b != 0: PyTorch Linear weights), into panels.
void stoke_sgemm_pack_b(size_t k, size_t n, const float *_Nonnull b, size_t ldb, int trans_b, float *_Nonnull dst);

/// C[m, n] = A B (+ row_bias[i]) (+ col_bias[j]), then max(0, .) when relu != 0, with exactly one
/// of each pair given: A row-major (a, lda) or packed (packed_a, for a packed_a_rows-row matrix of
/// which this call computes rows from packed_a_first_row, a multiple of 8); B row-major (b, ldb)
/// or packed (packed_b, for a packed_b_columns-column matrix, from packed_b_first_column, a multiple
/// of 32). Thread-safe. Returns 0, -1 without AVX-512F (nothing written), -2 when memory for
/// packing is unavailable, -3 for an invalid operand combination.
int stoke_sgemm_avx512_prepacked(size_t m, size_t n, size_t k,
                                 const float *_Nullable a, size_t lda, const float *_Nullable packed_a,
                                 size_t packed_a_rows, size_t packed_a_first_row,
                                 const float *_Nullable b, size_t ldb, const float *_Nullable packed_b,
                                 size_t packed_b_columns, size_t packed_b_first_column,
                                 float *_Nonnull c, size_t ldc,
                                 const float *_Nullable row_bias, const float *_Nullable col_bias, int relu);
#include "stoke_conv.h"
#include "stoke_qconv.h"
#endif
