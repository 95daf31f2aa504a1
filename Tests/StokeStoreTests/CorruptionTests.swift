import Foundation
import StokeStore
import Testing

/// Damaged files give one clear error naming the file, field and chunk; never a crash.
@Suite("corrupt and truncated stores")
struct CorruptionTests {
    /// Writes a small LZ4 store and returns its path and the first chunk's location.
    func makeStore(_ directory: TemporaryDirectory, codec: Codec = .lz4) throws -> (String, ChunkLocation) {
        let path = directory.file("store.h5")
        var options = StoreWriteOptions()
        options.codec = codec
        options.chunking = .samples(10)
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "pixels", dtype: .u8, sampleShape: [32, 32])], options: options)
        try writer.append("pixels", values: sampleBytes(count: 45 * 1024))
        try writer.finish()
        let location = try #require(try Store(path: path).field("pixels").chunkIndex?[1])
        return (path, location)
    }

    func patch(_ path: String, at offset: UInt64, _ edit: (inout [UInt8]) -> Void) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var slice = Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + 16)])
        edit(&slice)
        bytes.replaceSubrange(Int(offset)..<(Int(offset) + slice.count), with: slice)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func readAll(_ path: String, verify: Bool) throws {
        let store = try Store(path: path, options: StoreReadOptions(verifyChecksums: verify))
        let field = try store.field("pixels")
        var buffer = [UInt8](repeating: 0, count: field.rawBytes)
        try buffer.withUnsafeMutableBytes { try field.readRows(0..<field.rows, into: $0) }
    }

    @Test func truncatedFile() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let (path, _) = try makeStore(directory)
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        truncate(path, off_t(size / 2))
        let error = #expect(throws: StoreError.self) { try readAll(path, verify: false) }
        #expect(error?.description.contains(path) == true)
    }

    @Test func zeroedHeader() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let (path, _) = try makeStore(directory)
        try patch(path, at: 0) { $0 = [UInt8](repeating: 0, count: $0.count) }
        let error = #expect(throws: StoreError.self) { try Store(path: path) }
        #expect(error?.description.contains("H5Fopen") == true)
    }

    @Test func flippedSizeFieldsNameFieldAndChunk() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        // The 8-byte decoded size, the block size, and the first block's stored size.
        // A larger block size than the chunk is legal (the plugins clamp it), so the block size shrinks.
        for (offset, byte, flip) in [(0, 3, UInt8(0x40)), (8, 2, 0x20), (12, 0, 0x40)] {
            let (path, location) = try makeStore(directory)
            try patch(path, at: location.offset + UInt64(offset)) { $0[byte] ^= flip }
            let error = #expect(throws: StoreError.self) { try readAll(path, verify: false) }
            #expect(error?.description.contains("field 'pixels' chunk 1") == true, "\(String(describing: error))")
            try FileManager.default.removeItem(atPath: path)
        }
    }

    @Test func flippedPayloadByteIsCaughtByTheChecksum() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let (path, location) = try makeStore(directory, codec: .none)
        try patch(path, at: location.offset + 100) { $0[0] ^= 0x01 }
        let error = #expect(throws: StoreError.self) { try readAll(path, verify: true) }
        #expect(error?.description.contains("Fletcher-32") == true, "\(String(describing: error))")
        let verifyError = #expect(throws: StoreError.self) { try Store(path: path).field("pixels").verify() }
        #expect(verifyError?.description.contains("chunk 1") == true)
    }

    @Test func chunkIndexPointingPastEndOfFile() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let (path, location) = try makeStore(directory)
        // Find the persisted entry (offset, size, mask as little-endian u64) and move it past the end.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let needle = withUnsafeBytes(of: location.offset.littleEndian) { Array($0) } + withUnsafeBytes(of: location.size.littleEndian) { Array($0) }
        let start = try #require((0...(bytes.count - needle.count)).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) })
        bytes.replaceSubrange(start..<(start + 8), with: withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { Array($0) })
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        // The persisted index no longer matches the chunk B-tree: it is reported stale and not used, and
        // reads still return the stored samples.
        let store = try Store(path: path)
        #expect(try store.field("pixels").chunkIndexSource == .stale)
        #expect(try store.field("pixels").chunkIndex?[1] == location)
        _ = try store.field("pixels").verify()
    }

    @Test func hostileLZ4BytesNeverCrash() throws {
        // Random and adversarial chunk bytes through the decoder: errors only, never out-of-bounds.
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let (path, location) = try makeStore(directory, codec: .lz4)
        for seed in 1...40 {
            let copy = directory.file("hostile-\(seed).h5")
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            let noise = sampleBytes(count: 16, seed: UInt64(seed), smooth: false)
            try patch(copy, at: location.offset + UInt64(seed % 24)) { bytes in
                for index in bytes.indices { bytes[index] ^= noise[index] }
            }
            do { try readAll(copy, verify: false) } catch let error as StoreError {
                #expect(error.description.contains(copy))
            }
        }
    }
}

@Test("a writer that fails or is abandoned leaves nothing at the final path")
func abandonedWriteLeavesNothing() throws {
    let directory = TemporaryDirectory()
    defer { directory.cleanup() }
    let path = directory.file("partial.h5")
    do {
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "a", dtype: .u8, sampleShape: [4]), FieldSpec(name: "b", dtype: .u8, sampleShape: [])])
        try writer.append("a", values: [UInt8](repeating: 1, count: 40))
        try writer.append("b", values: [UInt8](repeating: 1, count: 9))
        #expect(throws: StoreError.self) { try writer.finish() }  // 10 vs 9 samples
    }
    #expect(!FileManager.default.fileExists(atPath: path))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    do {
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "a", dtype: .u8, sampleShape: [4])])
        try writer.append("a", values: [UInt8](repeating: 1, count: 40))
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    #expect(throws: StoreError.self) { try StoreWriter(path: path, fields: []) }
    #expect(throws: StoreError.self) { try StoreWriter(path: path, fields: [FieldSpec(name: "a/b", dtype: .u8, sampleShape: [])]) }
}

@Test("the B-tree scan agrees with the library's H5Dget_chunk_info for many chunks")
func btreeScanMatchesLibrary() throws {
    let directory = TemporaryDirectory()
    defer { directory.cleanup() }
    let path = directory.file("many.h5")
    var options = StoreWriteOptions()
    options.chunking = .samples(1)
    let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "x", dtype: .u8, sampleShape: [8])], options: options)
    try writer.append("x", values: sampleBytes(count: 8 * 3000))  // 3000 chunks: a B-tree several levels deep
    try writer.finish()
    let field = try Store(path: path, options: StoreReadOptions(verifyChecksums: true)).field("x")
    #expect(field.chunkIndex?.count == 3000)
    #expect(try field.verify() == 3000)  // compares every entry with the library's H5Dread_chunk bytes
}
