import Foundation
import StokeLoader
import StokeStore

/// `stoke bench io`: how fast a store reaches the model, against what this machine allows, and why.
public struct IOBenchmark {
    public struct Configuration: Sendable {
        public var loader = LoaderOptions()
        public var epochs = 1
        /// Evict the store from the page cache before each storage read and each loader epoch.
        public var cold = false
        /// Check Fletcher-32 checksums while decoding (the read path's default), in the loader and the
        /// decode ceiling alike.
        public var verifyChecksums = true
        /// Run the loader under this memory limit in bytes (see `MemoryLimit`); nil: no limit.
        public var memoryLimitBytes: Int? = nil
        /// Emulate the model's step: hold each batch this many milliseconds (a sleep, as DLIO and MLPerf
        /// Storage do), and report accelerator utilization. nil: no compute.
        public var computeMillisecondsPerBatch: Double? = nil
        public init() {}
    }

    /// One loader run (one configuration of a sweep).
    public struct Run: Sendable {
        public var settings: [String: String]
        public var samplesPerSecond: Double
        /// Raw (decoded) bytes of delivered samples per second.
        public var decodedBytesPerSecond: Double
        /// Stored bytes of the chunks the loader decoded, per second.
        public var storedBytesPerSecond: Double
        public var efficiency: Double
        public var bottleneck: String
        public var advice: String
        /// Seconds per stage, averaged over workers: `read` (waiting for stored bytes), `decode`,
        /// `gather`, `chunk_wait` (for a chunk another worker decodes), `idle` (no batch to take) and
        /// `other` (the rest), which add up to `wall`; plus the consumer's `wait` and `compute`.
        public var stages: [String: Double]
        public var residentFraction: Double?
        public var stats: LoaderStats
        /// (seconds since start, samples/s in the interval)
        public var timeline: [(Double, Double)]
        /// Accelerator utilization (compute time / wall time) per epoch and its mean, with
        /// `computeMillisecondsPerBatch`; empty and nil otherwise.
        public var auPerEpoch: [Double] = []
        public var au: Double? { auPerEpoch.isEmpty ? nil : auPerEpoch.reduce(0, +) / Double(auPerEpoch.count) }
    }

    public struct Result: Sendable {
        public var path: String
        public var cold: Bool
        public var storage: Throughput
        public var storageResidentFraction: Double?
        public var decode: Throughput
        /// decoded bytes / stored bytes over the loaded fields.
        public var ratio: Double
        public var runs: [Run]
        /// The memory limit in force and how it was applied, when one was asked for.
        public var memoryLimit: (bytes: Int, mode: String, note: String)? = nil
        public var storeBytes = 0
        public var verifyChecksums = true
        public var computeMillisecondsPerBatch: Double? = nil
        /// The loader's base settings, as the JSON reports them.
        public var config: [String: Any] {
            [
                "batch_size": options.batchSize, "workers": options.workers, "prefetch": options.prefetch,
                "order": options.order.description, "drop_last": options.dropLast, "cache_bytes": options.cacheBytes ?? -1,
                "fields": fields, "epochs": epochs, "seed": options.seed, "io_prefetch_bytes": options.ioPrefetchBytes,
                "verify_checksums": verifyChecksums,
            ]
        }
        var options: LoaderOptions
        var fields: [String]
        var epochs: Int
    }

    public let path: String
    public let configuration: Configuration

    public init(path: String, configuration: Configuration) {
        self.path = path
        self.configuration = configuration
    }

