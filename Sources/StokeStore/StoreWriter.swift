import CHDF5
import CStokeKernels
import Foundation

/// Options for writing a store.
public struct StoreWriteOptions: Sendable {
    public var codec: Codec = .lz4
    /// Samples per chunk; by default about 2 MiB of whole samples.
    public var chunking: Chunking = .bytes(2 << 20)
    /// Record a Fletcher-32 checksum per chunk (HDF5 filter 3, checked by h5py and h5dump too).
    public var checksum = true
    /// Compression threads (at most `maximumWorkers` are started).
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// The most compression threads a writer starts.
    public static let maximumWorkers = 256
    /// LZ4 block size in bytes inside a chunk (0: one block per chunk, as hdf5plugin's default).
    public var lz4BlockBytes = 0
    /// Replace a store already at the path (atomically, when the new one is complete).
    public var overwrite = false

    public init() {}
}

/// What a finished write produced.
public struct StoreSummary: Sendable, Equatable {
    public var path: String
    public var samples: Int
    /// Per field: raw (decoded) bytes and stored bytes.
    public var fields: [(name: String, rawBytes: Int, storedBytes: Int, chunks: Int)]

    public static func == (lhs: StoreSummary, rhs: StoreSummary) -> Bool {
        lhs.path == rhs.path && lhs.samples == rhs.samples && lhs.fields.elementsEqual(rhs.fields) { $0 == $1 }
    }
}

/// Writes a store: samples are appended per field in batches, chunks are compressed on worker threads
/// and written in order with H5Dwrite_chunk (the library's lock is held only for the write). Memory is
/// bounded by a fixed number of chunks in flight. The file is written under a temporary name and renamed
/// to `path` only by `finish()`; an error, an abandoned writer or a killed process leaves nothing there.
///
/// Not thread-safe: one thread appends; the parallelism is inside.
public final class StoreWriter {
    public let path: String
    let temporaryPath: String
    private let options: StoreWriteOptions
    private var file: H5File?
    private var fields: [FieldWriter]
    private let compressor: ChunkCompressor
    private var metadata: [(String, String)] = []
    private var finished = false
    private var nextSequence = 0
    private var nextToWrite = 0
    /// Bytes written since the kernel was last asked to start writing dirty pages back.
    private var unflushedBytes = 0
    private static let writebackStride = 32 << 20

    /// Creates the temporary file and the fields' datasets.
    /// - Throws: `StoreError.invalidArgument` for bad field specs or an existing store without `overwrite`.
    public init(path: String, fields specs: [FieldSpec], options: StoreWriteOptions = StoreWriteOptions()) throws(StoreError) {
        guard !specs.isEmpty else { throw .invalidArgument("a store needs at least one field") }
        var seen = Set<String>()
        for spec in specs {
            guard !spec.name.isEmpty, !spec.name.contains("/"), !spec.name.hasPrefix("_stoke"), spec.name != "." else {
                throw .invalidArgument("field name '\(spec.name)' is not allowed (empty, '/', or reserved '_stoke' prefix)")
            }
            guard seen.insert(spec.name).inserted else { throw .invalidArgument("field '\(spec.name)' is given twice") }
            guard spec.sampleShape.allSatisfy({ $0 > 0 }) else {
                throw .invalidArgument("field '\(spec.name)': sample shape \(spec.sampleShape) has a zero or negative dimension")
            }
        }
        if case .deflate(let level) = options.codec, !(1...9).contains(level) {
            throw .invalidArgument("deflate level \(level) is outside 1–9")
        }
        if !options.overwrite && FileManager.default.fileExists(atPath: path) {
            throw .invalidArgument("\(path) already exists (use --force / overwrite to replace it)")
        }
        self.path = path
        self.options = options
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        temporaryPath = (directory.isEmpty ? "" : directory + "/") + "\(base).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        PartialFiles.register(temporaryPath)
        let file: H5File
        do throws(StoreError) {
            file = try HDF5.createFile(temporaryPath)
        } catch {
            PartialFiles.unregister(temporaryPath)
            throw error
        }
        var writers: [FieldWriter] = []
        do throws(StoreError) {
            for spec in specs {
                writers.append(try FieldWriter(file: file, spec: spec, options: options, path: path))
            }
        } catch {
            _ = file.close()
            unsafe unlink(temporaryPath)
            PartialFiles.unregister(temporaryPath)
            throw error
        }
        self.file = consume file
        self.fields = writers
        // Threads beyond 256 only cost memory and start-up time (issue 19 r23: 100000 ran for minutes).
        let workers = min(max(1, options.workers), StoreWriteOptions.maximumWorkers)
        compressor = ChunkCompressor(workers: workers, inFlightLimit: max(2, workers * 2 + 2))
    }

