import Foundation
import StokeStore

/// The bytes of one source (a file, a slice of a file such as a stored zip member, or a decompressed
/// buffer), behind one bounds-checked accessor. One of the few files in StokePack with pointer code: the
/// pointers handed out live no longer than this owner. Immutable after `init`, so threads may share it.
@safe public final class SourceBytes: @unchecked Sendable {
    /// Named in errors (`archive.npz:x.npy` for a member).
    public let path: String
    /// Size in bytes.
    public let count: Int
    private let map: MappedFile?
    private let offset: Int
    private let owned: UnsafeMutableRawBufferPointer?

    /// Maps a file as it is.
    public init(mapping path: String) throws(SourceError) {
        do {
            let map = try MappedFile(path: path)
            self.map = map
            count = map.size
        } catch {
            throw SourceError(path: path, reason: "cannot read: \(error)")
        }
        self.path = path
        offset = 0
        unsafe owned = nil
    }

    /// Maps a file, gunzipping it first when it starts with the gzip magic bytes.
    public static func openMaybeGzip(_ path: String) throws(SourceError) -> SourceBytes {
        let file = try SourceBytes(mapping: path)
        guard let magic = unsafe file.bytes(at: 0, count: 2), unsafe magic[0] == 0x1F, unsafe magic[1] == 0x8B else { return file }
        do {
            let decoded = try unsafe Gzip.decompress(file.bytes(at: 0, count: file.count)!, path: path)
            return SourceBytes(copying: decoded, path: path)
        } catch {
            throw SourceError(path: path, reason: "\(error)".replacingOccurrences(of: "\(path): ", with: ""))
        }
    }

    /// A window `[start, start + length)` of another source, sharing its map (no copy).
    public init(slice source: SourceBytes, start: Int, length: Int, path: String) throws(SourceError) {
        guard start >= 0, length >= 0, start <= source.count, length <= source.count - start else {
            throw SourceError(path: path, reason: "bytes \(start)..<\(start + length) lie past the end (\(source.count) bytes)")
        }
        self.path = path
        count = length
        if let map = source.map {
            self.map = map
            offset = source.offset + start
            unsafe owned = nil
        } else {
            map = nil
            offset = 0
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 1), alignment: 64)
            if length > 0 { unsafe copy.copyMemory(from: source.bytes(at: start, count: length)!) }
            unsafe owned = copy
        }
    }

    /// Owns a copy of `bytes` (a decompressed file or member).
    public init(copying bytes: [UInt8], path: String) {
        self.path = path
        count = bytes.count
        map = nil
        offset = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        unsafe bytes.withUnsafeBytes { unsafe buffer.copyMemory(from: $0) }
        unsafe owned = buffer
    }

    deinit {
        unsafe owned?.deallocate()
    }

    /// The bytes `[at, at + count)`, or nil when any of them lies past the end.
    public func bytes(at start: Int, count length: Int) -> UnsafeRawBufferPointer? {
        guard start >= 0, length >= 0, start <= count, length <= count - start else { return nil }
        if let map {
            return unsafe map.bytes(at: UInt64(offset + start), count: length)
        }
        guard let owned = unsafe owned else { return nil }
        return unsafe UnsafeRawBufferPointer(rebasing: owned[start..<(start + length)])
    }

    /// Copies `[at, at + count)` into an array (nil when out of bounds).
    public func array(at start: Int, count length: Int) -> [UInt8]? {
        unsafe bytes(at: start, count: length).map { unsafe Array($0) }
    }
}