    /// Measures the ceilings once, then the loader for each configuration (the sweep's Cartesian product,
    /// or the base configuration alone). `progress` receives (runs done, runs total).
    public func run(sweep: [(knob: String, values: [String])] = [], progress: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        let store = try Store(path: path, options: StoreReadOptions(verifyChecksums: configuration.verifyChecksums))
        let fieldNames = configuration.loader.fields ?? store.fields.map(\.name)
        var rawBytes = 0, storedBytes = 0
        for name in fieldNames {
            let field = try store.field(name)
            rawBytes += field.rawBytes
            storedBytes += try field.storedBytes()
        }
        let ratio = Double(rawBytes) / Double(max(storedBytes, 1))

        var storageResident: Double? = nil
        if configuration.cold {
            store.dropMappedPages()  // the chunk B-tree scan at open mapped some pages: unmap them first
            try PageCache.evict(path)
            storageResident = try PageCache.residentFraction(path)
        } else {
            _ = try Ceilings.storage(path: path, samples: store.sampleCount)  // warm the cache first
        }
        let storage = try Ceilings.storage(path: path, samples: store.sampleCount)
        let decode = try Ceilings.decode(
            store: store, fields: fieldNames, workers: configuration.loader.workers, verifyChecksums: configuration.verifyChecksums)

        var base = configuration.loader
        var limit: MemoryLimit? = nil
        if let bytes = configuration.memoryLimitBytes {
            limit = MemoryLimit(bytes: bytes)
            if limit?.mode == .dropConsumed { base.dropConsumedChunks = true }
        }
        defer { limit?.release() }
        let configurations = try IOBenchmark.expand(base: base, sweep: sweep)
        var runs: [Run] = []
        for (number, (settings, options)) in configurations.enumerated() {
            progress(number, configurations.count)
            runs.append(try measureLoader(store: store, options: options, settings: settings, rawBytes: rawBytes,
                                          ratio: ratio, storage: storage, decode: decode))
        }
        progress(configurations.count, configurations.count)
        var result = Result(path: path, cold: configuration.cold, storage: storage, storageResidentFraction: storageResident,
                            decode: decode, ratio: ratio, runs: runs, options: base, fields: fieldNames,
                            epochs: configuration.epochs)
        result.storeBytes = storage.bytes
        result.verifyChecksums = configuration.verifyChecksums
        result.computeMillisecondsPerBatch = configuration.computeMillisecondsPerBatch
        if let limit { result.memoryLimit = (limit.bytes, limit.mode.rawValue, limit.cgroupReason) }
        return result
    }

