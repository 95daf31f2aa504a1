import Foundation
import StokeEngine
import StokeLoader
import StokePack
import StokeStore

// The objects behind the C ABI's opaque handles, in plain Swift. Every pointer conversion lives in
// Exports.swift (the @_cdecl functions) and CStrings.swift; this file holds what the handles own and
// how JSON options become Stoke's option types.

/// A caller's mistake the C ABI itself detects (a NULL handle, a bad option).
struct CAPIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Status codes of stoke.h.
enum Status {
    static let ok: Int32 = 0
    static let end: Int32 = 1
    static let argument: Int32 = -1
    static let io: Int32 = -2
    static let store: Int32 = -3
    static let unsupported: Int32 = -4
    static let engine: Int32 = -5
    static let memory: Int32 = -6
    static let `internal`: Int32 = -7

    /// The status of an error, and its one-line message.
    static func of(_ error: any Error) -> (Int32, String) {
        switch error {
        case let error as StoreError:
            switch error {
            case .io: return (io, error.description)
            case .invalidArgument: return (argument, error.description)
            case .unsupported: return (unsupported, error.description)
            case .hdf5, .corruptChunk, .badIndex, .invalidStore: return (store, error.description)
            }
        case let error as EngineError:
            if case .io = error { return (io, error.description) }
            return (engine, error.description)
        case let error as MemoryBudgetError: return (memory, error.description)
        case let error as SourceError: return (argument, error.description)
        case let error as CAPIError: return (argument, error.description)
        default: return (`internal`, String(describing: error))
        }
    }
}

/// The C codes of element types (STOKE_DTYPE_* in stoke.h). Fixed numbers, not `DType.allCases`
/// positions: a new DType case must not renumber the ABI (u32 came later and is 9).
extension DType {
    var code: Int32 {
        switch self {
        case .u8: 0
        case .i8: 1
        case .u16: 2
        case .i16: 3
        case .i32: 4
        case .i64: 5
        case .f16: 6
        case .f32: 7
        case .f64: 8
        case .u32: 9
        }
    }
}

/// Whether a value JSONSerialization produced is a JSON `true`/`false` (an NSNumber subclass whose 1 and 0
/// also cast to Bool, so `is Bool` cannot tell them from numbers).
func isJSONBool(_ value: Any) -> Bool {
    String(describing: type(of: value)).contains("Boolean") || type(of: value) == Bool.self
}

/// A JSON options object whose keys are checked: reading a key marks it known, and `finish()` refuses
/// any key nobody read, so a misspelt option is an error naming it instead of being ignored.
struct JSONOptions {
    let what: String
    private let object: [String: Any]
    private var read: Set<String> = []

