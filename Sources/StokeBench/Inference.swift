import Foundation
import StokeEngine
import StokeLoader
import StokeStore

/// `stoke infer`: a store streamed through a model by the loader, batches read in place from pinned
/// buffers, loading overlapped with compute, and everything a user asks of a serving setup measured:
/// samples/s, per-batch latency, how long the engine waited for data, accuracy.
public struct StreamingInference {
    public struct Options: Sendable {
        public var batchSize = 256
        /// Loader worker threads and engine threads; nil chooses them for this machine.
        public var loaderWorkers: Int? = nil
        public var engineThreads: Int? = nil
        /// How the engine runs (GEMM backend, convolution policy, kernel set); its thread count is
        /// replaced by `engineThreads` or the budget's choice.
        public var context: ExecutionContext = .default
        public var prefetch = 4
        /// The store field fed to the model (nil: the first non-label field).
        public var inputField: String? = nil
        /// The label field, when present, for accuracy and the confusion matrix.
        public var labelField = "label"
        /// Explicit normalization of the input (else the store's, else plain widening to f32).
        public var normalization: Normalization? = nil
        /// Stop after this many samples (nil: the whole store).
        public var maxSamples: Int? = nil
        /// Times the store (or its first `maxSamples`) is streamed in one run, so a model that runs a small
        /// store in milliseconds is timed over long enough to measure (samples and accuracy count every pass).
        public var passes = 1
        /// Write logits and predicted classes as a new store.
        public var outputPath: String? = nil
        /// Check Fletcher-32 checksums while reading (the default; a flipped byte is an error, not an input).
        public var verifyChecksums = true
        public init() {}
    }

    public struct Result: Sendable {
        public var samples: Int
        public var seconds: Double
        public var samplesPerSecond: Double
        /// Engine time per batch, milliseconds.
        public var latencyP50: Double
        public var latencyP99: Double
        /// The first batch's engine time (plan building, weight packing), milliseconds.
        public var firstBatchMilliseconds: Double
        /// Time the engine waited for the loader ÷ wall time.
        public var dataWaitFraction: Double
        public var accuracy: Double?
        /// confusion[label][prediction]
        public var confusion: [[Int]]
        public var loaderWorkers: Int
        public var engineThreads: Int
        public var threadChoice: String
        public var bottleneck: String
        public var batchSize: Int
        /// Resident memory after the run, bytes.
        public var residentBytes: Int
        /// The most resident memory during the run, bytes (the kernel's high-water mark, reset when the
        /// run starts where Linux allows it, else the process's peak so far).
        public var peakResidentBytes: Int
    }

    /// The thread budget for this machine: the loader needs a fraction of a core at inference batch
    /// sizes, so it gets one worker and the engine the rest (at least one each).
    public static func threadBudget(cores: Int, loaderWorkers: Int?, engineThreads: Int?) -> (loader: Int, engine: Int, why: String) {
        let loader = loaderWorkers ?? 1
        let engine = engineThreads ?? max(1, cores - loader)
        let why = loaderWorkers == nil && engineThreads == nil
            ? "automatic: \(cores) cores, 1 loader worker, \(engine) engine thread(s)"
            : "from flags"
        return (loader, engine, why)
    }