    private func measureLoader(
        store: Store, options: LoaderOptions, settings: [String: String], rawBytes: Int, ratio: Double,
        storage: Throughput, decode: Throughput
    ) throws -> Run {
        let loader = try Loader(store: store, options: options)
        let sampleBytes = loader.layouts.reduce(0) { total, layout in
            total + layout.sampleShape.reduce((try? store.field(layout.name).dtype.size) ?? layout.dtype.size, *)
        }
        var total = LoaderStats()
        var resident: Double? = nil
        var timeline: [(Double, Double)] = []
        let start = ContinuousClock.now
        var lastMark = 0.0, samplesSinceMark = 0
        var auPerEpoch: [Double] = []
        var computeTotal = 0.0
        let computeSeconds = configuration.computeMillisecondsPerBatch.map { $0 / 1000 }
        var epochsWall = 0.0
        for epochNumber in 0..<max(1, configuration.epochs) {
            if configuration.cold {
                // Every epoch starts cold, not only the first.
                store.dropMappedPages()
                try PageCache.evict(path)
                resident = try PageCache.residentFraction(path)
            }
            let epochStart = ContinuousClock.now
            var computeThisEpoch = 0.0
            let epoch = try loader.epoch(epochNumber)
            while let batch = try epoch.next() {
                if let computeSeconds {
                    // The model's step, holding the batch as training would.
                    let stepStart = ContinuousClock.now
                    Thread.sleep(forTimeInterval: computeSeconds)
                    computeThisEpoch += (ContinuousClock.now - stepStart).seconds
                }
                samplesSinceMark += batch.count
                _ = consume batch
                let now = (ContinuousClock.now - start).seconds
                if now - lastMark >= 0.1 {
                    timeline.append((now, Double(samplesSinceMark) / (now - lastMark)))
                    lastMark = now
                    samplesSinceMark = 0
                }
            }
            let epochWall = (ContinuousClock.now - epochStart).seconds
            epochsWall += epochWall
            if computeSeconds != nil {
                auPerEpoch.append(computeThisEpoch / max(epochWall, 1e-9))
                computeTotal += computeThisEpoch
            }
            let stats = epoch.stats
            total.batches += stats.batches
            total.samples += stats.samples
            total.readSeconds += stats.readSeconds
            total.decodeSeconds += stats.decodeSeconds
            total.gatherSeconds += stats.gatherSeconds
            total.workerIdleSeconds += stats.workerIdleSeconds
            total.chunkWaitSeconds += stats.chunkWaitSeconds
            total.waitSeconds += stats.waitSeconds
            total.batchBytes += stats.batchBytes
            total.decodedBytes += stats.decodedBytes
            total.storedBytesRead += stats.storedBytesRead
            total.chunkDecodes += stats.chunkDecodes
            total.redecodes += stats.redecodes
            total.cacheHits += stats.cacheHits
            total.ioPrefetchedBytes += stats.ioPrefetchedBytes
            total.ioPrefetchPeakBytes = max(total.ioPrefetchPeakBytes, stats.ioPrefetchPeakBytes)
        }
        // The loader's wall time: the epochs themselves, not the page-cache eviction between them.
        let wall = epochsWall
        total.wallSeconds = wall
        let elapsed = (ContinuousClock.now - start).seconds
        if samplesSinceMark > 0, elapsed > lastMark { timeline.append((elapsed, Double(samplesSinceMark) / (elapsed - lastMark))) }
        let samplesPerSecond = Double(total.samples) / max(wall, 1e-9)
        let decodedPerSecond = samplesPerSecond * Double(sampleBytes)
        let workers = Double(options.workers)
        // Per worker, the stages add up to the wall time of the epochs: `other` is what no stage measured
        // (scheduling, epoch start and end, loader setup between epochs).
        var stages: [String: Double] = [
            "read": total.readSeconds / workers, "decode": total.decodeSeconds / workers,
            "gather": total.gatherSeconds / workers, "chunk_wait": total.chunkWaitSeconds / workers,
            "idle": total.workerIdleSeconds / workers, "wait": total.waitSeconds, "wall": wall,
            "compute": computeTotal,
        ]
        let measured = ["read", "decode", "gather", "chunk_wait", "idle"].reduce(0) { $0 + stages[$1]! }
        if measured > wall {
            // Timer granularity and threads still finishing after the last batch: scale to the wall.
            for key in ["read", "decode", "gather", "chunk_wait", "idle"] { stages[key]! *= wall / measured }
            stages["other"] = 0
        } else {
            stages["other"] = wall - measured
        }
        // The storage ceiling in decoded bytes: what the disk (or page cache) can feed at this ratio.
        let storageDecoded = storage.bytesPerSecond * ratio
        let binding = min(storageDecoded, decode.bytesPerSecond > 0 ? decode.bytesPerSecond : storageDecoded)
        let efficiency = decodedPerSecond / max(binding, 1e-9)
        let libraryReads = loader.layouts.contains { layout in
            guard let field = try? store.field(layout.name) else { return false }
            return field.layout == .chunked && (field.chunkIndex == nil || !field.decodesDirectly)
        }
        let (bottleneck, advice) = IOBenchmark.diagnose(
            stages: stages, workers: workers, cold: configuration.cold, storageDecoded: storageDecoded,
            decodeCeiling: decode.bytesPerSecond, loaderRate: decodedPerSecond, stats: total, options: options,
            libraryReads: libraryReads)
        return Run(
            settings: settings, samplesPerSecond: samplesPerSecond, decodedBytesPerSecond: decodedPerSecond,
            storedBytesPerSecond: decodedPerSecond / ratio, efficiency: efficiency, bottleneck: bottleneck, advice: advice,
            stages: stages, residentFraction: resident, stats: total, timeline: timeline, auPerEpoch: auPerEpoch)
    }

