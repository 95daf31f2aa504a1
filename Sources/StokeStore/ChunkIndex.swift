/// Where one chunk's stored bytes lie in the file.
public struct ChunkLocation: Sendable, Equatable {
    /// File offset of the first stored byte.
    public var offset: UInt64
    /// Stored (filtered) size in bytes; 0 for a chunk that was never written (reads as the fill value).
    public var size: UInt64
    /// HDF5 filter mask: bit `i` set means pipeline stage `i` was skipped for this chunk.
    public var filterMask: UInt32

    public init(offset: UInt64, size: UInt64, filterMask: UInt32) {
        self.offset = offset
        self.size = size
        self.filterMask = filterMask
    }
}

/// Builds the chunk address index of a dataset in O(chunks) by reading HDF5's own structures from the
/// file: the dataset's object header (v1 or v2) gives the data layout message (version 3, chunked), whose
/// v1 B-tree lists every chunk's address, stored size, filter mask and coordinates.
///
/// The library offers H5Dget_chunk_info, but in 1.10.8 each call walks the whole index, so a loop over
/// N chunks is O(N²) (measured: 32k chunks ≈ 4–7 s). This scan reads each B-tree node once.
enum ChunkBTree {
    /// Why a scan could not run: the file uses a layout this scanner does not read (the caller falls
    /// back to the library), or its bytes are inconsistent.
    struct ScanError: Error { var reason: String; var unsupported: Bool }

    /// Chunk locations by chunk number along axis 0, for a dataset whose chunks hold whole samples.
    static func scan(
        file: MappedFile, objectHeader: UInt64, rank: Int, chunkRows: UInt64, chunkCount: Int
    ) throws(ScanError) -> [ChunkLocation] {
        var reader = FileReader(file: file, base: 0)
        try reader.checkSuperblock()
        let layout = try findLayoutMessage(&reader, objectHeader: objectHeader)
        guard layout.version == 3 else {
            throw ScanError(reason: "data layout message version \(layout.version)", unsupported: true)
        }
        guard layout.dimensionality == rank + 1 else {
            throw ScanError(reason: "layout has \(layout.dimensionality) dimensions for a rank-\(rank) dataset", unsupported: false)
        }
        var locations = [ChunkLocation](repeating: ChunkLocation(offset: 0, size: 0, filterMask: 0), count: chunkCount)
        if layout.btreeAddress == UInt64.max { return locations }  // no chunk written yet
        var pending: [(address: UInt64, level: Int?)] = [(layout.btreeAddress, nil)]
        var visited = 0
        let keyBytes = 8 + 8 * layout.dimensionality
        while let (address, expectedLevel) = pending.popLast() {
            visited += 1
            guard visited <= max(1024, file.size / 24) else {
                throw ScanError(reason: "B-tree has more nodes than the file can hold (a cycle?)", unsupported: false)
            }
            guard try reader.bytes(address, 4) == Array("TREE".utf8) else {
                throw ScanError(reason: "no B-tree node signature at address \(address)", unsupported: false)
            }
            guard try reader.u8(address + 4) == 1 else {
                throw ScanError(reason: "B-tree node at \(address) is not a chunk node", unsupported: false)
            }
            let level = Int(try reader.u8(address + 5))
            if let expectedLevel, level != expectedLevel {
                throw ScanError(reason: "B-tree node at \(address) has level \(level), expected \(expectedLevel)", unsupported: false)
            }
            let entries = Int(try reader.u16(address + 6))
            var position = address + 24
            for _ in 0..<entries {
                let storedSize = try reader.u32(position)
                let mask = try reader.u32(position + 4)
                var coordinates: [UInt64] = []
                for dimension in 0..<layout.dimensionality {
                    coordinates.append(try reader.u64(position + 8 + UInt64(8 * dimension)))
                }
                let child = try reader.u64(position + UInt64(keyBytes))
                position += UInt64(keyBytes + 8)
                if level > 0 {
                    pending.append((child, level - 1))
                    continue
                }
                guard coordinates.dropFirst().allSatisfy({ $0 == 0 }) else {
                    throw ScanError(reason: "chunks split samples along axes other than 0", unsupported: true)
                }
                guard coordinates[0] % chunkRows == 0 else {
                    throw ScanError(reason: "chunk at row \(coordinates[0]) is not aligned to \(chunkRows) rows", unsupported: false)
                }
                let number = Int(coordinates[0] / chunkRows)
                guard number < chunkCount else { continue }  // beyond the extent: HDF5 keeps but never reads it
                // Addresses in the file are relative to the superblock's base (past a userblock).
                let (absolute, overflow) = child.addingReportingOverflow(reader.base)
                guard !overflow, absolute < UInt64(file.size), UInt64(storedSize) <= UInt64(file.size) - absolute else {
                    throw ScanError(reason: "chunk \(number) lies past the end of the file", unsupported: false)
                }
                locations[number] = ChunkLocation(offset: absolute, size: UInt64(storedSize), filterMask: mask)
            }
        }
        return locations
    }