    deinit {
        if !finished { abandon() }
    }

    /// The fields in creation order.
    public var fieldSpecs: [FieldSpec] { fields.map(\.spec) }

    /// Appends whole samples to a field; `bytes.count` must be a multiple of the field's sample size.
    public func append(_ field: String, bytes: UnsafeRawBufferPointer) throws(StoreError) {
        guard !finished else { throw .invalidArgument("\(path): append after finish") }
        guard let index = fields.firstIndex(where: { $0.spec.name == field }) else {
            throw .invalidArgument("\(path): no field named '\(field)'")
        }
        let writer = fields[index]
        guard bytes.count % writer.spec.sampleBytes == 0 else {
            throw .invalidArgument(
                "field '\(field)': \(bytes.count) bytes is not a whole number of \(writer.spec.sampleBytes)-byte samples")
        }
        var consumed = 0
        while consumed < bytes.count {
            let taken = unsafe writer.stage(UnsafeRawBufferPointer(rebasing: bytes[consumed...]))
            consumed += taken
            if writer.stagedFull {
                try submit(fieldIndex: index)
            }
        }
    }

    /// Appends whole samples given as typed values (their count must fill whole samples).
    public func append<T: BitwiseCopyable>(_ field: String, values: [T]) throws(StoreError) {
        unsafe try withBytes(of: values) { (bytes) throws(StoreError) in try unsafe append(field, bytes: bytes) }
    }

    /// Records a JSON document as a root attribute (recipe, provenance…); written by `finish()`.
    public func setMetadata(_ name: String, json: String) throws(StoreError) {
        guard name != StoreSchema.attributeName else { throw .invalidArgument("attribute '\(name)' is reserved") }
        metadata.removeAll { $0.0 == name }
        metadata.append((name, json))
    }

    /// Flushes the last chunks, writes the schema and the chunk address index, and atomically moves the
    /// store to `path`. On error the temporary file is removed and nothing appears at `path`.
    @discardableResult
    public func finish() throws(StoreError) -> StoreSummary {
        try StoreWriter.finishTogether([self])[0]
    }

