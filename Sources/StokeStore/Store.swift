import CHDF5
import Foundation

/// Options for opening a store.
public struct StoreReadOptions: Sendable {
    /// Check each chunk's Fletcher-32 checksum while decoding (on by default: it costs one pass over the
    /// stored bytes, and a flipped byte in a chunk stored raw would otherwise reach the model unseen).
    public var verifyChecksums = true
    /// Use the persisted chunk address index and the memory map (false: always go through HDF5).
    public var useChunkIndex = true

    public init(verifyChecksums: Bool = true, useChunkIndex: Bool = true) {
        self.verifyChecksums = verifyChecksums
        self.useChunkIndex = useChunkIndex
    }
}

/// A store opened for reading: any HDF5 file whose root datasets share a sample axis 0, written by Stoke
/// or by other tools (h5py + hdf5plugin with LZ4, gzip, shuffle or no filter; chunked or contiguous).
///
/// Chunk bytes come from a memory map through the chunk address index and are decoded outside the HDF5
/// lock. The index is the file's chunk B-tree, scanned when the store is opened (a persisted
/// `_stoke_index` is used only when it equals the scan); layouts the scanner does not read fall back to
/// H5Dread_chunk. Safe to share between threads.
public final class Store: @unchecked Sendable {
    // Immutable after init. HDF5 calls on `file` are serialized by the library's global lock.
    public let path: String
    public let fields: [Field]
    /// Root string attributes (JSON documents such as `stoke`, `recipe`, `provenance`, and any a caller
    /// recorded with `StoreWriter.setMetadata`).
    public let attributes: [String: String]
    let map: MappedFile
    private let file: H5File
    let options: StoreReadOptions

    public init(path: String, options: StoreReadOptions = StoreReadOptions()) throws(StoreError) {
        self.path = path
        self.options = options
        let context = H5Context(path: path)
        guard FileManager.default.fileExists(atPath: path) else {
            throw .io(path: path, operation: "open", message: "No such file or directory")
        }
        let file = try HDF5.openFile(path, writable: false)
        map = try MappedFile(path: path)
        let root = try HDF5.openGroup(file.id, "/", context)
        // String attributes only (a number h5py added is not Stoke's); a corrupt one is an error.
        let attributes = try HDF5.readStringAttributes(of: root.id, context)
        self.attributes = attributes
        if let schemaText = attributes[StoreSchema.attributeName] {
            guard let schema = StoreSchema.parse(schemaText) else {
                throw .invalidStore(path: path, reason: "root attribute 'stoke' is not a valid store schema")
            }
            guard schema.format_version <= StoreSchema.currentVersion else {
                throw .invalidStore(path: path, reason: "store format version \(schema.format_version) is newer than this Stoke (\(StoreSchema.currentVersion))")
            }
        }
        // A joined store (`stoke join`): its fields read the shards' chunks (JoinedStore.swift).
        let shards = try JoinedStore.openShards(attributes: attributes, path: path, options: options)
        var fields: [Field] = []
        for name in try HDF5.datasetNames(in: root.id, context) {
            let field = try Field(file: file, name: name, map: map, options: options, path: path)
            if let shards {
                fields.append(Field(joined: try JoinedField(name: name, shards: shards, path: path, virtualRows: field.rows), over: field))
            } else {
                fields.append(field)
            }
        }
        guard !fields.isEmpty else { throw .invalidStore(path: path, reason: "no datasets at the root") }
        // Fields share the sample axis: streaming the shortest length would drop samples without a word.
        if let other = fields.first(where: { $0.rows != fields[0].rows }) {
            let lengths = fields.map { "'\(escapedForTerminal($0.name))' \($0.rows)" }.joined(separator: ", ")
            throw .invalidStore(
                path: path,
                reason: "fields differ in length (\(lengths) samples): field '\(escapedForTerminal(other.name))' does not match '\(escapedForTerminal(fields[0].name))'; every field of a store needs one row per sample")
        }
        self.fields = fields
        self.file = file
    }

    /// Samples in the store: the axis-0 length every field shares (checked when the store opens).
    public var sampleCount: Int { fields.map(\.rows).min() ?? 0 }

    /// Whether every field chunked by whole samples has a persisted chunk address index proven current.
    public var hasChunkIndex: Bool { fields.allSatisfy { $0.chunkRows == nil || $0.chunkIndexSource == .persisted } }