    private struct Layout { var version: Int; var dimensionality: Int; var btreeAddress: UInt64 }

    /// Finds the data layout message among the object header's messages.
    private static func findLayoutMessage(_ reader: inout FileReader, objectHeader: UInt64) throws(ScanError) -> Layout {
        var found: Layout?
        try walkMessages(reader, objectHeader: objectHeader) { (message) throws(ScanError) -> Bool in
            guard message.type == 0x08 else { return false }  // data layout
            let data = message.data
            let version = Int(try reader.u8(data))
            guard version == 3 else {
                found = Layout(version: version, dimensionality: 0, btreeAddress: 0)
                return true
            }
            guard try reader.u8(data + 1) == 2 else {
                throw ScanError(reason: "dataset is not chunked", unsupported: true)
            }
            found = Layout(version: 3, dimensionality: Int(try reader.u8(data + 2)), btreeAddress: try reader.u64(data + 3))
            return true
        }
        guard let found else { throw ScanError(reason: "no data layout message in the object header", unsupported: false) }
        return found
    }

    /// One message of an object header: its type, its flags byte (bit 1: the message is shared, and
    /// its data is a reference to where it is kept), and where its data lies (`[data, data + size)`,
    /// checked to lie inside its header block, and so inside the file).
    struct HeaderMessage { var type: Int; var flags: UInt8; var data: UInt64; var size: UInt64 }

    /// Walks an object header's messages (v1 or v2 header, following continuation blocks), calling
    /// `visit` on each until it returns true. Every block is bounds-checked against the file, and a
    /// header whose continuations loop is refused.
    static func walkMessages(
        _ reader: FileReader, objectHeader: UInt64, _ visit: (HeaderMessage) throws(ScanError) -> Bool
    ) throws(ScanError) {
        var blocks: [(start: UInt64, end: UInt64, version2: Bool)] = []
        var version2 = false
        var trackCreationOrder = false
        if try reader.bytes(objectHeader, 4) == Array("OHDR".utf8) {
            version2 = true
            guard try reader.u8(objectHeader + 4) == 2 else {
                throw ScanError(reason: "object header version \(try reader.u8(objectHeader + 4))", unsupported: true)
            }
            let flags = try reader.u8(objectHeader + 5)
            trackCreationOrder = flags & 0x04 != 0
            var position = objectHeader + 6
            if flags & 0x20 != 0 { position += 16 }
            if flags & 0x10 != 0 { position += 4 }
            let sizeWidth = 1 << Int(flags & 0x03)
            var chunkSize: UInt64 = 0
            for index in 0..<sizeWidth { chunkSize |= UInt64(try reader.u8(position + UInt64(index))) << (8 * UInt64(index)) }
            position += UInt64(sizeWidth)
            blocks.append(try reader.block(position, chunkSize, "object header chunk", version2: true))
        } else {
            guard try reader.u8(objectHeader) == 1 else {
                throw ScanError(reason: "unknown object header version at address \(objectHeader)", unsupported: true)
            }
            let headerSize = UInt64(try reader.u32(objectHeader + 8))
            blocks.append(try reader.block(objectHeader + 16, headerSize, "object header", version2: false))
        }
        var visitedBlocks = 0
        while let block = blocks.popLast() {
            visitedBlocks += 1
            guard visitedBlocks < 4096 else { throw ScanError(reason: "object header continuation loop", unsupported: false) }
            var position = block.start
            let headerBytes: UInt64 = version2 ? (trackCreationOrder ? 6 : 4) : 8
            while position + headerBytes <= block.end {
                let type: Int
                let size: UInt64
                let flags: UInt8
                if version2 {
                    type = Int(try reader.u8(position))
                    size = UInt64(try reader.u16(position + 1))
                    flags = try reader.u8(position + 3)
                } else {
                    type = Int(try reader.u16(position))
                    size = UInt64(try reader.u16(position + 2))
                    flags = try reader.u8(position + 4)
                }
                let data = position + headerBytes
                guard data + size <= block.end else {
                    throw ScanError(reason: "object header message runs past its block", unsupported: false)
                }
                if type == 0x10 {  // continuation
                    let address = try reader.u64(data)
                    let length = try reader.u64(data + 8)
                    if version2 {
                        guard try reader.bytes(address, 4) == Array("OCHK".utf8), length >= 8 else {
                            throw ScanError(reason: "bad object header continuation block at \(address)", unsupported: false)
                        }
                        let whole = try reader.block(address, length, "object header continuation block", version2: true)
                        blocks.append((whole.start + 4, whole.end - 4, true))
                    } else {
                        blocks.append(try reader.block(address, length, "object header continuation block", version2: false))
                    }
                } else if try visit(HeaderMessage(type: type, flags: flags, data: data, size: size)) {
                    return
                }
                position = data + size
            }
        }
    }

