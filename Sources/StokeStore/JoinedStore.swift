import CHDF5
import Foundation

/// Where a shard store sits in the whole dataset, recorded by `stoke pack --shard` in the root attribute
/// `shard` (JSON). Samples `start..<end` of the `total` the full source list gives are this shard's.
public struct ShardPlace: Codable, Equatable, Sendable {
    public static let attributeName = "shard"

    /// This shard's number, 0-based, and the number of shards.
    public var index: Int
    public var count: Int
    /// The global sample range this shard holds, and the samples of the whole source list.
    public var start: Int
    public var end: Int
    public var total: Int
    /// SHA-256 of the whole source list (names and labels, not contents), the same in every shard of one pack.
    public var sources_sha256: String

    public init(index: Int, count: Int, start: Int, end: Int, total: Int, sourcesSHA256: String) {
        self.index = index
        self.count = count
        self.start = start
        self.end = end
        self.total = total
        self.sources_sha256 = sourcesSHA256
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func parse(_ text: String) -> ShardPlace? {
        try? JSONDecoder().decode(ShardPlace.self, from: Data(text.utf8))
    }
}

/// What `JoinedStore.join` wrote.
public struct JoinSummary: Sendable, Equatable {
    public var path: String
    public var samples: Int
    /// The shards as the joined store names them (relative to its folder), in sample order.
    public var shards: [String]
    public var fields: [String]
}

/// A joined store: one HDF5 file whose root datasets are virtual datasets over the shards' datasets
/// (relative source paths, so the folder moves as a whole), with the root attribute `joined` listing the
/// shards. Other tools (h5py) read it through the virtual datasets; `Store` reads the shards' chunks
/// directly through a chunk index that spans the shard files, at single-file speed.
public enum JoinedStore {
    static let attributeName = "joined"

    struct Document: Codable, Equatable {
        var format = "stoke-joined"
        /// Shard paths relative to the joined store's folder, in sample order.
        var shards: [String]
        var samples: Int
        var sources_sha256: String
    }

    /// Checks that `shards` fit together (one pack's shards, each once: same recipe and fields, sample
    /// ranges that tile the whole) and writes the joined store at `output` (atomically: a temporary file
    /// renamed into place). Errors name the shard at fault.
    public static func join(shards paths: [String], to output: String, overwrite: Bool = false) throws(StoreError) -> JoinSummary {
        guard !paths.isEmpty else { throw .invalidArgument("join: no shards given") }
        if !overwrite && FileManager.default.fileExists(atPath: output) {
            throw .invalidArgument("\(output): already exists (use --force to replace it)")
        }
        var opened: [(path: String, store: Store, place: ShardPlace)] = []
        for path in paths {
            let store = try Store(path: path)
            guard let text = store.attributes[ShardPlace.attributeName], let place = ShardPlace.parse(text) else {
                throw .invalidStore(path: path, reason: "has no valid 'shard' attribute: it was not packed with --shard")
            }
            if store.attributes[attributeName] != nil {
                throw .invalidStore(path: path, reason: "is itself a joined store; join the shards it names")
            }
            opened.append((path, store, place))
        }
        let ordered = try check(opened)
        let first = ordered[0]

        let outputPath = URL(fileURLWithPath: output).standardizedFileURL.path
        let folder = (outputPath as NSString).deletingLastPathComponent
        let relative = ordered.map { relativePath(of: URL(fileURLWithPath: $0.path).standardizedFileURL.path, from: folder) }
        let document = Document(shards: relative, samples: first.place.total, sources_sha256: first.place.sources_sha256)
        let documentText = String(decoding: (try? JSONEncoder().encode(document)) ?? Data(), as: UTF8.self)
        guard documentText.utf8.count < 60_000 else {
            throw .invalidArgument("join: the list of \(paths.count) shard paths needs \(documentText.utf8.count / 1024) KiB; a store attribute holds at most 64 KiB (use fewer, larger shards)")
        }

        let temporary = folder + "/." + (outputPath as NSString).lastPathComponent + ".join-\(getpid())"
        unsafe unlink(temporary)
        do {
            let file = try HDF5.createFile(temporary)
            let context = H5Context(path: temporary)
            let source = try HDF5.openFile(first.path, writable: false)
            for field in first.store.fields {
                let type = try HDF5.datasetType(source.id, field.name, H5Context(path: first.path, object: field.name))
                try HDF5.createVirtualDataset(
                    file.id, field.name, type: type, rows: UInt64(first.place.total), sampleDims: field.sampleShape.map { UInt64($0) },
                    sources: zip(relative, ordered).map { name, shard in
                        HDF5.VirtualSource(file: name, dataset: field.name, start: UInt64(shard.place.start), rows: UInt64(shard.place.end - shard.place.start))
                    },
                    H5Context(path: temporary, object: field.name))
            }
            do {
                let root = try HDF5.openGroup(file.id, "/", context)
                for (name, value) in first.store.attributes.sorted(by: { $0.key < $1.key })
                where ![ShardPlace.attributeName, "provenance", StoreSchema.attributeName].contains(name) {
                    try HDF5.writeStringAttribute(root.id, name, value, context)
                }
                if let text = first.store.attributes[StoreSchema.attributeName], var schema = StoreSchema.parse(text) {
                    schema.samples = first.place.total
                    schema.created = ISO8601DateFormatter().string(from: Date())
                    try HDF5.writeStringAttribute(root.id, StoreSchema.attributeName, schema.json(), context)
                }
                try HDF5.writeStringAttribute(root.id, attributeName, documentText, context)
            }
            try HDF5.close(file, context)
        } catch {
            unsafe unlink(temporary)
            throw error
        }
        guard unsafe rename(temporary, outputPath) == 0 else {
            let message = systemError()
            unsafe unlink(temporary)
            throw .io(path: output, operation: "rename from \(temporary)", message: message)
        }
        return JoinSummary(path: output, samples: first.place.total, shards: relative, fields: first.store.fields.map(\.name))
    }