    init(_ text: String?, what: String) throws(CAPIError) {
        self.what = what
        guard let text, !text.isEmpty else {
            object = [:]
            return
        }
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]),
              let dictionary = parsed as? [String: Any] else {
            throw CAPIError("\(what): not a JSON object: \(text.prefix(80))")
        }
        object = dictionary
    }

    init(object: [String: Any], what: String) {
        self.what = what
        self.object = object
    }

    func finish() throws(CAPIError) {
        let unknown = Set(object.keys).subtracting(read).sorted()
        if let first = unknown.first { throw CAPIError("\(what): unknown option '\(first)'") }
    }

    private mutating func value(_ key: String) -> Any? {
        read.insert(key)
        guard let value = object[key], !(value is NSNull) else { return nil }
        return value
    }

    mutating func int(_ key: String) throws(CAPIError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value as? NSNumber, !isJSONBool(value), let integer = Int(exactly: number.doubleValue) else {
            throw CAPIError("\(what): option '\(key)' must be an integer, not \(value)")
        }
        return integer
    }

    /// An unsigned 64-bit integer given as a number or a decimal string (JSON numbers lose digits past 2^53).
    mutating func uint64(_ key: String) throws(CAPIError) -> UInt64? {
        guard let value = value(key) else { return nil }
        if let text = value as? String, let number = UInt64(text) { return number }
        if let number = value as? NSNumber, !isJSONBool(value), number.doubleValue >= 0, number.doubleValue < 9.007e15 {
            return number.uint64Value
        }
        throw CAPIError("\(what): option '\(key)' must be an integer 0…2^64−1 (a number or a decimal string), not \(value)")
    }

    mutating func bool(_ key: String) throws(CAPIError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard isJSONBool(value), let flag = value as? Bool else { throw CAPIError("\(what): option '\(key)' must be true or false, not \(value)") }
        return flag
    }

    mutating func string(_ key: String) throws(CAPIError) -> String? {
        guard let value = value(key) else { return nil }
        guard let text = value as? String else { throw CAPIError("\(what): option '\(key)' must be a string, not \(value)") }
        return text
    }

    mutating func strings(_ key: String) throws(CAPIError) -> [String]? {
        guard let value = value(key) else { return nil }
        guard let list = value as? [String] else { throw CAPIError("\(what): option '\(key)' must be a list of strings") }
        return list
    }

    mutating func objects(_ key: String) throws(CAPIError) -> [[String: Any]]? {
        guard let value = value(key) else { return nil }
        guard let list = value as? [[String: Any]] else { throw CAPIError("\(what): option '\(key)' must be a list of objects") }
        return list
    }

    mutating func dictionary(_ key: String) throws(CAPIError) -> [String: Any]? {
        guard let value = value(key) else { return nil }
        guard let dictionary = value as? [String: Any] else { throw CAPIError("\(what): option '\(key)' must be an object") }
        return dictionary
    }

    mutating func floats(_ key: String) throws(CAPIError) -> [Float]? {
        guard let value = value(key) else { return nil }
        guard let list = value as? [NSNumber], list.allSatisfy({ !isJSONBool($0) }) else {
            throw CAPIError("\(what): option '\(key)' must be a list of numbers")
        }
        return list.map { $0.floatValue }
    }

    mutating func float(_ key: String) throws(CAPIError) -> Float? {
        guard let value = value(key) else { return nil }
        guard let number = value as? NSNumber, !isJSONBool(value) else { throw CAPIError("\(what): option '\(key)' must be a number") }
        return number.floatValue
    }
}

enum Options {
    /// LoaderOptions from the JSON keys of `stoke_loader_open`.
    static func loader(_ text: String?) throws(CAPIError) -> LoaderOptions {
        var json = try JSONOptions(text, what: "loader options")
        var options = LoaderOptions()
        if let value = try json.int("batch_size") { options.batchSize = value }
        if let value = try json.strings("fields") { options.fields = value }
        if let value = try json.string("order") {
            guard let order = SampleOrder(parsing: value) else {
                throw CAPIError("loader options: order '\(value)' is not sequential, random, chunk-shuffle or chunk-shuffle:W")
            }
            options.order = order
        }
        if let value = try json.uint64("seed") { options.seed = value }
        if let value = try json.int("rank") { options.rank = value }
        if let value = try json.int("world") { options.world = value }
        if let value = try json.int("workers") { options.workers = value }
        if let value = try json.int("prefetch") { options.prefetch = value }
        if let value = try json.bool("drop_last") { options.dropLast = value }
        if let value = try json.bool("use_store_normalization") { options.useStoreNormalization = value }
        if let value = try json.int("cache_bytes") { options.cacheBytes = value }
        if let value = try json.bool("pin_buffers") { options.pinBuffers = value }
        if let value = try json.bool("register_with_cuda") { options.registerWithCUDA = value }
        if let value = try json.dictionary("normalization") {
            for (field, entry) in value {
                guard let entry = entry as? [String: Any] else {
                    throw CAPIError("loader options: normalization of '\(field)' must be an object with mean and std")
                }
                var inner = JSONOptions(object: entry, what: "loader options: normalization of '\(field)'")
                guard let mean = try inner.floats("mean"), let std = try inner.floats("std") else {
                    throw CAPIError("loader options: normalization of '\(field)' needs mean and std lists")
                }
                let scale = try inner.float("scale")
                try inner.finish()
                options.normalization[field] = Normalization(mean: mean, std: std, inputScale: scale)
            }
        }
        if let value = try json.dictionary("output_types") {
            for (field, entry) in value {
                guard let name = entry as? String, let dtype = DType(rawValue: name) else {
                    throw CAPIError("loader options: output type of '\(field)' must be a dtype name (u8 … f64), not \(entry)")
                }
                options.outputTypes[field] = dtype
            }
        }
        try json.finish()
        return options
    }