    /// Drops this process's mapped pages of the store (for cold-cache measurements; reads fault them
    /// back in).
    public func dropMappedPages() {
        map.dropMappedPages()
        for field in fields { field.joined?.dropMappedPages() }
    }

    /// No readahead around page faults of the store's map (see `MappedFile.adviseRandomAccess`).
    public func adviseRandomAccess() { map.adviseRandomAccess() }

    /// The field with this name.
    public func field(_ name: String) throws(StoreError) -> Field {
        guard let field = fields.first(where: { $0.name == name }) else {
            throw .invalidArgument("\(path): no field named '\(name)' (fields: \(fields.map(\.name).joined(separator: ", ")))")
        }
        return field
    }
}

/// One dataset of a store, readable by rows.
public final class Field: @unchecked Sendable {
    // Immutable after init; the dataset id is only used under HDF5's lock.
    public enum Layout: String, Sendable { case chunked, contiguous, other }

    public let name: String
    public let dtype: DType
    /// Shape of one sample.
    public let sampleShape: [Int]
    /// Samples (length of axis 0).
    public let rows: Int
    public let layout: Layout
    /// Samples per chunk when chunks hold whole samples along axis 0; nil otherwise.
    public let chunkRows: Int?
    /// The full chunk shape as HDF5 records it (empty when not chunked).
    public let chunkShape: [Int]
    /// The filters HDF5 records for the dataset.
    public let filters: [FilterSpec]
    /// Chunk locations: the chunk B-tree scanned at open (equal to the persisted index when that is
    /// current); nil when chunks are read through the library.
    public let chunkIndex: [ChunkLocation]?
    /// Where `chunkIndex` came from (and whether a persisted index was stale).
    public let chunkIndexSource: ChunkIndexSource
    /// One element of the fill value, in the field's dtype: what chunks never written read as.
    public let fillValue: [UInt8]
    let pipeline: ChunkPipeline?
    private let littleEndian: Bool
    private let contiguousOffset: UInt64?
    private let dataset: DatasetBox
    private let map: MappedFile
    private let path: String
    private let options: StoreReadOptions
    /// A joined store's field: the shards' fields it reads (nil for a field of one file).
    let joined: JoinedField?

    /// A joined store's field `virtual` (a virtual dataset), read from the shards through `joined`.
    init(joined: JoinedField, over virtual: Field) {
        let first = joined.parts[0]
        name = virtual.name
        dtype = first.dtype
        sampleShape = first.sampleShape
        rows = joined.rows
        layout = .chunked
        chunkRows = joined.chunkRows
        chunkShape = first.chunkShape
        filters = first.filters
        chunkIndex = joined.chunkIndex
        // The index spans the shards; each shard's own index was proven current when it opened.
        chunkIndexSource = first.chunkIndexSource
        fillValue = first.fillValue
        pipeline = first.pipeline
        littleEndian = first.littleEndian
        contiguousOffset = nil
        dataset = virtual.dataset
        map = virtual.map
        path = virtual.path
        options = virtual.options
        self.joined = joined
    }

