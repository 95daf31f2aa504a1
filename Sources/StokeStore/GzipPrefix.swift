import CZlib

extension Gzip {
    /// The first `count` decoded bytes of a raw deflate stream (zip method 8), or fewer when the stream
    /// ends sooner: enough to read a member's header before deciding to inflate it whole. Reads only as
    /// much input as those bytes need.
    public static func inflateRawPrefix(_ input: UnsafeRawBufferPointer, count: Int, path: String) throws(StoreError) -> [UInt8] {
        var stream = unsafe z_stream()
        guard unsafe inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .io(path: path, operation: "inflate", message: "zlib could not start a stream")
        }
        defer { _ = unsafe inflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: max(count, 1))
        guard let base = input.baseAddress, count > 0 else { return [] }
        unsafe stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        unsafe stream.avail_in = uInt(min(input.count, 1 << 30))
        let status: Int32 = unsafe output.withUnsafeMutableBytes { buffer in
            unsafe stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            unsafe stream.avail_out = uInt(count)
            return unsafe CZlib.inflate(&stream, Z_SYNC_FLUSH)
        }
        unsafe stream.next_out = nil
        let produced = count - Int(unsafe stream.avail_out)
        guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
            let message = unsafe stream.msg.map { unsafe String(cString: $0) } ?? "zlib status \(status)"
            throw .io(path: path, operation: "inflate", message: "corrupt compressed data: \(message)")
        }
        output.removeSubrange(produced...)
        return output
    }
}
