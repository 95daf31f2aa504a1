#include "CStokeKernels.h"
#include <string.h>

// Shuffle is a transpose of a count × element_size byte matrix. Fixed sizes get their own loops so the
// compiler unrolls the inner byte loop; the generic path handles any size.
#define SHUFFLE_FIXED(N)                                                         \
    static void shuffle_##N(const uint8_t *src, uint8_t *dst, size_t count) {    \
        for (size_t i = 0; i < count; i++)                                       \
            for (size_t b = 0; b < N; b++) dst[b * count + i] = src[i * N + b];  \
    }                                                                            \
    static void unshuffle_##N(const uint8_t *src, uint8_t *dst, size_t count) {  \
        for (size_t i = 0; i < count; i++)                                       \
            for (size_t b = 0; b < N; b++) dst[i * N + b] = src[b * count + i];  \
    }
SHUFFLE_FIXED(2)
SHUFFLE_FIXED(4)
SHUFFLE_FIXED(8)

void stoke_shuffle(const uint8_t *src, uint8_t *dst, size_t nbytes, size_t element_size) {
    if (element_size <= 1 || nbytes < element_size) {
        memcpy(dst, src, nbytes);
        return;
    }
    size_t count = nbytes / element_size;
    switch (element_size) {
    case 2: shuffle_2(src, dst, count); break;
    case 4: shuffle_4(src, dst, count); break;
    case 8: shuffle_8(src, dst, count); break;
    default:
        for (size_t b = 0; b < element_size; b++)
            for (size_t i = 0; i < count; i++) dst[b * count + i] = src[i * element_size + b];
    }
    size_t done = count * element_size;
    memcpy(dst + done, src + done, nbytes - done);
}

void stoke_unshuffle(const uint8_t *src, uint8_t *dst, size_t nbytes, size_t element_size) {
    if (element_size <= 1 || nbytes < element_size) {
        memcpy(dst, src, nbytes);
        return;
    }
    size_t count = nbytes / element_size;
    switch (element_size) {
    case 2: unshuffle_2(src, dst, count); break;
    case 4: unshuffle_4(src, dst, count); break;
    case 8: unshuffle_8(src, dst, count); break;
    default:
        for (size_t b = 0; b < element_size; b++)
            for (size_t i = 0; i < count; i++) dst[i * element_size + b] = src[b * count + i];
    }
    size_t done = count * element_size;
    memcpy(dst + done, src + done, nbytes - done);
}
