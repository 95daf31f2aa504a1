#include "CStokeKernels.h"

// The same arithmetic as HDF5's H5_checksum_fletcher32 (H5checksum.c): 16-bit big-endian words,
// sums folded every 360 words so they never overflow, a trailing odd byte as the high half of a word.
uint32_t stoke_fletcher32(const uint8_t *data, size_t nbytes) {
    size_t words = nbytes / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (words) {
        size_t block = words > 360 ? 360 : words;
        words -= block;
        do {
            sum1 += (uint32_t)(((uint16_t)data[0]) << 8) | ((uint16_t)data[1]);
            data += 2;
            sum2 += sum1;
        } while (--block);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (nbytes % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}