    /// Finishes several writers as one output (a train and a validation store): every store is completed
    /// and synced under its temporary name first, then all are renamed into place. If any step fails, no
    /// path changes: stores already renamed are taken back and the files they replaced are restored, and
    /// every temporary file is removed.
    @discardableResult
    public static func finishTogether(_ writers: [StoreWriter]) throws(StoreError) -> [StoreSummary] {
        var summaries: [StoreSummary] = []
        do throws(StoreError) {
            for writer in writers { summaries.append(try writer.prepare()) }
        } catch {
            for writer in writers { writer.abandon() }
            throw error
        }
        // An interrupt waits for the renames (or their rollback) to end.
        PartialFiles.commitLock.lock()
        defer { PartialFiles.commitLock.unlock() }
        // Keep each file being replaced under a second name (a hard link) until all renames succeeded.
        var replaced: [(path: String, backup: String?)] = []
        func rollBack() {
            for (path, backup) in replaced.reversed() {
                if let backup {
                    unsafe rename(backup, path)
                    PartialFiles.unregister(backup)
                } else {
                    unsafe unlink(path)
                }
            }
            for writer in writers { writer.abandon() }
        }
        for writer in writers {
            var backup: String?
            var status = stat()
            if unsafe lstat(writer.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG {
                let name = writer.path + ".replaced-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                PartialFiles.register(name)
                if unsafe link(writer.path, name) == 0 { backup = name } else { PartialFiles.unregister(name) }
            }
            guard unsafe rename(writer.temporaryPath, writer.path) == 0 else {
                let error = StoreError.io(path: writer.path, operation: "rename from \(writer.temporaryPath)", message: systemError())
                if let backup {
                    unsafe unlink(backup)
                    PartialFiles.unregister(backup)
                }
                rollBack()
                throw error
            }
            PartialFiles.unregister(writer.temporaryPath)
            replaced.append((writer.path, backup))
        }
        for (_, backup) in replaced {
            if let backup {
                unsafe unlink(backup)
                PartialFiles.unregister(backup)
            }
        }
        for writer in writers { writer.finished = true }
        return summaries
    }

    /// Completes the store under its temporary name (chunks, schema, index, fsync); `finishTogether`
    /// renames it. On error the temporary file is removed.
    private func prepare() throws(StoreError) -> StoreSummary {
        guard !finished else { throw .invalidArgument("\(path): finish called twice") }
        do throws(StoreError) {
            for index in fields.indices where fields[index].stagedRows > 0 {
                try submit(fieldIndex: index)
            }
            try drain(all: true)
            let counts = fields.map(\.rowsWritten)
            if let mismatch = fields.first(where: { $0.rowsWritten != counts[0] }) {
                throw StoreError.invalidArgument(
                    "fields differ in sample count: '\(fields[0].spec.name)' has \(counts[0]), '\(mismatch.spec.name)' has \(mismatch.rowsWritten)")
            }
            return try complete(samples: counts[0])
        } catch {
            abandon()
            throw error
        }
    }

    private func complete(samples: Int) throws(StoreError) -> StoreSummary {
        compressor.shutdown()
        guard let file = file.take() else { throw .invalidArgument("\(path): store already closed") }
        // Errors name the output path: the temporary file is removed when they are thrown.
        let context = H5Context(path: path)
        let schema = StoreSchema(
            samples: samples,
            fields: fields.map {
                .init(name: $0.spec.name, dtype: $0.spec.dtype, shape: $0.spec.sampleShape, codec: options.codec.description,
                      chunk_samples: $0.chunkRows, checksum: options.checksum ? "fletcher32" : "none")
            },
            created: ISO8601DateFormatter().string(from: Date()), stoke_version: StokeVersion.string)
        let root = try HDF5.openGroup(file.id, "/", context)
        try HDF5.writeStringAttribute(root.id, StoreSchema.attributeName, schema.json(), context)
        for (name, json) in metadata { try HDF5.writeStringAttribute(root.id, name, json, context) }
        try HDF5.flush(file, context)

        // The index comes from the file's own chunk B-tree and must agree with what was written.
        let map = try MappedFile(path: temporaryPath)
        var indices: [[ChunkLocation]] = []
        for writer in fields {
            guard let box = writer.dataset else { throw StoreError.invalidArgument("\(path): field closed early") }
            let locations = try ChunkIndexBuilder.locations(
                dataset: box.handle, map: map, rows: writer.rowsWritten, chunkRows: writer.chunkRows,
                rank: writer.spec.sampleShape.count + 1, context: H5Context(path: path, object: writer.spec.name))
            for (number, location) in locations.enumerated() where location.size != UInt64(writer.storedSizes[number]) {
                throw StoreError.badIndex(
                    path: path, field: writer.spec.name,
                    reason: "chunk \(number): B-tree says \(location.size) stored bytes, \(writer.storedSizes[number]) were written")
            }
            indices.append(locations)
        }
        try ChunkIndexBuilder.write(indices: indices, names: fields.map(\.spec.name), file: file, context: context)
        let summary = StoreSummary(
            path: path, samples: samples,
            fields: fields.map { ($0.spec.name, $0.rowsWritten * $0.spec.sampleBytes, $0.storedSizes.reduce(0, +), $0.storedSizes.count) })
        for writer in fields { writer.closeDataset() }
        _ = consume root
        try HDF5.close(file, context)
        try syncFile(temporaryPath)
        return summary
    }

    /// Starts writing dirty pages back without waiting (sync_file_range), so the fsync before the rename
    /// finds little left to do: disk writes overlap compression instead of following it.
    private func startWriteback() {
        guard let fileID = file?.id, let descriptor = HDF5.descriptor(ofFile: fileID) else { return }
        _ = stoke_start_writeback(descriptor)
    }

    /// Removes the temporary file; the store never appears at `path`.
    private func abandon() {
        compressor.shutdown()
        for writer in fields { writer.closeDataset() }
        if let file = file.take() { _ = file.close() }
        unsafe unlink(temporaryPath)
        PartialFiles.unregister(temporaryPath)
        finished = true
    }

    // MARK: - Ordered parallel compression

    private func submit(fieldIndex: Int) throws(StoreError) {
        let writer = fields[fieldIndex]
        let job = ChunkJob(
            sequence: nextSequence, field: fieldIndex, chunk: writer.chunksSubmitted, rows: writer.stagedRows,
            raw: writer.takeStaged(replacement: compressor.spare()), pipeline: writer.pipeline)
        nextSequence += 1
        while !compressor.trySubmit(job) {
            try writeReady(wait: true)
        }
        try writeReady(wait: false)
    }

    private func drain(all: Bool) throws(StoreError) {
        while nextToWrite < nextSequence {
            try writeReady(wait: true)
        }
    }

    /// Writes completed chunks in submission order; with `wait`, blocks until at least one is written.
    private func writeReady(wait: Bool) throws(StoreError) {
        var wrote = false
        while nextToWrite < nextSequence {
            guard let result = compressor.takeResult(sequence: nextToWrite, wait: wait && !wrote) else { return }
            let writer = fields[result.field]
            unsafe try withBytes(of: result.stored) { (bytes) throws(StoreError) in
                try unsafe writer.write(
                    chunk: result.chunk, rows: result.rows, stored: UnsafeRawBufferPointer(rebasing: bytes[0..<result.storedCount]))
            }
            unflushedBytes += result.storedCount
            compressor.recycle(result.stored)
            compressor.recycle(result.raw)
            if unflushedBytes >= StoreWriter.writebackStride {
                startWriteback()
                unflushedBytes = 0
            }
            nextToWrite += 1
            wrote = true
        }
    }
}

private func syncFile(_ path: String) throws(StoreError) {
    let descriptor = unsafe open(path, O_RDONLY)
    guard descriptor >= 0 else { throw .io(path: path, operation: "open for fsync", message: systemError()) }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw .io(path: path, operation: "fsync", message: systemError()) }
}

