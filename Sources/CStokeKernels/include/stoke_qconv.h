#ifndef STOKE_QCONV_H
#define STOKE_QCONV_H
#include <stddef.h>
#include <stdint.h>

// Quantized (u8 activations, s8 weights) 2-D convolution and u8 max pooling for static INT8 models.
// Images are NCHW u8; the product runs on the packed u8×s8→s32 GEMM of stoke_int8.h (any level) with
// its requantizing epilogue, so every level gives the same bytes.

/// im2row of one NCHW u8 image [channels, in_h, in_w]: row p = oy * out_w + ox holds the patch
/// feeding output pixel p, element k = (c * kernel_h + i) * kernel_w + j, at rows + p * ldrow.
/// Reads outside the image give `pad_value` (the input zero point, i.e. real 0).
void stoke_im2row_u8(const uint8_t *_Nonnull x, int64_t channels, const stoke_window2d *_Nonnull g,
                     uint8_t pad_value, uint8_t *_Nonnull rows, size_t ldrow);

/// Bytes of workspace `stoke_qconv2d_u8` needs for one thread.
size_t stoke_qconv2d_workspace_bytes(int64_t channels, const stoke_window2d *_Nonnull g, size_t filters);

/// Convolution (group 1) of `images` NCHW u8 images into NCHW u8 outputs [filters, out_h, out_w]:
/// per image an im2row, the packed GEMM (B = weights as [channels·kh·kw, filters], packed with
/// stoke_int8_pack_b) with the requantizing epilogue of stoke_int8_gemm_u8, and a u8 transpose.
void stoke_qconv2d_u8(const uint8_t *_Nonnull x, size_t images, int64_t channels, const stoke_window2d *_Nonnull g,
                      size_t filters, const void *_Nonnull packed, int32_t x_zero_point,
                      const float *_Nonnull multiplier, const int32_t *_Nullable bias, int32_t y_zero_point,
                      int32_t lo, int32_t hi, uint8_t *_Nonnull workspace, uint8_t *_Nonnull y);

/// Max pooling of `planes` u8 [in_h, in_w] planes into [out_h, out_w] planes (padding never wins:
/// every window holds at least one element of the plane).
void stoke_maxpool2d_u8(const uint8_t *_Nonnull x, int64_t planes, const stoke_window2d *_Nonnull g, uint8_t *_Nonnull y);
#endif
