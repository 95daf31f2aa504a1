#ifndef STOKE_QCONV_H
#define STOKE_QCONV_H
#include <stddef.h>
#include <stdint.h>

// Quantized (u8 activations, s8 weights) 2-D convolution and u8 max pooling for static INT8 models.
// Images are NCHW u8; the product runs on the packed u8×s8→s32 GEMM of stoke_int8.h (any level) with
// its requantizing epilogue, so every level gives the same bytes.

/// Layout flags of `stoke_qconv2d_u8`: images NHWC (else NCHW) on input, on output.
enum { STOKE_QCONV_INPUT_NHWC = 1, STOKE_QCONV_OUTPUT_NHWC = 2 };

/// Bytes of one patch row: channels · kernel_h · kernel_w rounded up to a multiple of 4. The
/// weights `stoke_qconv2d_u8` takes have this many rows, the ones past channels · kh · kw zero.
size_t stoke_qconv2d_patch_bytes(int64_t channels, const stoke_window2d *_Nonnull g);

/// Bytes of workspace `stoke_qconv2d_u8` needs for one thread.
size_t stoke_qconv2d_workspace_bytes(int64_t channels, const stoke_window2d *_Nonnull g, size_t filters);

/// Convolution (group 1) of `images` u8 images into u8 outputs, NCHW or NHWC on each side (`layout`):
/// per image a copy into a zero-point-bordered NHWC buffer, patch rows (element (i · kw + j) · C + c
/// of the row of output pixel p = oy · out_w + ox), the packed GEMM (B = weights as [stoke_qconv2d_patch_bytes, filters] in
/// that order, zero rows at the end, packed with stoke_int8_pack_b) with the requantizing epilogue of
/// stoke_int8_gemm_u8, written NHWC directly or transposed to NCHW.
void stoke_qconv2d_u8(const uint8_t *_Nonnull x, size_t images, int64_t channels, const stoke_window2d *_Nonnull g,
                      size_t filters, const void *_Nonnull packed, int32_t x_zero_point,
                      const float *_Nonnull multiplier, const int32_t *_Nullable bias, int32_t y_zero_point,
                      int32_t lo, int32_t hi, int layout, uint8_t *_Nonnull workspace, uint8_t *_Nonnull y);

/// Max pooling of `planes` u8 [in_h, in_w] planes into [out_h, out_w] planes (padding never wins:
/// every window holds at least one element of the plane).
void stoke_maxpool2d_u8(const uint8_t *_Nonnull x, int64_t planes, const stoke_window2d *_Nonnull g, uint8_t *_Nonnull y);

/// Max pooling of `images` NHWC u8 images [in_h, in_w, channels] into [out_h, out_w, channels].
void stoke_maxpool2d_nhwc_u8(const uint8_t *_Nonnull x, int64_t images, int64_t channels, const stoke_window2d *_Nonnull g,
                             uint8_t *_Nonnull y);

/// QuantizeLinear to u8 per tensor: q = clamp(round_half_even(x / scale) + zero_point, 0, 255)
/// (a true division, as ONNX specifies and onnxruntime computes).
void stoke_quantize_linear_u8(const float *_Nonnull x, size_t n, float scale, int32_t zero_point, uint8_t *_Nonnull q);
#endif
