#ifndef STOKE_COLLATE_H
#define STOKE_COLLATE_H
#include <stddef.h>
#include <stdint.h>

/// Fused collate for one sample: `dst[i] = src[i] * scale[c] + bias[c]` as f32, where the channel of
/// element `i` is `(i / inner) % channels` (`inner` = elements after the channel axis: H*W for CHW,
/// 1 for HWC). With `scale = 1/(255*std)` and `bias = -mean/std` this is torchvision's
/// `Normalize(mean, std)` applied to `ToTensor()` output, in one pass. Dispatches on
/// `stoke_cpu_active()` (AVX-512, AVX2, portable).
void stoke_normalize_u8_f32(const uint8_t *_Nonnull src, float *_Nonnull dst, size_t count, size_t inner,
                            size_t channels, const float *_Nonnull scale, const float *_Nonnull bias);
/// Copies `nbytes` with non-temporal stores where that pays (large copies, AVX-512): a gathered batch is
/// written once and read later by the consumer, so its cache lines need not be read for ownership first.
void stoke_copy_rows_streaming(void *_Nonnull dst, const void *_Nonnull src, size_t nbytes);
/// Reads one byte every `stride` bytes of `data` (and its last byte), faulting in each page of a
/// memory-mapped range; returns the bytes' xor (so the loads are kept).
unsigned char stoke_touch_pages(const void *_Nonnull data, size_t nbytes, size_t stride);
#endif