/// Owns a dataset handle in a class so writers and readers can keep one per field.
final class DatasetBox: @unchecked Sendable {
    // Immutable after init; HDF5 serializes calls on the id with its global lock.
    let handle: H5Dataset
    init(_ handle: consuming H5Dataset) { self.handle = handle }
}

/// One field being written: its dataset, the staging buffer for the chunk being filled, and the sizes of
/// the chunks written so far (checked against the file's B-tree when the index is built).
private final class FieldWriter {
    let spec: FieldSpec
    let chunkRows: Int
    let pipeline: ChunkPipeline
    private(set) var dataset: DatasetBox?
    private var staged: [UInt8]
    private(set) var stagedRows = 0
    private(set) var chunksSubmitted = 0
    private(set) var rowsWritten = 0
    private(set) var storedSizes: [Int] = []
    private let context: H5Context

    init(file: borrowing H5File, spec: FieldSpec, options: StoreWriteOptions, path: String) throws(StoreError) {
        self.spec = spec
        context = H5Context(path: path, object: spec.name)
        chunkRows = options.chunking.samplesPerChunk(sampleBytes: spec.sampleBytes)
        guard chunkRows * spec.sampleBytes <= LZ4Chunk.maximumChunkBytes else {
            throw .invalidArgument("field '\(spec.name)': a chunk of \(chunkRows) samples exceeds 2 GiB")
        }
        pipeline = ChunkPipeline(
            codec: options.codec, checksum: options.checksum, elementSize: spec.dtype.size, lz4BlockBytes: options.lz4BlockBytes)
        let sampleDims = spec.sampleShape.map { UInt64($0) }
        let space = try HDF5.simpleSpace([0] + sampleDims, max: [chdf5_unlimited()] + sampleDims, context)
        let creation = try HDF5.datasetCreationList(context)
        try HDF5.setChunk(creation, [UInt64(chunkRows)] + sampleDims, context)
        for stage in pipeline.stages {
            switch stage {
            case .shuffle: try HDF5.setShuffle(creation, context)
            case .lz4(let block): try HDF5.setFilter(creation, id: Int32(LZ4Chunk.filterID), optional: true, values: [UInt32(block)], context)
            case .deflate(let level): try HDF5.setDeflate(creation, level: level, context)
            case .fletcher32: try HDF5.setFletcher32(creation, context)
            }
        }
        let type = try HDF5.type(for: spec.dtype, context)
        dataset = DatasetBox(try HDF5.createDataset(file.id, spec.name, type: type, space: space, creation: creation, context))
        staged = []
        staged.reserveCapacity(chunkRows * spec.sampleBytes)
    }