    /// Names the stage that holds the loader back, in plain words, with the knob most likely to help.
    static func diagnose(
        stages: [String: Double], workers: Double, cold: Bool, storageDecoded: Double, decodeCeiling: Double,
        loaderRate: Double, stats: LoaderStats, options: LoaderOptions, libraryReads: Bool = false
    ) -> (String, String) {
        let wall = max(stages["wall"] ?? 0, 1e-9)
        let busy = (stages["read"] ?? 0) + (stages["decode"] ?? 0) + (stages["gather"] ?? 0)
        if cold && storageDecoded < decodeCeiling && loaderRate >= 0.6 * storageDecoded {
            return ("storage-bound", "the disk is the limit: a codec with a higher ratio (lz4-shuffle, deflate) delivers more samples per byte read")
        }
        if busy < 0.5 * wall && (stages["wait"] ?? 0) < 0.1 * wall {
            return ("consumer-bound", "workers are idle half the time and the consumer rarely waits: loading is not the limit")
        }
        if (stages["read"] ?? 0) >= max(stages["decode"] ?? 0, stages["gather"] ?? 0) {
            if libraryReads {
                return ("read-bound", "chunks are read through the HDF5 library (a layout the chunk scanner does not read): repack with `stoke pack` so they are decoded from the memory map")
            }
            let window = options.ioPrefetchBytes >> 20
            return ("read-bound", "workers wait for stored bytes from the disk: " + (window == 0
                ? "turn the I/O prefetcher on (--io-prefetch-mb 64)"
                : "read further ahead (--io-prefetch-mb, now \(window)), or a codec with a higher ratio so fewer bytes are read"))
        }
        if (stages["decode"] ?? 0) >= (stages["gather"] ?? 0) {
            if stats.redecodes > 0 {
                return ("decode-bound", "\(stats.redecodes) chunks were decoded more than once: give the cache more room (--cache-mb) or, for random order, use --order chunk-shuffle")
            }
            return ("decode-bound", "decoding takes most of the time: more --workers (up to the cores), or a faster codec (lz4 rather than deflate)")
        }
        return ("gather-bound", "copying rows into batches dominates: larger chunks per batch (chunk-shuffle with a smaller window) or fewer fields")
    }

    /// The base options with each combination of sweep values applied.
    static func expand(base: LoaderOptions, sweep: [(knob: String, values: [String])]) throws -> [([String: String], LoaderOptions)] {
        var results: [([String: String], LoaderOptions)] = [([:], base)]
        for (knob, values) in sweep {
            var next: [([String: String], LoaderOptions)] = []
            for (settings, options) in results {
                for value in values {
                    var changed = options
                    try apply(knob: knob, value: value, to: &changed)
                    var newSettings = settings
                    newSettings[knob] = value
                    next.append((newSettings, changed))
                }
            }
            results = next
        }
        return results
    }

