import ArgumentParser
import Foundation
import StokeBench
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
        @Flag(name: .long, help: "Evict the store from the page cache before reading (no root needed).") var cold = false
        @Option(name: .long, parsing: .upToNextOption, help: "Knob values to sweep, e.g. workers=1,2 prefetch=1,2,4,8.") var sweep: [String] = []
        @Option(name: .long, help: "Write an SVG or HTML report.") var report: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        func validate() throws {
            guard batchSize > 0, prefetch > 0, epochs > 0, (cacheMb ?? 0) >= 0 else {
                throw UsageError("--batch-size, --prefetch and --epochs must be positive")
            }
            if let workers, workers <= 0 { throw UsageError("--workers must be positive") }
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
                    printJSON(result.json.merging(["loader_state": LoaderState(seed: configuration.loader.seed, epoch: epochs).jsonObject]) { $1 })  // where a next run resumes (epoch after the measured ones)
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
            for run in result.runs {
                let stages = ["read", "decode", "gather", "idle", "idle_no_work", "idle_chunk_wait", "wait"].map { String(format: "%@ %.3fs", $0, run.stages[$0] ?? 0) }.joined(separator: ", ")
                print(String(format: "efficiency %.0f%% of the binding ceiling; %@: %@", run.efficiency * 100, run.bottleneck, run.advice))
                print("stages per worker: \(stages) (wall \(String(format: "%.3f", run.stages["wall"] ?? 0))s); chunk decodes \(run.stats.chunkDecodes), re-decodes \(run.stats.redecodes)")
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
                text = charts.count == 1 ? charts[0] : "<svg xmlns='http://www.w3.org/2000/svg' width='720' height='720'>"
                    + "<g>\(charts[0].replacingOccurrences(of: "<svg ", with: "<svg y='0' "))</g><g>\(charts[1].replacingOccurrences(of: "<svg ", with: "<svg y='360' "))</g></svg>"
            } else {
                text = Report.html(
                    title: "stoke bench io \(result.path)",
                    table: (["run", "samples/s", "decoded MB/s", "efficiency", "bottleneck"],
                            result.runs.map { [$0.settings.description, String(format: "%.0f", $0.samplesPerSecond),
                                               String(format: "%.0f", $0.decodedBytesPerSecond / 1e6), String(format: "%.2f", $0.efficiency), $0.bottleneck] }),
                    charts: charts,
                    notes: [String(format: "Storage ceiling %.0f MB/s stored, decode ceiling %.0f MB/s decoded (%@ page cache).",
                                   result.storage.bytesPerSecond / 1e6, result.decode.bytesPerSecond / 1e6, result.cold ? "cold" : "warm")])
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
            guard chunks > 0 else { throw UsageError("--chunks must be positive") }
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
                    printJSON(result.json)
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