    init(file: borrowing H5File, name: String, map: MappedFile, options: StoreReadOptions, path: String) throws(StoreError) {
        let context = H5Context(path: path, object: name)
        self.name = name
        self.map = map
        self.path = path
        self.options = options
        let dataset: H5Dataset
        do throws(StoreError) {
            dataset = try HDF5.openDataset(file.id, name, context)
        } catch {
            // HDF5 2.0 with libver='latest' writes a layout message version 1.10 cannot decode.
            if case .hdf5(_, _, _, let message) = error, message.contains("bad version number") {
                throw .unsupported(
                    path: path,
                    reason: "field '\(escapedForTerminal(name))' uses a newer HDF5 file format than this Stoke's HDF5 library (\(HDF5.libraryVersion)) reads (\(message.split(separator: ";").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "")); h5py with HDF5 2.0 writes it for compressed or checksummed datasets under libver='latest': write the file with libver=('earliest', 'v112') or repack it with h5repack")
            }
            throw error
        }
        let type = try HDF5.type(of: dataset, context)
        guard let (dtype, littleEndian) = HDF5.dtype(of: type) else {
            throw .unsupported(path: path, reason: "field '\(name)' has an element type Stoke does not read")
        }
        self.dtype = dtype
        self.littleEndian = littleEndian || dtype.size == 1
        let dims = try HDF5.dims(try HDF5.space(of: dataset, context), context)
        guard !dims.isEmpty else { throw .unsupported(path: path, reason: "field '\(name)' is a scalar, not a sample axis") }
        rows = Int(dims[0])
        sampleShape = dims.dropFirst().map { Int($0) }
        let creation = try HDF5.creationList(of: dataset, context)
        filters = try HDF5.filters(creation, context)
        switch HDF5.layout(creation) {
        case H5D_CHUNKED:
            layout = .chunked
            let chunk = try HDF5.chunkDims(creation, rank: dims.count, context).map { Int($0) }
            chunkShape = chunk
            chunkRows = Array(chunk.dropFirst()) == sampleShape ? chunk[0] : nil
            contiguousOffset = nil
        case H5D_CONTIGUOUS:
            layout = .contiguous
            chunkShape = []
            chunkRows = nil
            contiguousOffset = HDF5.contiguousOffset(dataset)
        default:
            layout = .other
            chunkShape = []
            chunkRows = nil
            contiguousOffset = nil
        }
        let sampleBytes = sampleShape.reduce(dtype.size, *)
        pipeline = self.littleEndian ? ChunkPipeline(filters: filters, elementSize: dtype.size) : nil
        fillValue = try ChunkIndexBuilder.fillValue(creation: creation, dtype: dtype, context: context)
        if layout == .chunked, let chunkRows, options.useChunkIndex {
            (chunkIndex, chunkIndexSource) = try ChunkIndexBuilder.openIndex(
                file: file, dataset: dataset, map: map, field: name, rows: rows, chunkRows: chunkRows, rank: dims.count,
                context: context)
        } else {
            chunkIndex = nil
            chunkIndexSource = layout == .chunked && chunkRows != nil ? .library(reason: "index not used") : .notApplicable
        }
        if let contiguousOffset, layout == .contiguous {
            guard contiguousOffset <= UInt64(map.size), UInt64(rows * sampleBytes) <= UInt64(map.size) - contiguousOffset else {
                throw .invalidStore(path: path, reason: "field '\(name)': contiguous data at \(contiguousOffset) runs past the end of the file")
            }
        }
        self.dataset = DatasetBox(dataset)
        joined = nil
    }

    /// Bytes per sample.
    public var sampleBytes: Int { sampleShape.reduce(dtype.size, *) }
    /// Decoded size of the field in bytes.
    public var rawBytes: Int { rows * sampleBytes }
    /// Number of chunks along axis 0 (0 when not chunked by whole samples).
    public var chunkCount: Int { chunkRows.map { (rows + $0 - 1) / $0 } ?? 0 }
    /// Decoded bytes of one whole chunk.
    public var chunkBytes: Int { (chunkRows ?? 0) * sampleBytes }
    /// The codec as Stoke names it (`lz4`, `deflate:4`, …) or the filter names for foreign pipelines.
    public var codecName: String {
        if layout != .chunked { return "none" }
        if let pipeline { return pipeline.codec.description }
        return filters.map(\.name).joined(separator: "+")
    }
    /// Whether chunks carry a Fletcher-32 checksum.
    public var hasChecksum: Bool { filters.contains { $0.id == 3 } }
    /// Whether rows are decoded by Stoke outside the HDF5 lock (false: through the library).
    /// Whether `chunkIndex` offsets are in the store's own file (false for a joined store, whose chunks
    /// live in its shard files): only then may a reader prefetch, bounds-check or drop them by offset.
    public var chunksInStoreFile: Bool { joined == nil }

    public var decodesDirectly: Bool {
        switch layout {
        case .chunked: chunkRows != nil && pipeline != nil
        case .contiguous: contiguousOffset != nil && littleEndian
        case .other: false
        }
    }

    /// Rows held by chunk `chunk` (the last may be partial).
    public func rows(inChunk chunk: Int) -> Range<Int> {
        let size = chunkRows ?? rows
        return (chunk * size)..<min(rows, (chunk + 1) * size)
    }

