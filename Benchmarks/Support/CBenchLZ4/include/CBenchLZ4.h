#ifndef CBENCHLZ4_H
#define CBENCHLZ4_H

#include <stddef.h>

/// Decodes one HDF5 filter-32004 (LZ4) chunk: an 8-byte big-endian decoded size, a 4-byte big-endian
/// block size, then per block a 4-byte big-endian stored size and a raw LZ4 block (stored raw when the
/// size equals the block's decoded size). Every size is checked the way StokeStore's LZ4Chunk.decode
/// checks it, and blocks go through liblz4's LZ4_decompress_safe, the decoder StokeStore uses.
///
/// Returns 0 on success, a negative number when the chunk is malformed or `destination_count` differs
/// from the decoded size the header announces.
int cbench_lz4_chunk_decode(const void *_Nonnull source, size_t source_count,
                            void *_Nonnull destination, size_t destination_count);

#endif
