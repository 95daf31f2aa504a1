#ifndef STOKE_CONV_H
#define STOKE_CONV_H
#include <stddef.h>
#include <stdint.h>
// Included at the end of CStokeKernels.h, after stoke_window2d.

/// Whether `stoke_conv2d_direct_f32` handles this geometry: stride 1 (any kernel, padding, dilation).
int stoke_conv2d_direct_supported(const stoke_window2d *_Nonnull g);

/// 1 when `stoke_conv2d_direct_f32` has a vector path for the kernel set in use on this thread, else 0
/// (then it runs a portable loop, correct but slower than im2col + GEMM).
int stoke_conv2d_direct_vectorized(void);

/// Floats `stoke_conv2d_direct_pack` writes for [filters, channels, kernel_h, kernel_w] weights.
size_t stoke_conv2d_direct_packed_count(int64_t filters, int64_t channels, int64_t kernel_h, int64_t kernel_w);

/// Packs [filters, channels, kernel_h, kernel_w] weights into the blocks the direct kernel reads:
/// [ceil(filters / 8)][channels][kernel_h][kernel_w][8], zero for the missing filters of the last block.
void stoke_conv2d_direct_pack(const float *_Nonnull w, int64_t filters, int64_t channels, int64_t kernel_h, int64_t kernel_w,
                              float *_Nonnull dst);

/// Floats of workspace one `stoke_conv2d_direct_f32` call needs (a zero-bordered copy of one image;
/// one workspace per concurrent caller).
size_t stoke_conv2d_direct_workspace_count(int64_t channels, const stoke_window2d *_Nonnull g);

/// Direct convolution of `images` NCHW images x [images, channels, in_h, in_w] with packed weights
/// (`stoke_conv2d_direct_pack`), + bias[f] (or NULL), then max(0, .) when relu != 0, into
/// y [images, filters, out_h, out_w], or with pool2x2 != 0 into its 2x2, stride-2 max pool
/// [images, filters, out_h / 2, out_w / 2]. AVX-512 when available, else a portable loop.
/// Returns 0, or -3 for a geometry `stoke_conv2d_direct_supported` rejects (nothing written).
int stoke_conv2d_direct_f32(const float *_Nonnull x, int64_t images, int64_t channels, int64_t filters,
                            const stoke_window2d *_Nonnull g, const float *_Nonnull packed, const float *_Nullable bias,
                            int relu, int pool2x2, float *_Nonnull workspace, float *_Nonnull y);
#endif