    /// Total stored bytes of all chunks (or the raw size for contiguous data).
    public func storedBytes() throws(StoreError) -> Int {
        if let joined { return try joined.storedBytes() }
        switch layout {
        case .chunked:
            if let chunkIndex { return chunkIndex.reduce(0) { $0 + Int($1.size) } }
            var total = 0
            for chunk in 0..<chunkCount { unsafe total += try withStoredChunk(chunk) { bytes, _ in bytes.count } }
            return total
        default:
            return rawBytes
        }
    }

    // MARK: - Chunks

    /// Calls `body` with chunk `chunk`'s stored bytes and filter mask: a view of the memory map when the
    /// store has an index, else bytes read with H5Dread_chunk. The view must not escape `body`.
    public func withStoredChunk<R>(
        _ chunk: Int, _ body: (UnsafeRawBufferPointer, UInt32) throws(StoreError) -> R
    ) throws(StoreError) -> R {
        guard let chunkRows, chunk >= 0, chunk < chunkCount else {
            throw .invalidArgument("\(path): field '\(name)' has no chunk \(chunk)")
        }
        if let joined { return try unsafe joined.withStoredChunk(chunk, body) }
        if let chunkIndex {
            let location = chunkIndex[chunk]
            if location.size == 0 { return try unsafe body(UnsafeRawBufferPointer(start: nil, count: 0), 0) }
            guard let bytes = unsafe map.bytes(at: location.offset, count: Int(location.size)) else {
                throw .corruptChunk(path: path, field: name, chunk: chunk, reason: "stored bytes lie past the end of the file")
            }
            return try unsafe body(bytes, location.filterMask)
        }
        let offset = [UInt64(chunk * chunkRows)] + sampleShape.map { _ in UInt64(0) }
        let stored = try HDF5.readChunk(dataset.handle, offset: offset, H5Context(path: path, object: name))
        return unsafe try withBytes(of: stored.bytes) { (bytes) throws(StoreError) in try unsafe body(bytes, stored.filterMask) }
    }

    /// Decodes whole chunk `chunk` into `destination` (`chunkBytes` long). `scratch` is reused between calls.
    public func decodeChunk(
        _ chunk: Int, into destination: UnsafeMutableRawBufferPointer, scratch: inout [UInt8]
    ) throws(StoreError) {
        guard let pipeline, chunkRows != nil else {
            throw .unsupported(path: path, reason: "field '\(name)' cannot be decoded chunk by chunk (\(codecName))")
        }
        guard destination.count == chunkBytes else {
            throw .invalidArgument("decodeChunk: buffer of \(destination.count) bytes for a \(chunkBytes)-byte chunk")
        }
        if let joined {
            try unsafe joined.decodeChunk(chunk, into: destination, scratch: &scratch)
            return
        }
        let verify = options.verifyChecksums
        unsafe try withStoredChunk(chunk) { (stored, mask) throws(StoreError) in
            if unsafe stored.isEmpty {
                unsafe fill(destination)
                return
            }
            do throws(ChunkDecodeError) {
                try unsafe pipeline.decode(stored, filterMask: mask, into: destination, verifyChecksum: verify, scratch: &scratch)
            } catch {
                throw .corruptChunk(path: path, field: name, chunk: chunk, reason: error.reason)
            }
        }
    }