    /// The shards in sample order, after checking that they are one pack's shards and tile the whole.
    static func check(
        _ shards: [(path: String, store: Store, place: ShardPlace)]
    ) throws(StoreError) -> [(path: String, store: Store, place: ShardPlace)] {
        let first = shards[0]
        var byIndex: [Int: (path: String, store: Store, place: ShardPlace)] = [:]
        for shard in shards {
            let place = shard.place
            guard place.count == shards.count else {
                throw .invalidStore(path: shard.path, reason: "is shard \(place.index) of \(place.count), but \(shards.count) shard(s) were given")
            }
            guard place.index >= 0, place.index < place.count else {
                throw .invalidStore(path: shard.path, reason: "records shard index \(place.index) outside 0..<\(place.count)")
            }
            if let other = byIndex[place.index] {
                throw .invalidStore(path: shard.path, reason: "is shard \(place.index) of \(place.count), and so is \(other.path)")
            }
            guard place.sources_sha256 == first.place.sources_sha256, place.total == first.place.total else {
                throw .invalidStore(path: shard.path, reason: "was packed from another source list than \(first.path) (\(place.total) vs \(first.place.total) samples, list hash differs)")
            }
            guard shard.store.attributes["recipe"] == first.store.attributes["recipe"] else {
                throw .invalidStore(path: shard.path, reason: "has another recipe than \(first.path)")
            }
            let fields = shard.store.fields.map { "\($0.name):\($0.dtype.rawValue)\($0.sampleShape):\($0.chunkRows ?? 0):\($0.codecName)" }
            let expected = first.store.fields.map { "\($0.name):\($0.dtype.rawValue)\($0.sampleShape):\($0.chunkRows ?? 0):\($0.codecName)" }
            guard fields == expected else {
                throw .invalidStore(path: shard.path, reason: "has fields \(fields.joined(separator: ", ")), but \(first.path) has \(expected.joined(separator: ", "))")
            }
            guard shard.store.sampleCount == place.end - place.start else {
                throw .invalidStore(path: shard.path, reason: "holds \(shard.store.sampleCount) samples, but its range \(place.start)..<\(place.end) has \(place.end - place.start)")
            }
            byIndex[place.index] = shard
        }
        var ordered: [(path: String, store: Store, place: ShardPlace)] = []
        var next = 0
        for index in 0..<shards.count {
            guard let shard = byIndex[index] else {
                throw .invalidArgument("join: shard \(index) of \(shards.count) is missing")
            }
            if shard.place.start != next {
                let problem = shard.place.start > next ? "a gap" : "an overlap"
                throw .invalidStore(path: shard.path, reason: "covers samples \(shard.place.start)..<\(shard.place.end), but the shards before it end at \(next) (\(problem))")
            }
            next = shard.place.end
            ordered.append(shard)
        }
        guard next == first.place.total else {
            throw .invalidStore(path: ordered.last!.path, reason: "ends at sample \(next), but the whole has \(first.place.total)")
        }
        return ordered
    }