    /// Little-endian, bounds-checked reads from the map, at addresses relative to the superblock's base
    /// address (the userblock size, 0 for most files) once `checkSuperblock` has found it.
    struct FileReader {
        let file: MappedFile
        var base: UInt64

        func bytes(_ address: UInt64, _ count: Int) throws(ScanError) -> [UInt8] {
            let (absolute, overflow) = address.addingReportingOverflow(base)
            guard !overflow, let view = unsafe file.bytes(at: absolute, count: count) else {
                throw ScanError(reason: "address \(address) + \(count) lies past the end of the file", unsupported: false)
            }
            return unsafe Array(view)
        }
        /// The byte range `[start, start + length)` of an object header block, refused when it overflows
        /// or runs past the end of the file (sizes and addresses come from the file's bytes).
        func block(_ start: UInt64, _ length: UInt64, _ what: String, version2: Bool) throws(ScanError)
            -> (start: UInt64, end: UInt64, version2: Bool)
        {
            let (end, overflow) = start.addingReportingOverflow(length)
            guard !overflow, end <= UInt64(file.size) else {
                throw ScanError(reason: "\(what) at address \(start) of \(length) bytes runs past the end of the file", unsupported: false)
            }
            return (start, end, version2)
        }
        func u8(_ address: UInt64) throws(ScanError) -> UInt8 { try bytes(address, 1)[0] }
        func u16(_ address: UInt64) throws(ScanError) -> UInt16 { UInt16(try little(address, 2)) }
        func u32(_ address: UInt64) throws(ScanError) -> UInt32 { UInt32(try little(address, 4)) }
        func u64(_ address: UInt64) throws(ScanError) -> UInt64 { try little(address, 8) }
        private func little(_ address: UInt64, _ count: Int) throws(ScanError) -> UInt64 {
            var value: UInt64 = 0
            for (index, byte) in try bytes(address, count).enumerated() { value |= UInt64(byte) << (8 * UInt64(index)) }
            return value
        }

        /// Finds the superblock (at byte 0 or past a userblock: 512, 1024, 2048, …), checks that addresses
        /// are 8-byte offsets, and sets `base` to the superblock's base address.
        mutating func checkSuperblock() throws(ScanError) {
            guard let superblock = HDF5Signature.superblockOffset(in: file) else {
                throw ScanError(reason: "no HDF5 signature at byte 0 or at any userblock boundary", unsupported: false)
            }
            base = 0
            let version = try u8(superblock + 8)
            let offsetSize = version < 2 ? try u8(superblock + 13) : try u8(superblock + 9)
            let lengthSize = version < 2 ? try u8(superblock + 14) : try u8(superblock + 10)
            guard offsetSize == 8, lengthSize == 8 else {
                throw ScanError(reason: "file uses \(offsetSize)-byte offsets and \(lengthSize)-byte lengths", unsupported: true)
            }
            // Addresses are relative to the base address, which the library takes to be where it found
            // the superblock (it overrides a stored base address that disagrees), so do the same.
            base = superblock
        }
    }
}

/// Where an HDF5 file's superblock starts: byte 0, or past a userblock at 512, 1024, 2048, … (the
/// places the format allows).
public enum HDF5Signature {
    /// The 8-byte format signature.
    public static let bytes: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]

    /// The superblock's byte offset in a mapped file, or nil when it holds no HDF5 signature.
    public static func superblockOffset(in file: MappedFile) -> UInt64? {
        var offset: UInt64 = 0
        while offset + 8 <= UInt64(file.size) {
            if let view = unsafe file.bytes(at: offset, count: 8), unsafe view.elementsEqual(bytes) { return offset }
            offset = offset == 0 ? 512 : offset * 2
        }
        return nil
    }

    /// Whether the file at `path` is HDF5 (a signature at byte 0 or at a userblock boundary).
    public static func isHDF5(path: String) -> Bool {
        guard let file = try? MappedFile(path: path) else { return false }
        return superblockOffset(in: file) != nil
    }
}