    /// Fills `destination` with the fill value (a chunk never written).
    func fill(_ destination: UnsafeMutableRawBufferPointer) {
        guard destination.count > 0 else { return }
        if fillValue.allSatisfy({ $0 == 0 }) {
            unsafe destination.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: destination.count)
            return
        }
        let size = fillValue.count
        for start in stride(from: 0, to: destination.count - size + 1, by: size) {
            for byte in 0..<size { unsafe destination[start + byte] = fillValue[byte] }
        }
    }

    // MARK: - Rows

    /// Reads rows `range` into `destination` (`range.count * sampleBytes` bytes), decoding chunks outside
    /// the HDF5 lock on up to `workers` threads.
    public func readRows(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer, workers: Int = 1) throws(StoreError) {
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw .invalidArgument("\(path): rows \(range) are outside field '\(name)' (\(rows) rows)")
        }
        guard destination.count == range.count * sampleBytes else {
            throw .invalidArgument("readRows: buffer of \(destination.count) bytes for \(range.count) rows of \(sampleBytes) bytes")
        }
        if range.isEmpty { return }
        if layout == .contiguous, let contiguousOffset, littleEndian {
            guard let source = unsafe map.bytes(at: contiguousOffset + UInt64(range.lowerBound * sampleBytes), count: destination.count) else {
                throw .invalidStore(path: path, reason: "field '\(name)': rows \(range) lie past the end of the file")
            }
            unsafe destination.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: source.count)
            return
        }
        guard decodesDirectly, let chunkRows else {
            unsafe try readThroughLibrary(range, into: destination)
            return
        }
        let firstChunk = range.lowerBound / chunkRows
        let lastChunk = (range.upperBound - 1) / chunkRows
        let target = unsafe SendableBuffer(destination)
        try parallelFor(count: lastChunk - firstChunk + 1, workers: workers) { (offset, scratch) throws(StoreError) in
            let chunk = firstChunk + offset
            let chunkRange = self.rows(inChunk: chunk)
            let wanted = max(chunkRange.lowerBound, range.lowerBound)..<min(chunkRange.upperBound, range.upperBound)
            let targetStart = (wanted.lowerBound - range.lowerBound) * self.sampleBytes
            if wanted.count == chunkRows {
                let slice = unsafe UnsafeMutableRawBufferPointer(rebasing: target.buffer[targetStart..<(targetStart + self.chunkBytes)])
                try unsafe self.decodeChunk(chunk, into: slice, scratch: &scratch.other)
            } else {
                if scratch.chunk.count != self.chunkBytes { scratch.chunk = [UInt8](repeating: 0, count: self.chunkBytes) }
                var chunkBuffer = scratch.chunk
                unsafe try withMutableBytes(of: &chunkBuffer) { (bytes) throws(StoreError) in
                    try unsafe self.decodeChunk(chunk, into: bytes, scratch: &scratch.other)
                    let sourceStart = (wanted.lowerBound - chunkRange.lowerBound) * self.sampleBytes
                    unsafe target.buffer.baseAddress!.advanced(by: targetStart).copyMemory(
                        from: bytes.baseAddress!.advanced(by: sourceStart), byteCount: wanted.count * self.sampleBytes)
                }
                scratch.chunk = chunkBuffer
            }
        }
    }

    /// Reads the rows at `indices` (any order, repeats allowed) into `destination`, decoding each chunk once.
    public func readRows(indices: [Int], into destination: UnsafeMutableRawBufferPointer) throws(StoreError) {
        guard destination.count == indices.count * sampleBytes else {
            throw .invalidArgument("readRows: buffer of \(destination.count) bytes for \(indices.count) rows of \(sampleBytes) bytes")
        }
        if let bad = indices.first(where: { $0 < 0 || $0 >= rows }) {
            throw .invalidArgument("\(path): row \(bad) is outside field '\(name)' (\(rows) rows)")
        }
        let groupSize = chunkRows ?? 1
        var byChunk: [Int: [(row: Int, slot: Int)]] = [:]
        for (slot, row) in indices.enumerated() { byChunk[row / groupSize, default: []].append((row, slot)) }
        var chunkBuffer = [UInt8](repeating: 0, count: decodesDirectly && chunkRows != nil ? chunkBytes : sampleBytes)
        var scratch: [UInt8] = []
        for chunk in byChunk.keys.sorted() {
            let wanted = byChunk[chunk]!
            if decodesDirectly, chunkRows != nil {
                unsafe try withMutableBytes(of: &chunkBuffer) { (bytes) throws(StoreError) in
                    try unsafe decodeChunk(chunk, into: bytes, scratch: &scratch)
                    for (row, slot) in wanted {
                        unsafe destination.baseAddress!.advanced(by: slot * sampleBytes).copyMemory(
                            from: bytes.baseAddress!.advanced(by: (row - chunk * groupSize) * sampleBytes), byteCount: sampleBytes)
                    }
                }
            } else {
                for (row, slot) in wanted {
                    let slice = unsafe UnsafeMutableRawBufferPointer(rebasing: destination[(slot * sampleBytes)..<((slot + 1) * sampleBytes)])
                    try unsafe readRows(row..<(row + 1), into: slice)
                }
            }
        }
    }

    /// Reads rows as typed values. `T` must match the field's element size.
    public func read<T: BitwiseCopyable>(_ range: Range<Int>, as: T.Type = T.self, workers: Int = 1) throws(StoreError) -> [T] {
        guard MemoryLayout<T>.stride == dtype.size else {
            throw .invalidArgument("field '\(name)' holds \(dtype.rawValue); \(T.self) has \(MemoryLayout<T>.stride) bytes")
        }
        let count = range.count * sampleBytes / dtype.size
        var values: [T]
        var result: StoreError?
        values = unsafe [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(StoreError) {
                try unsafe readRows(range, into: UnsafeMutableRawBufferPointer(buffer), workers: workers)
                initialized = count
            } catch {
                result = error
                unsafe UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
                initialized = count
            }
        }
        if let result { throw result }
        return values
    }

    private func readThroughLibrary(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws(StoreError) {
        let context = H5Context(path: path, object: name)
        let memoryType = try HDF5.type(for: dtype, context)
        try unsafe HDF5.readRows(
            dataset.handle, memoryType: memoryType, start: UInt64(range.lowerBound), count: UInt64(range.count),
            sampleDims: sampleShape.map { UInt64($0) }, into: destination, context)
    }

    // MARK: - Verification

    /// Checks every chunk as far as Stoke can (see `check()`) and returns the chunks checked; throws on
    /// the first corrupt chunk or wrong index entry.
    public func verify() throws(StoreError) -> Int { try check().chunks }

    /// Checks every chunk and says exactly what was checked: decoded with their Fletcher-32 checksums
    /// matched, checksums matched without decoding (a filter Stoke cannot decode lies under the
    /// checksum), decoded with no checksum to compare, or nothing. When the store has an index, each entry
    /// is also compared with the bytes the library reads for that chunk. Chunks never written (h5py leaves
    /// them unallocated; they read as the fill value) are counted, not called corrupt.
    /// - Throws: `StoreError.corruptChunk` / `.badIndex` for the first chunk that fails.
    public func check() throws(StoreError) -> FieldCheck {
        if let joined { return try joined.check(field: name) }
        let filterNames = filters.map { "\($0.name.isEmpty ? "filter" : $0.name) (id \($0.id))" }
        guard layout == .chunked else {
            if layout == .contiguous {
                // Reading to the end proves the bytes are there; contiguous data has no checksum.
                var buffer = [UInt8](repeating: 0, count: max(min(rawBytes, 1 << 20), sampleBytes))
                var row = 0
                let step = max(1, buffer.count / max(sampleBytes, 1))
                while row < rows {
                    let range = row..<min(rows, row + step)
                    unsafe try withMutableBytes(of: &buffer) { (bytes) throws(StoreError) in
                        try unsafe readRows(range, into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<(range.count * sampleBytes)]))
                    }
                    row = range.upperBound
                }
            }
            return FieldCheck(
                field: name, level: .nothing, chunks: 0, unwrittenChunks: 0,
                note: "\(layout.rawValue) layout: HDF5 keeps no checksum for it, so changed bytes cannot be detected")
        }
        let context = H5Context(path: path, object: name)
        guard let chunkRows else {
            // Chunks that split samples: the library decodes them (and checks Fletcher-32 when present).
            try readAllThroughLibrary()
            return FieldCheck(
                field: name, level: hasChecksum ? .decodedAndChecksums : .decodedOnly, chunks: 0, unwrittenChunks: 0,
                note: hasChecksum ? "read through the HDF5 library, which checked every chunk's Fletcher-32 checksum"
                    : "read through the HDF5 library; no checksum recorded, so changed values cannot be detected")
        }
        // Fletcher-32 applied last (outermost) can be checked on the stored bytes without decoding.
        let outerChecksum = filters.last?.id == 3
        let undecodable = filters.filter { [1, 2, 3, LZ4Chunk.filterID].contains($0.id) == false }
        var decoded = [UInt8](repeating: 0, count: chunkBytes)
        var scratch: [UInt8] = []
        var checked = 0, unwritten = 0, checksummed = 0
        for chunk in 0..<chunkCount {
            // Never written (the B-tree has no entry): reads as the fill value, nothing stored to check.
            if let chunkIndex, chunkIndex[chunk].size == 0 {
                unwritten += 1
                continue
            }
            let offset = [UInt64(chunk * chunkRows)] + sampleShape.map { _ in UInt64(0) }
            if try HDF5.chunkStorageSize(dataset.handle, offset: offset, context) == 0 {
                // Never written: the library reads the dataset's fill value there.
                if let chunkIndex, chunkIndex[chunk].size != 0 {
                    throw .badIndex(path: path, field: name, reason: "chunk \(chunk) was never written, but the index has an entry of \(chunkIndex[chunk].size) bytes for it")
                }
                unwritten += 1
                continue
            }
            let library: (bytes: [UInt8], filterMask: UInt32)
            do {
                library = try HDF5.readChunk(dataset.handle, offset: offset, context)
            } catch {
                throw .corruptChunk(path: path, field: name, chunk: chunk, reason: "the library cannot read it: \(error)")
            }
            if let chunkIndex {
                let location = chunkIndex[chunk]
                let matches = unsafe try withStoredChunk(chunk) { (bytes, mask) throws(StoreError) in
                    unsafe mask == library.filterMask && bytes.elementsEqual(library.bytes)
                }
                if !matches {
                    throw .badIndex(path: path, field: name, reason: "chunk \(chunk): entry (offset \(location.offset), \(location.size) bytes) does not hold the chunk the library reads (\(library.bytes.count) bytes)")
                }
            }
            checked += 1
            if let pipeline {
                unsafe try withMutableBytes(of: &decoded) { (target) throws(StoreError) in
                    unsafe try withBytes(of: library.bytes) { (stored) throws(StoreError) in
                        if unsafe stored.isEmpty { return }
                        do throws(ChunkDecodeError) {
                            try unsafe pipeline.decode(stored, filterMask: library.filterMask, into: target, verifyChecksum: true, scratch: &scratch)
                        } catch {
                            throw .corruptChunk(path: path, field: name, chunk: chunk, reason: error.reason)
                        }
                    }
                }
                if let stage = filters.firstIndex(where: { $0.id == 3 }), library.filterMask & (1 << UInt32(stage)) == 0 {
                    checksummed += 1
                }
            } else if outerChecksum, library.filterMask & (1 << UInt32(filters.count - 1)) == 0 {
                guard library.bytes.count >= 4 else {
                    throw .corruptChunk(path: path, field: name, chunk: chunk, reason: "Fletcher-32: \(library.bytes.count) bytes, fewer than the checksum")
                }
                let recorded = unsafe library.bytes.withUnsafeBytes { unsafe UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $0.count - 4, as: UInt32.self)) }
                let computed = unsafe library.bytes.withUnsafeBytes { unsafe fletcher32(UnsafeRawBufferPointer(rebasing: $0[0..<($0.count - 4)])) }
                if recorded != computed && recorded != computed.byteSwapped {
                    throw .corruptChunk(path: path, field: name, chunk: chunk, reason: "Fletcher-32 checksum mismatch (stored \(hex(recorded)), computed \(hex(computed)))")
                }
                checksummed += 1
            }
        }
        let unwrittenNote = unwritten == 0 ? "" : "; \(unwritten) chunk\(unwritten == 1 ? " was" : "s were") never written and read as the fill value"
        if let pipeline {
            if pipeline.hasChecksum && checksummed == checked {
                return FieldCheck(field: name, level: .decodedAndChecksums, chunks: checked, unwrittenChunks: unwritten,
                                  note: "decoded (\(codecName)) and matched every chunk's Fletcher-32 checksum" + unwrittenNote)
            }
            let why = pipeline.hasChecksum ? "\(checked - checksummed) chunk(s) were written without their checksum (filter mask)" : "no checksum recorded"
            return FieldCheck(field: name, level: .decodedOnly, chunks: checked, unwrittenChunks: unwritten,
                              note: "decoded (\(codecName)); \(why), so changed values cannot be detected" + unwrittenNote)
        }
        let foreign = undecodable.map { "\($0.name.isEmpty ? "filter" : $0.name) (id \($0.id))" }.joined(separator: ", ")
        if outerChecksum && checksummed == checked {
            return FieldCheck(field: name, level: .checksums, chunks: checked, unwrittenChunks: unwritten,
                              note: "matched every chunk's Fletcher-32 checksum; not decoded: Stoke does not decode \(foreign)" + unwrittenNote)
        }
        return FieldCheck(field: name, level: .nothing, chunks: checked, unwrittenChunks: unwritten,
                          note: "nothing checked: Stoke does not decode \(foreign) and no Fletcher-32 checksum lies outside it (filters: \(filterNames.joined(separator: ", ")))" + unwrittenNote)
    }

    /// Reads every row through the library in bounded slices (for chunks that split samples).
    private func readAllThroughLibrary() throws(StoreError) {
        let step = max(1, (4 << 20) / max(sampleBytes, 1))
        var buffer = [UInt8](repeating: 0, count: min(rows, step) * sampleBytes)
        var row = 0
        while row < rows {
            let range = row..<min(rows, row + step)
            unsafe try withMutableBytes(of: &buffer) { (bytes) throws(StoreError) in
                try unsafe readThroughLibrary(range, into: UnsafeMutableRawBufferPointer(rebasing: bytes[0..<(range.count * sampleBytes)]))
            }
            row = range.upperBound
        }
    }
}