    /// `path` relative to `folder` (both absolute, standardized).
    static func relativePath(of path: String, from folder: String) -> String {
        let target = path.split(separator: "/", omittingEmptySubsequences: true)
        let base = folder.split(separator: "/", omittingEmptySubsequences: true)
        var common = 0
        while common < base.count, common < target.count - 1, target[common] == base[common] { common += 1 }
        let ups = Array(repeating: "..", count: base.count - common)
        return (ups + target[common...].map(String.init)).joined(separator: "/")
    }

    // MARK: - Reading

    /// For a store whose attributes hold a join document: the shards, opened, in sample order; nil for
    /// other stores. Checks that each shard still is the one the join recorded.
    static func openShards(attributes: [String: String], path: String, options: StoreReadOptions) throws(StoreError) -> [Store]? {
        guard let text = attributes[attributeName] else { return nil }
        guard let document = try? JSONDecoder().decode(Document.self, from: Data(text.utf8)), !document.shards.isEmpty else {
            throw .invalidStore(path: path, reason: "root attribute 'joined' is not a valid list of shards")
        }
        let folder = (URL(fileURLWithPath: path).standardizedFileURL.path as NSString).deletingLastPathComponent
        var stores: [Store] = []
        var next = 0
        for (index, name) in document.shards.enumerated() {
            let shardPath = name.hasPrefix("/") ? name : folder + "/" + name
            let store: Store
            do { store = try Store(path: shardPath, options: options) } catch {
                throw .invalidStore(path: path, reason: "shard \(index) (\(name)) cannot be opened: \(error)")
            }
            guard let placeText = store.attributes[ShardPlace.attributeName], let place = ShardPlace.parse(placeText),
                  place.index == index, place.start == next, place.sources_sha256 == document.sources_sha256,
                  store.sampleCount == place.end - place.start else {
                throw .invalidStore(path: shardPath, reason: "is no longer shard \(index) of the join \(path) recorded (repacked or replaced? join again)")
            }
            next = place.end
            stores.append(store)
        }
        guard next == document.samples else {
            throw .invalidStore(path: path, reason: "its shards hold \(next) samples, the join recorded \(document.samples)")
        }
        return stores
    }
}

/// One field of a joined store, read from the shards: chunk `c` of the joined field holds global rows
/// `c * chunkRows ..< (c + 1) * chunkRows`. A chunk that is one shard chunk (the usual case, as sharded
/// packing cuts the sources at chunk boundaries) is that chunk's stored bytes; a chunk that straddles
/// shards is assembled from their rows.
final class JoinedField: @unchecked Sendable {
    // Immutable after init.
    let shards: [Store]
    let parts: [Field]
    /// Global first row of each part, then the total.
    let starts: [Int]
    let rows: Int
    let chunkRows: Int
    let sampleBytes: Int
    let chunkIndex: [ChunkLocation]?
    private let path: String
    private let name: String
    /// Per joined chunk: the part and its chunk holding exactly these rows, or nil when assembled.
    private let direct: [(part: Int, chunk: Int)?]

