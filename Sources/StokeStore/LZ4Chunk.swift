import CLZ4

/// The byte layout of HDF5 filter 32004 (LZ4), as the HDF Group plugin, hdf5plugin and Debian's
/// hdf5-filter-plugin write it: an 8-byte big-endian decoded size, a 4-byte big-endian block size, then
/// per block a 4-byte big-endian stored size and a raw LZ4 block. A block that does not shrink is stored
/// raw, its size field equal to its decoded size.
public enum LZ4Chunk {
    /// HDF5's registered id for the LZ4 filter.
    public static let filterID = 32004
    static let headerBytes = 12
    /// Largest chunk the format allows (the plugins use a signed 32-bit size per call).
    static let maximumChunkBytes = Int(Int32.max) - 65536

    /// Upper bound of the encoded size of `count` bytes split in blocks of `blockBytes`.
    public static func maximumEncodedSize(count: Int, blockBytes: Int) -> Int {
        let block = effectiveBlockBytes(requested: blockBytes, count: count)
        let blocks = count == 0 ? 0 : (count + block - 1) / block
        return headerBytes + blocks * 4 + (blocks == 0 ? 0 : Int(LZ4_compressBound(Int32(min(block, count)))) * blocks)
    }

    /// The block size the plugins use: the requested size (0 = 1 GiB), clamped to the chunk size.
    static func effectiveBlockBytes(requested: Int, count: Int) -> Int {
        let block = requested <= 0 ? 1 << 30 : requested
        return max(1, min(block, count))
    }

    /// Encodes `source` into `destination`, which must hold `maximumEncodedSize` bytes; returns the encoded size.
    static func encode(
        _ source: UnsafeRawBufferPointer, blockBytes: Int, into destination: UnsafeMutableRawBufferPointer
    ) -> Int {
        let count = source.count
        let block = effectiveBlockBytes(requested: blockBytes, count: count)
        precondition(destination.count >= maximumEncodedSize(count: count, blockBytes: blockBytes))
        unsafe storeBigEndian(UInt64(count), at: 0, in: destination)
        unsafe storeBigEndian(UInt32(count == 0 ? 0 : block), at: 8, in: destination)
        var written = headerBytes
        var consumed = 0
        while consumed < count {
            let length = min(block, count - consumed)
            let payload = written + 4
            let compressed = unsafe LZ4_compress_default(
                source.baseAddress!.advanced(by: consumed).assumingMemoryBound(to: CChar.self),
                destination.baseAddress!.advanced(by: payload).assumingMemoryBound(to: CChar.self),
                Int32(length), Int32(destination.count - payload))
            if compressed <= 0 || Int(compressed) >= length {
                unsafe destination.baseAddress!.advanced(by: payload).copyMemory(
                    from: source.baseAddress!.advanced(by: consumed), byteCount: length)
                unsafe storeBigEndian(UInt32(length), at: written, in: destination)
                written = payload + length
            } else {
                unsafe storeBigEndian(UInt32(compressed), at: written, in: destination)
                written = payload + Int(compressed)
            }
            consumed += length
        }
        return written
    }

    /// The decoded size a chunk's header announces, after checking the header fits.
    static func decodedSize(_ source: UnsafeRawBufferPointer) throws(ChunkDecodeError) -> Int {
        guard source.count >= headerBytes else {
            throw .init("LZ4 header: \(source.count) bytes, fewer than the 12-byte header")
        }
        let total = unsafe loadBigEndian(UInt64.self, at: 0, in: source)
        guard total <= UInt64(maximumChunkBytes) else {
            throw .init("LZ4 header: decoded size field \(total) exceeds the format's limit")
        }
        return Int(total)
    }

    /// Decodes a whole chunk into `destination`, whose size must equal the header's decoded size.
    /// Every size field is checked against both buffers; LZ4 blocks use the bounds-checked decoder.
    static func decode(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws(ChunkDecodeError) {
        let total = unsafe try decodedSize(source)
        guard total == destination.count else {
            throw .init("LZ4 header: decoded size field \(total) does not match the chunk's \(destination.count) bytes")
        }
        if total == 0 { return }
        let blockField = Int(unsafe loadBigEndian(UInt32.self, at: 8, in: source))
        guard blockField > 0 else { throw .init("LZ4 header: block size field is 0 for a non-empty chunk") }
        var read = headerBytes
        var produced = 0
        var blockNumber = 0
        while produced < total {
            let expected = min(blockField, total - produced)
            guard read + 4 <= source.count else {
                throw .init("LZ4 block \(blockNumber): size field at byte \(read) lies past the chunk's \(source.count) bytes")
            }
            let stored = Int(unsafe loadBigEndian(UInt32.self, at: read, in: source))
            read += 4
            guard stored <= source.count - read else {
                throw .init("LZ4 block \(blockNumber): stored size \(stored) runs past the chunk's end")
            }
            let target = unsafe destination.baseAddress!.advanced(by: produced)
            let input = unsafe source.baseAddress!.advanced(by: read)
            if stored == expected {
                unsafe target.copyMemory(from: input, byteCount: stored)
            } else {
                let decoded = unsafe LZ4_decompress_safe(
                    input.assumingMemoryBound(to: CChar.self), target.assumingMemoryBound(to: CChar.self),
                    Int32(stored), Int32(expected))
                guard decoded == Int32(expected) else {
                    throw .init(decoded < 0
                        ? "LZ4 block \(blockNumber): malformed compressed data"
                        : "LZ4 block \(blockNumber): decoded \(decoded) bytes, expected \(expected)")
                }
            }
            read += stored
            produced += expected
            blockNumber += 1
        }
        guard read == source.count else {
            throw .init("LZ4: \(source.count - read) trailing bytes after the last block")
        }
    }
}

/// A chunk's bytes did not decode; `reason` names the field or block at fault.
public struct ChunkDecodeError: Error, Sendable, Equatable {
    public var reason: String
    init(_ reason: String) { self.reason = reason }
}

@inline(__always)
func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int, in buffer: UnsafeMutableRawBufferPointer) {
    unsafe buffer.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
}

@inline(__always)
func loadBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int, in buffer: UnsafeRawBufferPointer) -> T {
    T(bigEndian: unsafe buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
}