/// What `Field.check()` verified for one field.
public struct FieldCheck: Sendable, Equatable {
    public enum Level: String, Sendable, Equatable {
        /// Every written chunk was decoded and its Fletcher-32 checksum matched.
        case decodedAndChecksums = "decoded+checksum"
        /// Every written chunk's Fletcher-32 checksum matched; the data was not decoded (a foreign filter).
        case checksums = "checksum-only"
        /// Chunks were decoded, but there is no checksum to compare: changed values go unnoticed.
        case decodedOnly = "decoded-no-checksum"
        /// Nothing could be checked (no checksum, and nothing Stoke decodes with a checksum around it).
        case nothing = "nothing"
    }
    public var field: String
    public var level: Level
    /// Chunks read and checked (unwritten chunks excluded).
    public var chunks: Int
    /// Chunks the file never wrote (they read as the fill value).
    public var unwrittenChunks: Int
    /// One line saying what was and was not checked, and why.
    public var note: String
    /// Whether the field's content was verified against checksums.
    public var verified: Bool { level == .decodedAndChecksums || level == .checksums }
}

/// A destination buffer shared by decode workers that write disjoint ranges of it.
@safe struct SendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { unsafe self.buffer = buffer }
}

extension Field {
    /// Decodes stored chunk bytes (as `withStoredChunk` yields them) into `destination` (`chunkBytes`
    /// long), checking checksums when `verifyChecksum` is set. For measuring decode alone.
    public func decode(
        stored: UnsafeRawBufferPointer, filterMask: UInt32, chunk: Int, into destination: UnsafeMutableRawBufferPointer,
        verifyChecksum: Bool = false, scratch: inout [UInt8]
    ) throws(StoreError) {
        guard let pipeline else {
            throw .unsupported(path: "", reason: "field '\(name)' cannot be decoded chunk by chunk (\(codecName))")
        }
        if unsafe stored.isEmpty { return }
        do throws(ChunkDecodeError) {
            try unsafe pipeline.decode(stored, filterMask: filterMask, into: destination, verifyChecksum: verifyChecksum, scratch: &scratch)
        } catch {
            throw .corruptChunk(path: "", field: name, chunk: chunk, reason: error.reason)
        }
    }
}

