import Foundation
import StokeStore

/// A NumPy `.npz` archive: a zip file of `.npy` members, each becoming one field. The zip central
/// directory is read here (zip64 included, as `numpy.savez` writes it); every offset and size is checked
/// against the file before use. Stored members are read in place from the map; deflated members are
/// inflated into memory. Every member's CRC-32 is checked.
public struct NPZArchive: Sendable {
    public let path: String
    /// Members in archive order; the name drops the `.npy` suffix.
    public let arrays: [(name: String, array: NPYArray)]

    public init(path: String) throws(SourceError) {
        self.path = path
        let file = try SourceBytes(mapping: path)
        let entries = try ZipDirectory.entries(of: file)
        var arrays: [(String, NPYArray)] = []
        for entry in entries where !entry.name.hasSuffix("/") {
            let memberPath = "\(path):\(entry.name)"
            guard entry.name.hasSuffix(".npy") else {
                throw SourceError(path: memberPath, reason: "an NPZ member must be an .npy file")
            }
            let bytes = try ZipDirectory.contents(of: entry, in: file, memberPath: memberPath)
            arrays.append((String(entry.name.dropLast(4)), try NPYArray(bytes: bytes)))
        }
        guard !arrays.isEmpty else { throw SourceError(path: path, reason: "the archive holds no arrays") }
        self.arrays = arrays
    }
}

/// The parts of the zip format (PKWARE APPNOTE 6.3) an NPZ needs.
enum ZipDirectory {
    struct Entry {
        var name: String
        var method: Int
        var flags: Int
        var crc32: UInt32
        var compressedSize: Int
        var size: Int
        var localHeaderOffset: Int
    }

