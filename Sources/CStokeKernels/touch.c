#include "stoke_collate.h"

// Reads one byte per `stride` bytes (and the last byte) so every page of a memory-mapped range is
// faulted in; returns their xor so the loads cannot be optimized away.
unsigned char stoke_touch_pages(const void *data, size_t nbytes, size_t stride) {
    const volatile unsigned char *bytes = (const volatile unsigned char *)data;
    unsigned char sink = 0;
    if (nbytes == 0 || stride == 0) return 0;
    for (size_t offset = 0; offset < nbytes; offset += stride) sink ^= bytes[offset];
    sink ^= bytes[nbytes - 1];
    return sink;
}