/// Encodes and decodes single chunks with a codec, outside any store: for choosing a codec by
/// measurement (`stoke bench codecs`).
public struct ChunkCodec: Sendable {
    let pipeline: ChunkPipeline
    public let codec: Codec

    /// - Parameter elementSize: bytes per element (the shuffle's granularity).
    public init(codec: Codec, checksum: Bool = false, elementSize: Int) {
        self.codec = codec
        pipeline = ChunkPipeline(codec: codec, checksum: checksum, elementSize: elementSize)
    }

    /// Encodes `raw` into `output` (resized to the stored bytes); `scratch` is reused between calls.
    public func encode(_ raw: UnsafeRawBufferPointer, into output: inout [UInt8], scratch: inout [UInt8]) {
        let count = unsafe pipeline.encode(raw, into: &output, scratch: &scratch)
        output.removeLast(output.count - count)
    }

    /// Decodes `stored` into `destination`, which must have the raw chunk's size.
    public func decode(_ stored: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, scratch: inout [UInt8]) throws(StoreError) {
        do throws(ChunkDecodeError) {
            try unsafe pipeline.decode(stored, filterMask: 0, into: destination, verifyChecksum: false, scratch: &scratch)
        } catch {
            throw .invalidArgument("decode failed: \(error.reason)")
        }
    }
}
