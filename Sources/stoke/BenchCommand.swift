import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokePack
import StokeStore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure how fast data reaches the model, against this machine's own ceilings.",
        subcommands: [IO.self, Codecs.self])

    struct IO: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "io",
            abstract: "Storage and decode ceilings, the loader as configured, its efficiency and bottleneck.")

        @Argument(help: "The store.") var store: String
        @Option(name: .long, help: "Fields to load, comma-separated (default: all).") var fields: String?
        @Option(name: .long, help: "Samples per batch.") var batchSize = 256
        @Option(name: .long, help: "Worker threads (default: all cores).") var workers: Int?
        @Option(name: .long, help: "Batches in flight.") var prefetch = 4
        @Option(name: .long, help: "sequential, random, chunk-shuffle or chunk-shuffle:W.") var order = "chunk-shuffle"
        @Option(name: .long, help: "Epochs to measure.") var epochs = 1
        @Option(name: .long, help: "Decoded-chunk cache budget in MiB (default: sized for the order).") var cacheMb: Int?
        @Flag(name: .long, help: "Evict the store from the page cache before reading and before every epoch (no root needed).") var cold = false
        @Option(name: .long, help: "Stored bytes the I/O prefetcher reads ahead of decoding, in MiB (0: off).") var ioPrefetchMb = 64
        @Option(name: .long, help: "Run under this memory limit (bytes, or with K/M/G): a cgroup v2 limit where writable, else chunks leave the page cache once decoded.") var memoryLimit: String?
        @Option(name: .long, help: "Emulate the model's step: hold each batch this many ms, and report accelerator utilization (AU).") var computeMsPerBatch: Double?
        @Flag(name: .long, help: "Do not check Fletcher-32 checksums while reading (they are checked by default).") var noVerifyChecksums = false
        @Option(name: .long, parsing: .upToNextOption, help: "Knob values to sweep, e.g. workers=1,2 prefetch=1,2,4,8.") var sweep: [String] = []
        @Option(name: .long, help: "Write an SVG or HTML report.") var report: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func validate() throws {
            guard batchSize > 0, prefetch > 0, epochs > 0, (cacheMb ?? 0) >= 0 else {
                throw UsageError("--batch-size, --prefetch and --epochs must be positive")
            }
            if let workers, workers <= 0 || workers > LoaderOptions.maximumWorkers {
                throw UsageError("--workers must be 1 to \(LoaderOptions.maximumWorkers)")
            }
            guard prefetch <= LoaderOptions.maximumPrefetch else {
                throw UsageError("--prefetch must be 1 to \(LoaderOptions.maximumPrefetch) batches in flight")
            }
            guard epochs <= 100_000, (cacheMb ?? 0) <= 1 << 24 else { throw UsageError("--epochs or --cache-mb is out of range") }
            guard ioPrefetchMb >= 0, ioPrefetchMb <= IOBenchmark.maximumIOPrefetchMegabytes else {
                throw UsageError("--io-prefetch-mb must be 0 to \(IOBenchmark.maximumIOPrefetchMegabytes)")
            }
            if let memoryLimit {
                guard let bytes = MemoryBudget.parseByteCount(memoryLimit), bytes >= 16 << 20 else {
                    throw UsageError("--memory-limit '\(memoryLimit)': a byte count of at least 16M (e.g. 2G, 512M, 1073741824)")
                }
            }
            if let computeMsPerBatch, !(computeMsPerBatch >= 0 && computeMsPerBatch <= 60_000) {
                throw UsageError("--compute-ms-per-batch must be 0 to 60000")
            }
            guard SampleOrder(parsing: order) != nil else { throw UsageError("--order '\(order)': use sequential, random or chunk-shuffle[:W]") }
            if let report, !(report.hasSuffix(".svg") || report.hasSuffix(".html")) {
                throw UsageError("--report must end in .svg or .html")
            }
        }

        func run() throws {
            try reportingErrors {
                var configuration = IOBenchmark.Configuration()
                configuration.loader.fields = fields.map { $0.split(separator: ",").map(String.init) }
                configuration.loader.batchSize = batchSize
                configuration.loader.workers = workers ?? ProcessInfo.processInfo.activeProcessorCount
                configuration.loader.prefetch = prefetch
                configuration.loader.order = SampleOrder(parsing: order)!
                configuration.loader.cacheBytes = cacheMb.map { $0 << 20 }
                configuration.epochs = epochs
                configuration.cold = cold
                configuration.loader.ioPrefetchBytes = ioPrefetchMb << 20
                configuration.verifyChecksums = !noVerifyChecksums
                configuration.memoryLimitBytes = memoryLimit.flatMap(MemoryBudget.parseByteCount)
                configuration.computeMillisecondsPerBatch = computeMsPerBatch
                let sweeps = try sweep.map { try IOBenchmark.parseSweep($0) }
                for (knob, values) in sweeps {
                    var probe = configuration.loader
                    for value in values { try IOBenchmark.apply(knob: knob, value: value, to: &probe) }
                }
                let progress = ProgressLine(total: 1, label: "measuring")
                let result = try IOBenchmark(path: store, configuration: configuration).run(sweep: sweeps) { done, total in
                    progress.updateSteps(done, total)
                }
                progress.finish()
                if let report { try writeReport(result, to: report) }
                if json {
                    printJSON(result.json.merging([
                        "kernel_set": processKernelSet.jsonObject,
                        // Where a next run resumes: the epoch after the measured ones.
                        "loader_state": LoaderState(seed: configuration.loader.seed, epoch: epochs).jsonObject,
                    ]) { $1 })
                } else {
                    printTable(result)
                }
            }
        }

        private func printTable(_ result: IOBenchmark.Result) {
            let mb = { (value: Double) in String(format: "%.0f MB/s", value / 1e6) }
            print("\(result.path): \(result.cold ? "cold" : "warm") page cache, ratio \(String(format: "%.2f", result.ratio))")
            var rows: [[String]] = [
                ["storage ceiling (sequential read)", mb(result.storage.bytesPerSecond) + " stored", mb(result.storage.bytesPerSecond * result.ratio) + " decoded", "-"],
                ["decode ceiling (all cores, no batching)", "-", mb(result.decode.bytesPerSecond), String(format: "%.0f", result.decode.samplesPerSecond)],
            ]
            for run in result.runs {
                let name = run.settings.isEmpty ? "loader" : "loader " + run.settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                rows.append([name, mb(run.storedBytesPerSecond) + " stored", mb(run.decodedBytesPerSecond), String(format: "%.0f", run.samplesPerSecond)])
            }
            stoke.printTable(["measurement", "stored", "decoded", "samples/s"], rows)
            if let limit = result.memoryLimit {
                print("memory limit \(formatBytes(limit.bytes)) (store \(formatBytes(result.storeBytes))): \(limit.mode)" + (limit.note.isEmpty ? "" : "; \(limit.note)"))
            }
            if !result.verifyChecksums { print("checksums: not verified (--no-verify-checksums)") }
            for run in result.runs {
                let stages = ["read", "decode", "gather", "chunk_wait", "idle", "other"].map { String(format: "%@ %.3fs", $0, run.stages[$0] ?? 0) }.joined(separator: " + ")
                print(String(format: "efficiency %.0f%% of the binding ceiling; %@: %@", run.efficiency * 100, run.bottleneck, run.advice))
                print("stages per worker: \(stages) = wall \(String(format: "%.3f", run.stages["wall"] ?? 0))s; consumer waited \(String(format: "%.3f", run.stages["wait"] ?? 0))s; chunk decodes \(run.stats.chunkDecodes), re-decodes \(run.stats.redecodes); read ahead \(formatBytes(run.stats.ioPrefetchedBytes)) (at most \(formatBytes(run.stats.ioPrefetchPeakBytes)) ahead)")
                if let au = run.au {
                    print(String(format: "AU %.1f%% (compute %.1f ms per batch / wall; per epoch: %@); MLPerf Storage asks for at least 90%%",
                                 au * 100, result.computeMillisecondsPerBatch ?? 0,
                                 run.auPerEpoch.map { String(format: "%.1f%%", $0 * 100) }.joined(separator: ", ")))
                }
                if let resident = run.residentFraction { print(String(format: "resident before the epoch: %.1f%%", resident * 100)) }
            }
        }

        private func writeReport(_ result: IOBenchmark.Result, to path: String) throws {
            let sampleBytes = result.decode.samples > 0 ? Double(result.decode.bytes) / Double(result.decode.samples) : 1
            let timeline = Report.lineChart(
                title: "Loader throughput over time", xLabel: "seconds", yLabel: "samples/s",
                series: result.runs.map { run in
                    (run.settings.isEmpty ? "loader" : run.settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "), run.timeline)
                },
                references: [("decode ceiling", result.decode.bytesPerSecond / max(sampleBytes, 1)),
                             ("storage ceiling", result.storage.bytesPerSecond * result.ratio / max(sampleBytes, 1))])
            var charts = [timeline]
            if result.runs.count > 1 {
                charts.append(Report.barChart(
                    title: "Sweep", yLabel: "samples/s",
                    bars: result.runs.map { ($0.settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "), $0.samplesPerSecond) }))
            }
            let text: String
            if path.hasSuffix(".svg") {
                text = Report.svgDocument(charts)
            } else {
                text = Report.html(
                    title: "stoke bench io \(result.path)",
                    table: (["run", "samples/s", "decoded MB/s", "efficiency", "bottleneck"],
                            result.runs.map { [$0.settings.description, String(format: "%.0f", $0.samplesPerSecond),
                                               String(format: "%.0f", $0.decodedBytesPerSecond / 1e6), String(format: "%.2f", $0.efficiency), $0.bottleneck] }),
                    charts: charts,
                    notes: [String(format: "Storage ceiling %.0f MB/s stored, decode ceiling %.0f MB/s decoded (%@ page cache).",
                                   result.storage.bytesPerSecond / 1e6, result.decode.bytesPerSecond / 1e6, result.cold ? "cold" : "warm")],
                    footer: Machine.summary())
            }
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    struct Codecs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "codecs",
            abstract: "Compare codecs on a sample of a store's or NPY array's chunks: ratio, speed, delivered samples/s.")

        @Argument(help: "A store (.h5) or an NPY array (.npy).") var input: String
        @Option(name: .long, help: "The store field to sample (default: the largest).") var field: String?
        @Option(name: .long, help: "Chunks to sample.") var chunks = 16
        @Option(name: .long, help: "Codecs to try, comma-separated.") var codecs = "none,lz4,lz4-shuffle,deflate:1,deflate:6"
        @Flag(name: .long, help: "Print JSON.") var json = false

        func validate() throws {
            guard chunks > 0, chunks <= 1 << 20 else { throw UsageError("--chunks must be 1 to 1048576") }
            guard codecs.split(separator: ",").count > 0 else {
                throw UsageError("--codecs is empty: name at least one of lz4, lz4-shuffle, deflate[:1-9], none")
            }
            for name in codecs.split(separator: ",") where Codec(parsing: String(name)) == nil {
                throw UsageError("--codecs: '\(name)' is not lz4, lz4-shuffle, deflate[:1-9] or none")
            }
        }

        func run() throws {
            try reportingErrors {
                let result = try CodecBenchmark.run(
                    input: input, field: field, chunks: chunks, codecs: codecs.split(separator: ",").map { Codec(parsing: String($0))! },
                    cores: ProcessInfo.processInfo.activeProcessorCount
                ) { path in
                    let array = try NPYArray(path: path)
                    return (array.dtype.size, array.sampleBytes, array.count, { rows in
                        var bytes: [UInt8] = []
                        unsafe try array.forEachBatch(batchRows: rows.count, in: rows) { _, chunk in unsafe bytes += unsafe chunk }
                        return bytes
                    })
                }
                if json {
                    printJSON(result.json.merging(["kernel_set": processKernelSet.jsonObject]) { $1 })
                    return
                }
                print(String(format: "%@: %d chunks of %@ sampled; storage reads %.0f MB/s warm, %.0f MB/s cold (%.0f%% resident after eviction); %d cores",
                             input, result.chunksSampled, formatBytes(result.chunkBytes), result.warmReadBytesPerSecond / 1e6,
                             result.coldReadBytesPerSecond / 1e6, result.coldResidentFraction * 100, result.cores))
                stoke.printTable(
                    ["codec", "ratio", "compress MB/s/core", "decode MB/s/core", "warm samples/s", "cold samples/s"],
                    result.rows.map {
                        [$0.codec.description, String(format: "%.2f", $0.ratio), String(format: "%.0f", $0.compressBytesPerSecond / 1e6),
                         String(format: "%.0f", $0.decodeBytesPerSecond / 1e6), String(format: "%.0f", $0.warmSamplesPerSecond),
                         String(format: "%.0f", $0.coldSamplesPerSecond)]
                    })
                print("best delivered samples/s: \(result.bestWarm) from the page cache, \(result.bestCold) from a cold disk")
            }
        }
    }
}