    /// StoreWriteOptions and the field list of `stoke_writer_open` / `stoke_pack_files`.
    static func writer(_ text: String?) throws(CAPIError) -> (options: StoreWriteOptions, fields: [[String: Any]]) {
        var json = try JSONOptions(text, what: "writer options")
        var options = StoreWriteOptions()
        guard let fields = try json.objects("fields"), !fields.isEmpty else {
            throw CAPIError("writer options: 'fields' must list at least one field")
        }
        if let value = try json.string("codec") {
            guard let codec = Codec(parsing: value) else {
                throw CAPIError("writer options: codec '\(value)' is not none, lz4, lz4-shuffle, deflate or deflate:N")
            }
            options.codec = codec
        }
        let samples = try json.int("chunk_samples")
        let bytes = try json.int("chunk_bytes")
        if samples != nil && bytes != nil { throw CAPIError("writer options: give chunk_samples or chunk_bytes, not both") }
        if let samples {
            guard samples > 0 else { throw CAPIError("writer options: chunk_samples must be positive") }
            options.chunking = .samples(samples)
        }
        if let bytes {
            guard bytes > 0 else { throw CAPIError("writer options: chunk_bytes must be positive") }
            options.chunking = .bytes(bytes)
        }
        if let value = try json.bool("checksum") { options.checksum = value }
        if let value = try json.int("workers") {
            guard value > 0 else { throw CAPIError("writer options: workers must be positive") }
            options.workers = value
        }
        if let value = try json.bool("overwrite") { options.overwrite = value }
        try json.finish()
        return (options, fields)
    }

    static func fieldSpec(_ entry: [String: Any]) throws(CAPIError) -> FieldSpec {
        var json = JSONOptions(object: entry, what: "writer field")
        guard let name = try json.string("name") else { throw CAPIError("writer options: every field needs a 'name'") }
        json = JSONOptions(object: entry, what: "writer field '\(name)'")
        _ = try json.string("name")
        guard let dtypeName = try json.string("dtype"), let dtype = DType(rawValue: dtypeName) else {
            throw CAPIError("writer field '\(name)': 'dtype' must be one of \(DType.allCases.map(\.rawValue).joined(separator: " "))")
        }
        guard let shape = try json.ints("shape") else { throw CAPIError("writer field '\(name)': 'shape' (of one sample) is required") }
        try json.finish()
        return FieldSpec(name: name, dtype: dtype, sampleShape: shape)
    }
}

extension JSONOptions {
    mutating func ints(_ key: String) throws(CAPIError) -> [Int]? {
        guard let values = try floats(key) else { return nil }
        var result: [Int] = []
        for value in values {
            guard let integer = Int(exactly: Double(value)) else { throw CAPIError("\(what): option '\(key)' must list integers") }
            result.append(integer)
        }
        return result
    }
}

/// JSON text of a dictionary of numbers and strings, keys sorted.
func jsonText(_ object: [String: Any]) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

/// Where a loader is and what makes that position meaningful; restored only onto a loader that plans
/// the same epochs (same seed, order, batch size, drop_last, rank, world and sample count).
struct LoaderState: Equatable {
    static let format = "stoke-loader-state"
    static let version = 1
    var epoch: Int
    var batch: Int
    var seed: UInt64
    var order: String
    var batchSize: Int
    var dropLast: Bool
    var rank: Int
    var world: Int
    var samples: Int