    var stagedFull: Bool { stagedRows == chunkRows }

    /// Copies as many whole samples as fit in the current chunk; returns the bytes taken.
    func stage(_ bytes: UnsafeRawBufferPointer) -> Int {
        let rows = min(chunkRows - stagedRows, bytes.count / spec.sampleBytes)
        let count = rows * spec.sampleBytes
        unsafe staged.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
        stagedRows += rows
        return count
    }

    /// Hands over the staged chunk, zero-padded to a whole chunk as HDF5 stores edge chunks, and stages
    /// into `replacement` (a recycled buffer) from now on: no copy, no new allocation.
    func takeStaged(replacement: consuming [UInt8]) -> [UInt8] {
        staged.append(contentsOf: repeatElement(0, count: chunkRows * spec.sampleBytes - staged.count))
        var chunk = replacement
        swap(&chunk, &staged)
        staged.removeAll(keepingCapacity: true)
        staged.reserveCapacity(chunkRows * spec.sampleBytes)
        stagedRows = 0
        chunksSubmitted += 1
        return chunk
    }

    func write(chunk: Int, rows: Int, stored: UnsafeRawBufferPointer) throws(StoreError) {
        let start = chunk * chunkRows
        let sampleDims = spec.sampleShape.map { UInt64($0) }
        // Grow the extent exactly to the rows written: it never shrinks, so HDF5 never rewrites an edge chunk.
        guard let dataset else { throw .invalidArgument("\(context.path): field '\(spec.name)' written after close") }
        try HDF5.setExtent(dataset.handle, [UInt64(start + rows)] + sampleDims, context)
        try unsafe HDF5.writeChunk(
            dataset.handle, offset: [UInt64(start)] + sampleDims.map { _ in 0 }, filterMask: 0, bytes: stored, context)
        rowsWritten = start + rows
        storedSizes.append(stored.count)
    }

    /// Closes the dataset now: HDF5 keeps a file open until its last object is closed.
    func closeDataset() { dataset = nil }
}
