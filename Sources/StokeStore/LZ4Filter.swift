import CHDF5

/// Registers filter 32004 in-process (H5Zregister), so the library's own pipeline (h5py-style reads
/// through H5Dread, the fallback path) never needs a plugin path. A registered filter takes precedence
/// over plugins. Uses the same codec as Stoke's direct chunk path.
enum LZ4Filter {
    private static let name: StaticString = "lz4 (Stoke)"

    static func register() {
        var filterClass = unsafe H5Z_class2_t(
            version: Int32(H5Z_CLASS_T_VERS), id: H5Z_filter_t(LZ4Chunk.filterID), encoder_present: 1,
            decoder_present: 1,
            name: UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self),
            can_apply: nil, set_local: nil, filter: lz4FilterCallback)
        _ = unsafe H5Zregister(&filterClass)
    }
}

/// The H5Z_func_t for filter 32004: replaces `*buffer` with the encoded or decoded bytes; 0 on failure.
private let lz4FilterCallback: H5Z_func_t = { flags, valueCount, values, validBytes, bufferSize, buffer in
    guard let buffer = unsafe buffer, let bufferSize = unsafe bufferSize, let input = unsafe buffer.pointee else { return 0 }
    let source = unsafe UnsafeRawBufferPointer(start: input, count: validBytes)
    if flags & UInt32(H5Z_FLAG_REVERSE) != 0 {
        guard let total = try? unsafe LZ4Chunk.decodedSize(source),
              let output = unsafe H5allocate_memory(max(total, 1), false) else { return 0 }
        do {
            try unsafe LZ4Chunk.decode(source, into: UnsafeMutableRawBufferPointer(start: output, count: total))
        } catch {
            unsafe H5free_memory(output)
            return 0
        }
        unsafe H5free_memory(input)
        unsafe buffer.pointee = output
        unsafe bufferSize.pointee = max(total, 1)
        return total
    } else {
        let block = unsafe valueCount > 0 && values != nil ? Int(values![0]) : 0
        guard validBytes <= LZ4Chunk.maximumChunkBytes else { return 0 }
        let bound = LZ4Chunk.maximumEncodedSize(count: validBytes, blockBytes: block)
        guard let output = unsafe H5allocate_memory(bound, false) else { return 0 }
        let written = unsafe LZ4Chunk.encode(source, blockBytes: block, into: UnsafeMutableRawBufferPointer(start: output, count: bound))
        unsafe H5free_memory(input)
        unsafe buffer.pointee = output
        unsafe bufferSize.pointee = bound
        return written
    }
}