    var json: String {
        jsonText([
            "format": LoaderState.format, "version": LoaderState.version, "epoch": epoch, "batch": batch,
            "seed": String(seed), "order": order, "batch_size": batchSize, "drop_last": dropLast, "rank": rank,
            "world": world, "samples": samples,
        ])
    }

    init(epoch: Int, batch: Int, options: LoaderOptions, samples: Int) {
        self.epoch = epoch
        self.batch = batch
        seed = options.seed
        order = LoaderState.orderName(options.order)
        batchSize = options.batchSize
        dropLast = options.dropLast
        rank = options.rank
        world = options.world
        self.samples = samples
    }

    init(json text: String?) throws(CAPIError) {
        var json = try JSONOptions(text, what: "loader state")
        guard try json.string("format") == LoaderState.format else { throw CAPIError("loader state: 'format' is not \(LoaderState.format)") }
        guard let version = try json.int("version"), version <= LoaderState.version else {
            throw CAPIError("loader state: 'version' is missing or newer than this Stoke (\(LoaderState.version))")
        }
        func required<T>(_ value: T?, _ key: String) throws(CAPIError) -> T {
            guard let value else { throw CAPIError("loader state: '\(key)' is missing") }
            return value
        }
        epoch = try required(json.int("epoch"), "epoch")
        batch = try required(json.int("batch"), "batch")
        seed = try required(json.uint64("seed"), "seed")
        order = try required(json.string("order"), "order")
        batchSize = try required(json.int("batch_size"), "batch_size")
        dropLast = try required(json.bool("drop_last"), "drop_last")
        rank = try required(json.int("rank"), "rank")
        world = try required(json.int("world"), "world")
        samples = try required(json.int("samples"), "samples")
        try json.finish()
    }

    /// The first setting in which `other` (this loader's) differs from the saved state, as a message.
    func mismatch(_ other: LoaderState) -> String? {
        let pairs: [(String, String, String)] = [
            ("seed", String(seed), String(other.seed)), ("order", order, other.order),
            ("batch_size", String(batchSize), String(other.batchSize)), ("drop_last", String(dropLast), String(other.dropLast)),
            ("rank", String(rank), String(other.rank)), ("world", String(world), String(other.world)),
            ("samples", String(samples), String(other.samples)),
        ]
        guard let (key, saved, current) = pairs.first(where: { $0.1 != $0.2 }) else { return nil }
        return "loader state was saved with \(key) \(saved); this loader has \(current)"
    }

    static func orderName(_ order: SampleOrder) -> String {
        switch order {
        case .sequential: "sequential"
        case .random: "random"
        case .chunkShuffle(let window): "chunk-shuffle:\(window)"
        }
    }
}

/// A loader handle: the Swift loader, the epoch in progress and the position in it.
final class LoaderHandle {
    let loader: Loader
    /// The epoch in progress, if one was started.
    var epoch: Epoch?
    var epochNumber = 0
    /// Batches of `epochNumber` handed out (or skipped by a start/restore).
    var nextBatch = 0
    var stopped = false
    let names: CStringTable
    let pinningReason: CStringTable

    init(store: Store, options: LoaderOptions) throws(StoreError) {
        loader = try Loader(store: store, options: options)
        names = CStringTable(loader.layouts.map(\.name))
        pinningReason = CStringTable([loader.pinning.reason])
    }

    func start(epoch number: Int, at batch: Int) throws(StoreError) {
        guard !stopped else { throw .invalidArgument("the loader was shut down") }
        guard number >= 0 else { throw .invalidArgument("epoch \(number) is negative") }
        epoch = nil
        epoch = try loader.epoch(number, startingAt: batch)
        epochNumber = number
        nextBatch = batch
    }

    /// The next batch, nil at the end of the epoch.
    func next() throws(StoreError) -> BatchHandle? {
        if epoch == nil { try start(epoch: epochNumber, at: nextBatch) }
        guard let batch = try epoch!.next() else { return nil }
        nextBatch = batch.number + 1
        return BatchHandle(batch: batch, layouts: loader.layouts)
    }

