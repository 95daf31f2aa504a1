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
        /// Seconds per stage, averaged over workers (read, decode, gather), the consumer's wait, the
        /// rest of the workers' time (`idle`), and wall time.
        public var stages: [String: Double]
        public var residentFraction: Double?
        public var stats: LoaderStats
        /// (seconds since start, samples/s in the interval)
        public var timeline: [(Double, Double)]
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
        /// The loader's base settings, as the JSON reports them.
        public var config: [String: Any] {
            [
                "batch_size": options.batchSize, "workers": options.workers, "prefetch": options.prefetch,
                "order": options.order.description, "drop_last": options.dropLast, "cache_bytes": options.cacheBytes ?? -1,
                "fields": fields, "epochs": epochs, "seed": options.seed,
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
        let store = try Store(path: path)
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
            try PageCache.evict(path)
            storageResident = try PageCache.residentFraction(path)
        } else {
            _ = try Ceilings.storage(path: path, samples: store.sampleCount)  // warm the cache first
        }
        let storage = try Ceilings.storage(path: path, samples: store.sampleCount)
        let decode = try Ceilings.decode(store: store, fields: fieldNames, workers: configuration.loader.workers)

        let configurations = try IOBenchmark.expand(base: configuration.loader, sweep: sweep)
        var runs: [Run] = []
        for (number, (settings, options)) in configurations.enumerated() {
            progress(number, configurations.count)
            runs.append(try measureLoader(store: store, options: options, settings: settings, rawBytes: rawBytes,
                                          ratio: ratio, storage: storage, decode: decode))
        }
        progress(configurations.count, configurations.count)
        return Result(path: path, cold: configuration.cold, storage: storage, storageResidentFraction: storageResident,
                      decode: decode, ratio: ratio, runs: runs, options: configuration.loader, fields: fieldNames,
                      epochs: configuration.epochs)
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
        for epochNumber in 0..<max(1, configuration.epochs) {
            if configuration.cold {
                store.dropMappedPages()
                try PageCache.evict(path)
                resident = try PageCache.residentFraction(path)
            }
            let epoch = try loader.epoch(epochNumber)
            while let batch = try epoch.next() {
                samplesSinceMark += batch.count
                let now = (ContinuousClock.now - start).seconds
                if now - lastMark >= 0.1 {
                    timeline.append((now, Double(samplesSinceMark) / (now - lastMark)))
                    lastMark = now
                    samplesSinceMark = 0
                }
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
        }
        let wall = (ContinuousClock.now - start).seconds
        total.wallSeconds = wall
        if samplesSinceMark > 0, wall > lastMark { timeline.append((wall, Double(samplesSinceMark) / (wall - lastMark))) }
        let samplesPerSecond = Double(total.samples) / max(wall, 1e-9)
        let decodedPerSecond = samplesPerSecond * Double(sampleBytes)
        let workers = Double(options.workers)
        var stages: [String: Double] = [
            "read": total.readSeconds / workers, "decode": total.decodeSeconds / workers,
            "gather": total.gatherSeconds / workers, "wait": total.waitSeconds, "wall": wall,
        ]
        stages["idle"] = max(0, wall - stages["read"]! - stages["decode"]! - stages["gather"]!)
        // What the idle time was spent on: no batch to take (prefetch full or no free buffer), or waiting
        // for a chunk another worker was decoding; the rest is scheduling and epoch start/end.
        stages["idle_no_work"] = total.workerIdleSeconds / workers
        stages["idle_chunk_wait"] = total.chunkWaitSeconds / workers
        // The storage ceiling in decoded bytes: what the disk (or page cache) can feed at this ratio.
        let storageDecoded = storage.bytesPerSecond * ratio
        let binding = min(storageDecoded, decode.bytesPerSecond > 0 ? decode.bytesPerSecond : storageDecoded)
        let efficiency = decodedPerSecond / max(binding, 1e-9)
        let (bottleneck, advice) = IOBenchmark.diagnose(
            stages: stages, workers: workers, cold: configuration.cold, storageDecoded: storageDecoded,
            decodeCeiling: decode.bytesPerSecond, loaderRate: decodedPerSecond, stats: total, options: options)
        return Run(
            settings: settings, samplesPerSecond: samplesPerSecond, decodedBytesPerSecond: decodedPerSecond,
            storedBytesPerSecond: decodedPerSecond / ratio, efficiency: efficiency, bottleneck: bottleneck, advice: advice,
            stages: stages, residentFraction: resident, stats: total, timeline: timeline)
    }

    /// Names the stage that holds the loader back, in plain words, with the knob most likely to help.
    static func diagnose(
        stages: [String: Double], workers: Double, cold: Bool, storageDecoded: Double, decodeCeiling: Double,
        loaderRate: Double, stats: LoaderStats, options: LoaderOptions
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
            return ("storage-bound", "reads go through the HDF5 library: run `stoke index` on the store so chunks are decoded from the memory map")
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
        case "workers": options.workers = try positive()
        case "prefetch": options.prefetch = try positive()
        case "batch-size": options.batchSize = try positive()
        case "cache-mb": options.cacheBytes = try positive() << 20
        case "window": options.order = .chunkShuffle(window: try positive())
        case "order":
            guard let order = SampleOrder(parsing: value) else {
                throw StoreError.invalidArgument("--sweep order=\(value): use sequential, random or chunk-shuffle[:W]")
            }
            options.order = order
        default:
            throw StoreError.invalidArgument("--sweep: unknown knob '\(knob)' (workers, prefetch, batch-size, order, window, cache-mb)")
        }
    }

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
        return document
    }
}