    /// Little-endian reader over a source; every read is bounds-checked and names what it was reading.
    struct Reader {
        let file: SourceBytes
        func bytes(_ offset: Int, _ count: Int, _ what: String) throws(SourceError) -> [UInt8] {
            guard let bytes = file.array(at: offset, count: count) else {
                throw SourceError(path: file.path, reason: "zip \(what) at byte \(offset) runs past the end of the file (\(file.count) bytes)")
            }
            return bytes
        }
        func integer(_ bytes: [UInt8], _ at: Int, _ width: Int) -> Int {
            (0..<width).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }
        }
    }

    static func entries(of file: SourceBytes) throws(SourceError) -> [Entry] {
        let reader = Reader(file: file)
        let path = file.path
        // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes at the end.
        let searchStart = max(0, file.count - 22 - 65535)
        let tail = try reader.bytes(searchStart, file.count - searchStart, "end record")
        guard tail.count >= 22,
              let end = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
                  tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06
              }) else {
            throw SourceError(path: path, reason: "not a zip/NPZ file (no end-of-central-directory record)")
        }
        var count = reader.integer(tail, end + 10, 2)
        var directorySize = reader.integer(tail, end + 12, 4)
        var directoryOffset = reader.integer(tail, end + 16, 4)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // Zip64: a locator just before the end record points at the zip64 end record.
            let locatorOffset = searchStart + end - 20
            let locator = try reader.bytes(locatorOffset, 20, "zip64 locator")
            guard reader.integer(locator, 0, 4) == 0x0706_4B50 else {
                throw SourceError(path: path, reason: "zip64 sizes are used but the zip64 locator is missing")
            }
            let record = try reader.bytes(reader.integer(locator, 8, 8), 56, "zip64 end record")
            guard reader.integer(record, 0, 4) == 0x0606_4B50 else {
                throw SourceError(path: path, reason: "the zip64 end record has a bad signature")
            }
            count = reader.integer(record, 32, 8)
            directorySize = reader.integer(record, 40, 8)
            directoryOffset = reader.integer(record, 48, 8)
        }
        guard count >= 0, count <= file.count / 46 + 1 else { throw SourceError(path: path, reason: "zip declares \(count) entries, more than fit in the file") }
        let directory = try reader.bytes(directoryOffset, directorySize, "central directory")
        var entries: [Entry] = []
        var at = 0
        for number in 0..<count {
            guard at + 46 <= directory.count, reader.integer(directory, at, 4) == 0x0201_4B50 else {
                throw SourceError(path: path, reason: "zip central directory entry \(number) is truncated or has a bad signature")
            }
            let nameLength = reader.integer(directory, at + 28, 2)
            let extraLength = reader.integer(directory, at + 30, 2)
            let commentLength = reader.integer(directory, at + 32, 2)
            guard at + 46 + nameLength + extraLength + commentLength <= directory.count else {
                throw SourceError(path: path, reason: "zip central directory entry \(number) runs past the directory")
            }
            var entry = Entry(
                name: String(decoding: directory[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self),
                method: reader.integer(directory, at + 10, 2), flags: reader.integer(directory, at + 8, 2),
                crc32: UInt32(reader.integer(directory, at + 16, 4)), compressedSize: reader.integer(directory, at + 20, 4),
                size: reader.integer(directory, at + 24, 4), localHeaderOffset: reader.integer(directory, at + 42, 4))
            // Zip64 extended information (header id 1): 8-byte values for the fields saturated at 0xFFFFFFFF, in order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = reader.integer(directory, extra, 2), size = reader.integer(directory, extra + 2, 2)
                guard extra + 4 + size <= extraEnd else { break }
                if id == 1 {
                    var field = extra + 4
                    func next() throws(SourceError) -> Int {
                        guard field + 8 <= extra + 4 + size else {
                            throw SourceError(path: path, reason: "zip64 extra field of '\(entry.name)' is too short")
                        }
                        defer { field += 8 }
                        return reader.integer(directory, field, 8)
                    }
                    if entry.size == 0xFFFF_FFFF { entry.size = try next() }
                    if entry.compressedSize == 0xFFFF_FFFF { entry.compressedSize = try next() }
                    if entry.localHeaderOffset == 0xFFFF_FFFF { entry.localHeaderOffset = try next() }
                }
                extra += 4 + size
            }
            guard entry.size >= 0, entry.compressedSize >= 0, entry.localHeaderOffset >= 0 else {
                throw SourceError(path: path, reason: "zip entry '\(entry.name)' has sizes beyond 2^63")
            }
            entries.append(entry)
            at += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }

    /// The decoded bytes of one member: a window of the map when stored, an inflated copy when deflated.
    static func contents(of entry: Entry, in file: SourceBytes, memberPath: String) throws(SourceError) -> SourceBytes {
        let reader = Reader(file: file)
        guard entry.flags & 1 == 0 else { throw SourceError(path: memberPath, reason: "encrypted zip members are not supported") }
        let local = try reader.bytes(entry.localHeaderOffset, 30, "local header of '\(entry.name)'")
        guard reader.integer(local, 0, 4) == 0x0403_4B50 else {
            throw SourceError(path: memberPath, reason: "the local header at byte \(entry.localHeaderOffset) has a bad signature")
        }
        // The local header's name and extra lengths may differ from the central directory's.
        let dataStart = entry.localHeaderOffset + 30 + reader.integer(local, 26, 2) + reader.integer(local, 28, 2)
        let stored = try SourceBytes(slice: file, start: dataStart, length: entry.compressedSize, path: memberPath)
        let member: SourceBytes
        switch entry.method {
        case 0:
            guard entry.compressedSize == entry.size else {
                throw SourceError(path: memberPath, reason: "stored member: compressed size \(entry.compressedSize) != size \(entry.size)")
            }
            member = stored
        case 8:
            // Before inflating the member whole (a few KiB can declare gigabytes): its NPY header must
            // account for exactly the declared size, and that size must fit the memory budget.
            let prefix: [UInt8]
            do {
                prefix = try unsafe Gzip.inflateRawPrefix(stored.bytes(at: 0, count: stored.count)!, count: min(entry.size, 1 << 16), path: memberPath)
            } catch {
                throw SourceError(path: memberPath, reason: "\(error)".replacingOccurrences(of: "\(memberPath): ", with: ""))
            }
            if let declared = try NPYArray.declaredBytes(prefix: prefix, path: memberPath), declared != entry.size {
                throw SourceError(
                    path: memberPath,
                    reason: "the NPY header declares \(declared) bytes (header and data), the archive says the member holds \(entry.size); refused before inflating")
            }
            do throws(MemoryBudgetError) {
                try MemoryBudget.current.check(entry.size, for: "\(memberPath) (a deflated member, inflated in memory)")
            } catch {
                throw SourceError(path: memberPath, reason: "\(error)".replacingOccurrences(of: "\(memberPath) ", with: ""))
            }
            do {
                let decoded = try unsafe Gzip.inflateRaw(stored.bytes(at: 0, count: stored.count)!, expectedBytes: entry.size, path: memberPath)
                member = SourceBytes(copying: decoded, path: memberPath)
            } catch {
                throw SourceError(path: memberPath, reason: "\(error)".replacingOccurrences(of: "\(memberPath): ", with: ""))
            }
        default:
            throw SourceError(path: memberPath, reason: "zip compression method \(entry.method) is not supported (0 stored, 8 deflated)")
        }
        let crc = unsafe Gzip.crc32(member.bytes(at: 0, count: member.count)!)
        guard crc == entry.crc32 else {
            throw SourceError(path: memberPath, reason: "CRC-32 mismatch: the archive says \(hex(entry.crc32)), the data gives \(hex(crc))")
        }
        return member
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