    var state: LoaderState {
        LoaderState(epoch: epochNumber, batch: nextBatch, options: loader.options, samples: loader.sampleCount)
    }

    func restore(_ saved: LoaderState) throws(CAPIError) {
        if let mismatch = saved.mismatch(state) { throw CAPIError(mismatch) }
        do { try start(epoch: saved.epoch, at: saved.batch) } catch { throw CAPIError(error.description) }
    }

    var statsJSON: String {
        let stats = epoch?.stats ?? LoaderStats()
        return jsonText([
            "batches": stats.batches, "samples": stats.samples, "wait_seconds": stats.waitSeconds, "wall_seconds": stats.wallSeconds,
            "decode_seconds": stats.decodeSeconds, "gather_seconds": stats.gatherSeconds, "read_seconds": stats.readSeconds,
            "worker_idle_seconds": stats.workerIdleSeconds, "chunk_wait_seconds": stats.chunkWaitSeconds,
            "batch_bytes": stats.batchBytes, "decoded_bytes": stats.decodedBytes, "stored_bytes_read": stats.storedBytesRead,
            "chunk_decodes": stats.chunkDecodes, "redecodes": stats.redecodes, "cache_hits": stats.cacheHits,
        ])
    }

    func shutdown() {
        epoch = nil
        stopped = true
        loader.shutdown()
    }
}

/// A store handle: the store and C copies of its field names.
final class StoreHandle {
    let store: Store
    let names: CStringTable
    var attributes: [String: CStringTable] = [:]

    init(path: String) throws(StoreError) {
        store = try Store(path: path)
        names = CStringTable(store.fields.map(\.name))
    }
}

/// A writer handle. `StoreWriter` removes its temporary file when released unfinished.
final class WriterHandle {
    let writer: StoreWriter
    init(path: String, json: String?) throws {
        let (options, fieldEntries) = try Options.writer(json)
        var specs: [FieldSpec] = []
        for entry in fieldEntries { specs.append(try Options.fieldSpec(entry)) }
        writer = try StoreWriter(path: path, fields: specs, options: options)
    }
}

/// Packs NPY or IDX files, as `stoke pack` does for those sources.
func packFiles(path: String, json: String?) throws -> Int {
    let (options, entries) = try Options.writer(json)
    var fields: [PackField] = []
    for entry in entries {
        var reader = JSONOptions(object: entry, what: "pack field")
        guard let name = try reader.string("name"), let source = try reader.string("source") else {
            throw CAPIError("pack options: every field needs 'name' and 'source'")
        }
        let shape = try reader.ints("shape")
        try reader.finish()
        let head = (FileHandle(forReadingAtPath: source).flatMap { try? $0.read(upToCount: 6) }).map { [UInt8]($0) } ?? []
        let array: any ArraySource = head.starts(with: [0x93] + Array("NUMPY".utf8))
            ? try NPYArray(path: source) : try IDXArray(path: source)
        fields.append(PackField(name: name, source: array, sampleShape: shape))
    }
    return try ArrayPacker.pack(fields: fields, to: path, options: options, metadata: []).samples
}

/// An engine session and what it has run.
final class SessionHandle {
    let session: Session
    let inputNames: CStringTable
    let outputNames: CStringTable
    var samples = 0
    var seconds = 0.0

    init(path: String, threads: Int) throws(EngineError) {
        let model = try Model.load(path: path)
        session = Session(model: model, threads: max(1, threads))
        inputNames = CStringTable(model.inputs.map(\.name))
        outputNames = CStringTable(model.outputs.map(\.name))
    }

    func inputName(_ name: String?) throws(CAPIError) -> String {
        if let name { return name }
        guard let first = session.model.inputs.first?.name else { throw CAPIError("the model has no inputs") }
        return first
    }

    func outputName(_ name: String?) throws(CAPIError) -> String {
        if let name { return name }
        guard let first = session.model.outputs.first?.name else { throw CAPIError("the model has no outputs") }
        return first
    }
}
