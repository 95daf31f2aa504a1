import CZlib

/// zlib streams for source files outside a store: gzip files (IDX `.gz`) and raw deflate members of zip
/// archives (NPZ). StokeStore is the only module that imports zlib, so StokePack decompresses through this.
///
/// Every size is in bytes. Input is fed to zlib at most 1 GiB per call because `avail_in`/`avail_out` are
/// 32-bit; output grows as needed, bounded by `limit`.
public enum Gzip {
    /// Decompresses a whole gzip file, every member (as `gunzip` does). The gzip trailer's size (the
    /// decoded size mod 2³²) is used as the first allocation. Trailing zero bytes (tape padding) are
    /// accepted; anything else after the last member is an error.
    /// - Parameters:
    ///   - input: the file's bytes.
    ///   - path: named in errors.
    ///   - limit: the most bytes the output may have (a guard against decompression bombs).
    public static func decompress(_ input: UnsafeRawBufferPointer, path: String, limit: Int = 1 << 40) throws(StoreError) -> [UInt8] {
        guard input.count >= 18, unsafe input[0] == 0x1F, unsafe input[1] == 0x8B else {
            throw .io(path: path, operation: "gunzip", message: "not a gzip file (magic bytes 1f 8b missing)")
        }
        let trailerSize = (0..<4).reduce(0) { unsafe $0 | Int(input[input.count - 4 + $1]) << (8 * $1) }
        // 15 + 16: zlib's gzip wrapper with a 32 KiB window.
        return try unsafe inflate(input, windowBits: 15 + 16, sizeHint: trailerSize, exactBytes: nil, limit: limit, path: path)
    }

    /// The most a deflate stream can expand: 258 bytes from one 2-bit code, about 1032:1.
    static let maximumRatio = 1032

    /// Inflates a raw deflate stream (zip method 8) that must decode to exactly `expectedBytes`.
    public static func inflateRaw(_ input: UnsafeRawBufferPointer, expectedBytes: Int, path: String) throws(StoreError) -> [UInt8] {
        let most = input.count.multipliedReportingOverflow(by: maximumRatio)
        guard expectedBytes >= 0, most.overflow || expectedBytes <= most.partialValue + 1024 else {
            throw .io(path: path, operation: "inflate",
                      message: "declares \(expectedBytes) bytes, more than deflate can produce from \(input.count) bytes")
        }
        // Negative window bits: raw deflate, no zlib or gzip header.
        return try unsafe inflate(input, windowBits: -15, sizeHint: expectedBytes, exactBytes: expectedBytes, limit: expectedBytes, path: path)
    }

    /// CRC-32 (the zip and gzip checksum) of `bytes`, continuing from `seed`.
    public static func crc32(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = UInt(seed)
        var offset = 0
        while offset < bytes.count {
            let step = min(bytes.count - offset, 1 << 30)
            crc = unsafe CZlib.crc32(crc, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(step))
            offset += step
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    private static func inflate(
        _ input: UnsafeRawBufferPointer, windowBits: Int32, sizeHint: Int, exactBytes: Int?, limit: Int, path: String
    ) throws(StoreError) -> [UInt8] {
        var stream = unsafe z_stream()
        guard unsafe inflateInit2_(&stream, windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .io(path: path, operation: "inflate", message: "zlib could not start a stream")
        }
        defer { _ = unsafe inflateEnd(&stream) }
        // Deflate expands at most 1032:1, so a size hint beyond that (a hostile header or trailer) is
        // ignored for the first allocation; the output still grows to whatever the stream really holds.
        let plausible = input.count.multipliedReportingOverflow(by: Gzip.maximumRatio)
        let firstAllocation = plausible.overflow ? sizeHint : min(sizeHint, plausible.partialValue + (1 << 16))
        var output = [UInt8](repeating: 0, count: min(limit, max(firstAllocation, 1 << 16)))
        var produced = 0
        var fed = 0
        func failure(_ message: String) -> StoreError {
            .io(path: path, operation: windowBits < 0 ? "inflate" : "gunzip", message: message)
        }
        while true {
            if unsafe stream.avail_in == 0 && fed < input.count {
                let step = min(input.count - fed, 1 << 30)
                unsafe stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.advanced(by: fed).assumingMemoryBound(to: Bytef.self))
                unsafe stream.avail_in = uInt(step)
                fed += step
            }
            if produced == output.count {
                guard output.count < limit else {
                    throw failure(exactBytes != nil
                        ? "decodes to more than the \(limit) bytes the archive declares"
                        : "decodes to more than \(limit) bytes")
                }
                output.append(contentsOf: [UInt8](repeating: 0, count: min(limit - output.count, max(output.count, 1 << 16))))
            }
            let room = min(output.count - produced, 1 << 30)
            let status: Int32 = unsafe output.withUnsafeMutableBytes { buffer in
                unsafe stream.next_out = buffer.baseAddress!.advanced(by: produced).assumingMemoryBound(to: Bytef.self)
                unsafe stream.avail_out = uInt(room)
                return unsafe CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            produced += room - Int(unsafe stream.avail_out)
            unsafe stream.next_out = nil
            switch status {
            case Z_STREAM_END:
                let remaining = Int(unsafe stream.avail_in) + (input.count - fed)
                let rest = unsafe UnsafeRawBufferPointer(rebasing: input[(input.count - remaining)...])
                // Another gzip member follows: keep going into the same output, as gunzip concatenates.
                if windowBits > 0, remaining >= 2, unsafe rest[0] == 0x1F, unsafe rest[1] == 0x8B {
                    guard unsafe inflateReset(&stream) == Z_OK else { throw failure("zlib could not reset the stream") }
                    continue
                }
                guard unsafe rest.allSatisfy({ $0 == 0 }) else { throw failure("\(remaining) bytes of trailing garbage after the compressed data") }
                output.removeSubrange(produced...)
                if let exactBytes, produced != exactBytes {
                    throw failure("decodes to \(produced) bytes, the archive declares \(exactBytes)")
                }
                return output
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: either the output is full (grown above) or the input ran out.
                if unsafe stream.avail_in == 0 && fed == input.count { throw failure("truncated: the compressed data ends early") }
                continue
            default:
                let message = unsafe stream.msg.map { unsafe String(cString: $0) } ?? "zlib status \(status)"
                throw failure("corrupt compressed data: \(message)")
            }
        }
    }
}
