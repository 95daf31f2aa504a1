#ifndef CSTOKEKERNELS_H
#define CSTOKEKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// CPU feature levels Stoke's kernels dispatch on, best first.
typedef enum {
    STOKE_CPU_PORTABLE = 0,
    STOKE_CPU_AVX2 = 1,
    STOKE_CPU_AVX512_VNNI = 2,
} stoke_cpu_level;

/// The best kernel level this CPU supports (probed once with cpuid; thread-safe).
stoke_cpu_level stoke_cpu_probe(void);

/// Forces the level kernels use (tests check every path); a level above the CPU's is clamped.
/// Pass -1 to return to the probed level.
void stoke_cpu_force(int level);

/// The level kernels use now: the probed one unless forced.
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
#endif