    public static func run(model: Model, storePath: String, options: Options) throws -> Result {
        let store = try Store(path: storePath, options: StoreReadOptions(verifyChecksums: options.verifyChecksums))
        guard store.attributes["stoke_model"] == nil else {
            throw StoreError.invalidArgument("\(storePath) is a model file, not a store of samples")
        }
        let inputName = try options.inputField ?? {
            guard let field = store.fields.first(where: { $0.name != options.labelField && !$0.sampleShape.isEmpty }) else {
                throw StoreError.invalidArgument("\(storePath): no field to feed the model (use --input-field)")
            }
            return field.name
        }()
        let inputField = try store.field(inputName)
        let labels = store.fields.first { $0.name == options.labelField && $0.sampleShape.isEmpty }
        guard let modelInput = model.inputs.first else { throw StoreError.invalidArgument("the model has no input") }
        guard let modelOutput = model.outputs.first else { throw StoreError.invalidArgument("the model has no output") }
        if let declared = modelInput.shape?.dropFirst(), declared.allSatisfy({ if case .fixed = $0 { true } else { false } }) {
            let expected = declared.reduce(1) { if case .fixed(let extent) = $1 { $0 * extent } else { $0 } }
            guard expected == inputField.sampleShape.reduce(1, *) else {
                throw StoreError.invalidArgument("\(storePath): field '\(inputName)' holds samples of \(inputField.sampleShape), the model's input '\(modelInput.name)' takes [\(declared.map(\.description).joined(separator: ", "))]")
            }
        }

        if let labels { try Self.checkLabelType(labels.dtype, field: labels.name, path: storePath) }

        let total = min(store.sampleCount, options.maxSamples ?? Int.max)
        // A model with a fixed batch size runs only at it (a short last batch is padded); otherwise a
        // batch never holds more samples than the run streams.
        let fixedBatch = model.fixedBatchSize
        let batchSize = fixedBatch ?? max(1, min(options.batchSize, total))
        let budget = threadBudget(cores: ProcessInfo.processInfo.activeProcessorCount, loaderWorkers: options.loaderWorkers, engineThreads: options.engineThreads)
        var loaderOptions = LoaderOptions()
        loaderOptions.fields = [inputName] + (labels.map { [$0.name] } ?? [])
        loaderOptions.batchSize = batchSize
        loaderOptions.order = .sequential
        loaderOptions.workers = budget.loader
        loaderOptions.prefetch = options.prefetch
        if let normalization = options.normalization { loaderOptions.normalization[inputName] = normalization }
        loaderOptions.outputTypes[inputName] = .f32
        let loader = try Loader(store: store, options: loaderOptions)
        let session = Session(model: model, context: options.context.with(threads: budget.engine))

        let sampleShape = inputField.sampleShape
        let width = sampleShape.reduce(1, *)
        var latencies: [Double] = []
        latencies.reserveCapacity(total / batchSize + 1)
        var waitSeconds = 0.0
        var correct = 0, labelled = 0
        var confusion: [[Int]] = []
        var classes = 0
        var logitsOut: [Float] = [], predictionsOut: [Int64] = []
        resetPeakResident()
        let start = ContinuousClock.now
        var done = 0
        // A written output holds one pass.
        for pass in 0..<(options.outputPath == nil ? max(1, options.passes) : 1) {
            let epoch = try loader.epoch(pass)
            var passDone = 0
            while passDone < total {
                let waitStart = ContinuousClock.now
                guard let batch = try epoch.next() else { break }
                waitSeconds += seconds(since: waitStart)
                let count = min(batch.count, total - passDone)
                let batchLabels: [Int64] = try labels.map { try Self.integerLabels(batch, field: $0.name) } ?? []
                let computeStart = ContinuousClock.now
                // Runs `rows` samples (at least `count`, more when padded to a fixed batch) and predicts the first `count`.
                func predict(_ span: Span<Float>, rows: Int) throws -> [Int] {
                    try session.run(input: modelInput.name, shape: [rows] + sampleShape, data: span) { outputs in
                        try outputs.withFloats(modelOutput.name) { logits in
                            let width = logits.count / max(1, rows)
                            if classes == 0 {
                                classes = width
                                confusion = Array(repeating: Array(repeating: 0, count: width), count: width)
                            }
                            var result: [Int] = []
                            result.reserveCapacity(count)
                            for row in 0..<count {
                                var best = 0
                                for column in 1..<max(1, width) where logits[row * width + column] > logits[row * width + best] { best = column }
                                result.append(best)
                                if options.outputPath != nil { for column in 0..<width { logitsOut.append(logits[row * width + column]) } }
                            }
                            return result
                        }
                    }
                }
                let predictions: [Int] = unsafe try batch.withField(inputName) { bytes, _ in
                    let floats = unsafe bytes.assumingMemoryBound(to: Float.self)
                    let values = unsafe UnsafeBufferPointer(rebasing: floats[0..<(count * width)])
                    if let fixedBatch, count < fixedBatch {
                        var padded = [Float](repeating: 0, count: fixedBatch * width)
                        for index in 0..<(count * width) { unsafe padded[index] = values[index] }
                        return try predict(padded.span, rows: fixedBatch)
                    }
                    return try predict(unsafe Span(_unsafeElements: values), rows: count)
                }
                latencies.append(seconds(since: computeStart) * 1e3)
                for (row, prediction) in predictions.enumerated() {
                    if options.outputPath != nil { predictionsOut.append(Int64(prediction)) }
                    guard row < batchLabels.count else { continue }
                    let label = Int(batchLabels[row])
                    guard label >= 0 && label < classes else {
                        throw StoreError.invalidArgument("\(storePath): label \(label) of sample \(passDone + row) (field '\(options.labelField)') is outside the model's \(classes) classes")
                    }
                    labelled += 1
                    if label == prediction { correct += 1 }
                    confusion[label][prediction] += 1
                }
                done += count
                passDone += count
            }
        }
        let wall = seconds(since: start)
        if let outputPath = options.outputPath {
            var writeOptions = StoreWriteOptions()
            writeOptions.overwrite = true
            let writer = try StoreWriter(path: outputPath, fields: [
                FieldSpec(name: "logits", dtype: .f32, sampleShape: [classes]), FieldSpec(name: "prediction", dtype: .i64, sampleShape: []),
            ], options: writeOptions)
            try writer.append("logits", values: logitsOut)
            try writer.append("prediction", values: predictionsOut)
            let provenance = try JSONSerialization.data(
                withJSONObject: ["produced_by": "stoke infer", "store": storePath, "model_input": modelInput.name], options: [.sortedKeys])
            try writer.setMetadata("provenance", json: String(decoding: provenance, as: UTF8.self))
            try writer.finish()
        }
        // The first batch builds the plan and packs weights: reported apart, not in the percentiles.
        let firstBatch = latencies.first ?? 0
        // The first batch builds the plan; it counts only when it is the only one.
        let sorted = (latencies.count > 1 ? latencies.dropFirst() : latencies[...]).sorted()
        let percentile = { (p: Double) -> Double in sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))] }
        let waitFraction = waitSeconds / max(wall, 1e-9)
        let computeFraction = latencies.reduce(0, +) / 1e3 / max(wall, 1e-9)
        let bottleneck = waitFraction > 0.2
            ? "data-bound: the engine waited \(Int(waitFraction * 100))% of the time; give the loader more workers or a faster codec"
            : computeFraction > 0.7
                ? "compute-bound: the engine ran \(Int(computeFraction * 100))% of the time; quantize (--int8), prune, or give the engine more threads"
                : "neither loading nor compute dominates: per-batch overhead; try a larger --batch-size"
        return Result(
            samples: done, seconds: wall, samplesPerSecond: Double(done) / max(wall, 1e-9), latencyP50: percentile(0.5),
            latencyP99: percentile(0.99), firstBatchMilliseconds: firstBatch, dataWaitFraction: waitFraction,
            accuracy: labelled > 0 ? Double(correct) / Double(labelled) : nil, confusion: confusion,
            loaderWorkers: budget.loader, engineThreads: budget.engine, threadChoice: budget.why, bottleneck: bottleneck,
            batchSize: batchSize, residentBytes: residentBytes(), peakResidentBytes: peakResidentBytes())
    }

    /// Refuses a label field that is not an integer type `integerLabels` reads.
    static func checkLabelType(_ dtype: DType, field: String, path: String) throws {
        guard labelTypes.contains(dtype.rawValue) else {
            throw StoreError.invalidArgument("\(path): label field '\(field)' is \(dtype.rawValue); labels must be integers (\(labelTypes.joined(separator: ", ")))")
        }
    }

    /// The integer types a label field may have (by `DType` raw value; u32 when the store reads it).
    static let labelTypes = ["u8", "i8", "u16", "i16", "u32", "i32", "i64"]

    /// A batch's label field widened to Int64, whatever integer type the store keeps it in.
    /// Whether each label is a class of the model is checked where it is used.
    public static func integerLabels(_ batch: borrowing Batch, field: String) throws -> [Int64] {
        try unsafe batch.withField(field) { bytes, layout in
            func widen<T: BinaryInteger & BitwiseCopyable>(_ type: T.Type) -> [Int64] {
                unsafe bytes.assumingMemoryBound(to: T.self).map { Int64($0) }
            }
            switch layout.dtype.rawValue {
            case "u8": return widen(UInt8.self)
            case "i8": return widen(Int8.self)
            case "u16": return widen(UInt16.self)
            case "i16": return widen(Int16.self)
            case "u32": return widen(UInt32.self)
            case "i32": return widen(Int32.self)
            case "i64": return widen(Int64.self)
            default:
                throw StoreError.invalidArgument("label field '\(field)' is \(layout.dtype.rawValue); labels must be integers (\(labelTypes.joined(separator: ", ")))")
            }
        }
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = start.duration(to: .now)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    /// Resets the kernel's resident high-water mark (VmHWM) so the next reading is this run's peak.
    static func resetPeakResident() {
        // "5" resets the peak RSS (Linux ≥ 4.0); where it is refused the peak stays the process's.
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    /// The resident high-water mark (VmHWM in /proc/self/status), bytes.
    static func peakResidentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return residentBytes() }
        return kilobytes * 1024
    }

    /// Resident set size now (from /proc/self/statm), bytes.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

extension StreamingInference.Result {
    public var json: [String: Any] {
        var document: [String: Any] = [
            "samples": samples, "seconds": seconds, "samples_per_s": samplesPerSecond,
            "latency_ms": ["p50": latencyP50, "p99": latencyP99, "first_batch": firstBatchMilliseconds], "data_wait_fraction": dataWaitFraction,
            "threads": ["loader": loaderWorkers, "engine": engineThreads, "choice": threadChoice],
            "bottleneck": bottleneck, "batch_size": batchSize, "resident_bytes": residentBytes,
            "peak_resident_bytes": peakResidentBytes,
        ]
        document["accuracy"] = accuracy ?? NSNull()
        if !confusion.isEmpty { document["confusion"] = confusion }
        return document
    }
}