    /// Sets one loader knob from text: workers, prefetch, batch-size, order, cache-mb, window.
    public static func apply(knob: String, value: String, to options: inout LoaderOptions) throws {
        func positive() throws -> Int {
            guard let number = Int(value), number > 0 else { throw StoreError.invalidArgument("--sweep \(knob)=\(value): not a positive integer") }
            return number
        }
        switch knob {
        case "workers":
            options.workers = try positive()
            guard options.workers <= LoaderOptions.maximumWorkers else {
                throw StoreError.invalidArgument("--sweep workers=\(value): at most \(LoaderOptions.maximumWorkers) loader threads")
            }
        case "prefetch":
            options.prefetch = try positive()
            guard options.prefetch <= LoaderOptions.maximumPrefetch else {
                throw StoreError.invalidArgument("--sweep prefetch=\(value): at most \(LoaderOptions.maximumPrefetch) batches in flight")
            }
        case "batch-size": options.batchSize = try positive()
        case "cache-mb": options.cacheBytes = try positive() << 20
        case "io-prefetch-mb":
            guard let number = Int(value), number >= 0, number <= maximumIOPrefetchMegabytes else {
                throw StoreError.invalidArgument("--sweep io-prefetch-mb=\(value): 0 to \(maximumIOPrefetchMegabytes)")
            }
            options.ioPrefetchBytes = number << 20
        case "window": options.order = .chunkShuffle(window: try positive())
        case "order":
            guard let order = SampleOrder(parsing: value) else {
                throw StoreError.invalidArgument("--sweep order=\(value): use sequential, random or chunk-shuffle[:W]")
            }
            options.order = order
        default:
            throw StoreError.invalidArgument("--sweep: unknown knob '\(knob)' (workers, prefetch, batch-size, order, window, cache-mb, io-prefetch-mb)")
        }
    }

    /// The largest `--io-prefetch-mb`.
    public static let maximumIOPrefetchMegabytes = 1 << 16

    /// Parses `workers=1,2` into a knob and its values.
    public static func parseSweep(_ text: String) throws -> (knob: String, values: [String]) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { throw StoreError.invalidArgument("--sweep '\(text)': expected KNOB=V1,V2,…") }
        return (parts[0], parts[1].split(separator: ",").map(String.init))
    }
}

extension IOBenchmark.Result {
    /// The JSON document `stoke bench io --json` prints.
    public var json: [String: Any] {
        func run(_ run: IOBenchmark.Run, options: Bool) -> [String: Any] {
            var document: [String: Any] = [
                "samples_per_s": run.samplesPerSecond, "decoded_bytes_per_s": run.decodedBytesPerSecond,
                "stored_bytes_per_s": run.storedBytesPerSecond, "efficiency": run.efficiency, "bottleneck": run.bottleneck,
                "advice": run.advice, "stages": run.stages, "settings": run.settings,
                "chunk_decodes": run.stats.chunkDecodes, "redecodes": run.stats.redecodes, "samples": run.stats.samples,
                "bytes_read": run.stats.storedBytesRead, "bytes_decoded": run.stats.decodedBytes,
                "timeline": run.timeline.map { ["t": $0.0, "samples_per_s": $0.1] },
            ]
            if let resident = run.residentFraction { document["resident_fraction"] = resident }
            if let au = run.au {
                document["au"] = au
                document["au_per_epoch"] = run.auPerEpoch
            }
            document["io_prefetched_bytes"] = run.stats.ioPrefetchedBytes
            document["io_prefetch_peak_bytes"] = run.stats.ioPrefetchPeakBytes
            return document
        }
        let first = runs.first!
        var document = run(first, options: true)
        document["path"] = path
        document["cold"] = cold
        document["config"] = config
        document["ratio"] = ratio
        document["resident_fraction"] = first.residentFraction ?? storageResidentFraction ?? 1.0
        document["ceilings"] = [
            "storage_bytes_per_s": storage.bytesPerSecond, "decode_bytes_per_s": decode.bytesPerSecond,
            "storage_decoded_bytes_per_s": storage.bytesPerSecond * ratio,
            "storage_resident_fraction": storageResidentFraction ?? 1.0,
        ]
        if runs.count > 1 { document["sweep"] = runs.map { run($0, options: false) } }
        document["store_bytes"] = storeBytes
        if let computeMillisecondsPerBatch { document["compute_ms_per_batch"] = computeMillisecondsPerBatch }
        if let memoryLimit {
            document["memory_limit"] = ["bytes": memoryLimit.bytes, "mode": memoryLimit.mode, "note": memoryLimit.note] as [String: Any]
        }
        return document
    }
}
