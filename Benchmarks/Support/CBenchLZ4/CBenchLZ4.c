#include "CBenchLZ4.h"

#include <lz4.h>
#include <stdint.h>
#include <string.h>

static uint64_t load_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static uint32_t load_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int cbench_lz4_chunk_decode(const void *source, size_t source_count, void *destination, size_t destination_count) {
    const unsigned char *src = (const unsigned char *)source;
    unsigned char *dst = (unsigned char *)destination;
    if (source_count < 12) return -1;
    uint64_t total = load_be64(src);
    if (total != destination_count) return -2;
    if (total == 0) return 0;
    uint32_t block = load_be32(src + 8);
    if (block == 0) return -3;
    size_t read = 12, produced = 0;
    while (produced < total) {
        size_t expected = total - produced < block ? (size_t)(total - produced) : block;
        if (read + 4 > source_count) return -4;
        size_t stored = load_be32(src + read);
        read += 4;
        if (stored > source_count - read) return -5;
        if (stored == expected) {
            memcpy(dst + produced, src + read, stored);
        } else {
            int decoded = LZ4_decompress_safe((const char *)(src + read), (char *)(dst + produced), (int)stored, (int)expected);
            if (decoded != (int)expected) return -6;
        }
        read += stored;
        produced += expected;
    }
    return read == source_count ? 0 : -7;
}