    init(name: String, shards: [Store], path: String, virtualRows: Int) throws(StoreError) {
        self.shards = shards
        self.path = path
        self.name = name
        var parts: [Field] = []
        for store in shards { parts.append(try store.field(name)) }
        let first = parts[0]
        guard let chunkRows = first.chunkRows, first.decodesDirectly else {
            throw .unsupported(path: shards[0].path, reason: "field '\(name)' is not chunked by whole samples in a codec Stoke decodes; a joined store needs that")
        }
        for (store, part) in zip(shards, parts) where part.dtype != first.dtype || part.sampleShape != first.sampleShape
            || part.chunkRows != chunkRows || !part.decodesDirectly {
            throw .invalidStore(path: store.path, reason: "field '\(name)' differs from shard 0's (type, shape, chunking or codec)")
        }
        var starts = [0]
        for part in parts { starts.append(starts.last! + part.rows) }
        guard starts.last! == virtualRows else {
            throw .invalidStore(path: path, reason: "field '\(name)' has \(virtualRows) rows, its shards hold \(starts.last!)")
        }
        self.parts = parts
        self.starts = starts
        self.rows = starts.last!
        self.chunkRows = chunkRows
        self.sampleBytes = first.sampleBytes
        let chunkCount = (rows + chunkRows - 1) / chunkRows
        var direct: [(part: Int, chunk: Int)?] = []
        var index: [ChunkLocation]? = parts.allSatisfy({ $0.chunkIndex != nil }) ? [] : nil
        direct.reserveCapacity(chunkCount)
        for chunk in 0..<chunkCount {
            let range = (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows)
            let part = Self.part(containing: range.lowerBound, starts: starts)
            let local = range.lowerBound - starts[part]
            if range.upperBound <= starts[part + 1], local % chunkRows == 0 {
                direct.append((part, local / chunkRows))
                index?.append(parts[part].chunkIndex![local / chunkRows])
            } else {
                direct.append(nil)
                // The stored bytes this chunk costs: every shard chunk it draws rows from.
                var size: UInt64 = 0
                var part = part
                while part < parts.count, starts[part] < range.upperBound {
                    let first = max(range.lowerBound, starts[part]) - starts[part]
                    let last = min(range.upperBound, starts[part + 1]) - starts[part] - 1
                    if last >= first, let entries = parts[part].chunkIndex {
                        for local in (first / chunkRows)...(last / chunkRows) { size += entries[local].size }
                    }
                    part += 1
                }
                index?.append(ChunkLocation(offset: 0, size: size, filterMask: 0))
            }
        }
        self.direct = direct
        self.chunkIndex = index
    }

    /// The part holding global row `row` (the last part for rows past the end).
    static func part(containing row: Int, starts: [Int]) -> Int {
        var low = 0, high = starts.count - 2
        while low < high {
            let middle = (low + high + 1) / 2
            if starts[middle] <= row { low = middle } else { high = middle - 1 }
        }
        return low
    }

    func withStoredChunk<R>(_ chunk: Int, _ body: (UnsafeRawBufferPointer, UInt32) throws(StoreError) -> R) throws(StoreError) -> R {
        guard let (part, local) = direct[chunk] else {
            throw .unsupported(path: path, reason: "field '\(name)' chunk \(chunk) straddles two shards and has no single stored form")
        }
        return try unsafe parts[part].withStoredChunk(local, body)
    }

    func decodeChunk(_ chunk: Int, into destination: UnsafeMutableRawBufferPointer, scratch: inout [UInt8]) throws(StoreError) {
        if let (part, local) = direct[chunk] {
            try unsafe parts[part].decodeChunk(local, into: destination, scratch: &scratch)
            return
        }
        let range = (chunk * chunkRows)..<min(rows, (chunk + 1) * chunkRows)
        var filled = 0
        var part = Self.part(containing: range.lowerBound, starts: starts)
        while part < parts.count, starts[part] < range.upperBound {
            let local = (max(range.lowerBound, starts[part]) - starts[part])..<(min(range.upperBound, starts[part + 1]) - starts[part])
            if !local.isEmpty {
                let slice = unsafe UnsafeMutableRawBufferPointer(rebasing: destination[(filled * sampleBytes)..<((filled + local.count) * sampleBytes)])
                try unsafe parts[part].readRows(local, into: slice)
                filled += local.count
            }
            part += 1
        }
        let end = filled * sampleBytes
        if end < destination.count {
            unsafe UnsafeMutableRawBufferPointer(rebasing: destination[end...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    /// Verifies every shard's chunks; returns the chunks checked.
    /// Checks every shard's part of the field; the joined level is the weakest of the parts'.
    func check(field: String) throws(StoreError) -> FieldCheck {
        let order: [FieldCheck.Level] = [.decodedAndChecksums, .checksums, .decodedOnly, .nothing]
        var result = FieldCheck(field: field, level: .decodedAndChecksums, chunks: 0, unwrittenChunks: 0, note: "")
        var notes: [String] = []
        for (store, part) in zip(shards, parts) {
            let check = try part.check()
            result.chunks += check.chunks
            result.unwrittenChunks += check.unwrittenChunks
            if order.firstIndex(of: check.level)! > order.firstIndex(of: result.level)! { result.level = check.level }
            notes.append("\(store.path): \(check.note)")
        }
        result.note = notes.count == 1 ? notes[0] : "\(parts.count) shards; " + notes.joined(separator: "; ")
        return result
    }

    func storedBytes() throws(StoreError) -> Int {
        var total = 0
        for part in parts { total += try part.storedBytes() }
        return total
    }

    func dropMappedPages() { for store in shards { store.dropMappedPages() } }
}
