import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeLoader

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream a store through a model: samples/s, latency, data wait, accuracy.",
        discussion: "Example: stoke infer mlp.onnx test.h5 --sweep batch-size=1,8,32,128,512 --max-latency-ms 5")

    @Argument(help: "The model (.onnx or Stoke .h5).") var model: String
    @Argument(help: "The store to stream.") var store: String
    @Option(name: .long, help: "Samples per batch.") var batchSize = 256
    @Option(name: .long, help: "Loader worker threads (default: chosen for this machine).") var workers: Int?
    @Option(name: .long, help: "Engine threads (default: chosen for this machine).") var threads: Int?
    @Option(name: .long, help: "The store field fed to the model (default: the first non-label field).") var inputField: String?
    @Option(name: .long, help: "The label field, for accuracy.") var labelField = "label"
    @Option(name: .long, help: "Per-channel mean on the 0-1 scale (else the store's normalization).") var mean: String?
    @Option(name: .long, help: "Per-channel std on the 0-1 scale.") var std: String?
    @Option(name: .long, help: "Stop after this many samples.") var maxSamples: Int?
    @Option(name: .long, help: "Write logits and predictions to this store.") var output: String?
    @Option(name: .long, parsing: .upToNextOption, help: "Settings to sweep: batch-size=1,8,32 workers=1,2 threads=1,2.") var sweep: [String] = []
    @Option(name: .long, help: "With --sweep: recommend the fastest setting whose p99 latency stays under this (ms).") var maxLatencyMs: Double?
    @Option(name: .long, help: "With --sweep: write the throughput and latency plots to this .svg or .html file.") var report: String?
    @Flag(name: .long, help: "Quantize Gemm/MatMul dynamically to INT8 (per-channel s8 weights, per-batch u8 activations).") var int8 = false
    @Flag(name: .long, help: "Do not check Fletcher-32 checksums while reading the store (checked by default).") var noVerifyChecksums = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard batchSize > 0 else { throw UsageError("--batch-size must be positive") }
        if let workers, workers <= 0 || workers > LoaderOptions.maximumWorkers {
            throw UsageError("--workers must be 1 to \(LoaderOptions.maximumWorkers)")
        }
        if let threads, threads <= 0 { throw UsageError("--threads must be positive") }
        if let output {
            guard sweep.isEmpty else { throw UsageError("--output writes one run's predictions: it does not combine with --sweep") }
            try checkOutputPath(output, option: "--output", inputs: [model, store])
        }
        if maxLatencyMs != nil, sweep.isEmpty { throw UsageError("--max-latency-ms picks a setting of --sweep: give --sweep too") }
        if let report {
            guard !sweep.isEmpty else { throw UsageError("--report needs --sweep") }
            guard report.hasSuffix(".svg") || report.hasSuffix(".html") else { throw UsageError("--report must end in .svg or .html") }
        }
        if (mean == nil) != (std == nil) { throw UsageError("give --mean and --std together") }
        for entry in sweep {
            let parts = entry.split(separator: "=")
            guard parts.count == 2, ["batch-size", "workers", "threads"].contains(String(parts[0])),
                  parts[1].split(separator: ",").allSatisfy({ Int($0).map { $0 > 0 && (parts[0] != "workers" || $0 <= LoaderOptions.maximumWorkers) } ?? false }) else {
                throw UsageError("--sweep '\(entry)': expected batch-size|workers|threads=N,N,…")
            }
        }
    }

    func run() throws {
        try reportingErrors {
            let loaded = int8 ? try loadModel(model).quantizedDynamic() : try loadModel(model)
            var base = StreamingInference.Options()
            base.context = processContext
            base.batchSize = batchSize
            base.loaderWorkers = workers
            base.engineThreads = threads.map { clampedEngineThreads($0) }
            base.inputField = inputField
            base.labelField = labelField
            base.maxSamples = maxSamples
            base.verifyChecksums = !noVerifyChecksums
            if let mean, let std {
                let parse = { (text: String) in text.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) } }
                base.normalization = Normalization(mean: parse(mean), std: parse(std))
            }
            if sweep.isEmpty {
                base.outputPath = output
                let result = try StreamingInference.run(model: loaded, storePath: store, options: base)
                if json { printJSON(result.json.merging(["kernel_set": processContext.kernelSet.jsonObject]) { $1 }) } else { printResult(result) }
                return
            }
            var settings: [([String: Int], StreamingInference.Options)] = [([:], base)]
            for entry in sweep {
                let parts = entry.split(separator: "=")
                let knob = String(parts[0])
                settings = settings.flatMap { current in
                    parts[1].split(separator: ",").map { value -> ([String: Int], StreamingInference.Options) in
                        var options = current.1
                        let number = Int(value)!
                        switch knob {
                        case "batch-size": options.batchSize = number
                        case "workers": options.loaderWorkers = number
                        default: options.engineThreads = clampedEngineThreads(number, option: "--sweep threads=")
                        }
                        return (current.0.merging([knob: number]) { $1 }, options)
                    }
                }
            }
            let progress = ProgressLine(total: settings.count, label: "sweeping")
            var results: [([String: Int], StreamingInference.Result)] = []
            for (index, setting) in settings.enumerated() {
                progress.updateSteps(index, settings.count)
                results.append((setting.0, try StreamingInference.run(model: loaded, storePath: store, options: setting.1)))
            }
            progress.finish()
            let label = { (setting: [String: Int]) in setting.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
            let fastest = results.max { $0.1.samplesPerSecond < $1.1.samplesPerSecond }!
            let underBound = maxLatencyMs.flatMap { bound in results.filter { $0.1.latencyP99 <= bound }.max { $0.1.samplesPerSecond < $1.1.samplesPerSecond } }
            if let report { try writeSweepReport(results.map { (label($0.0), $0.0, $0.1) }, fastest: label(fastest.0), to: report) }
            if json {
                var document: [String: Any] = [
                    "sweep": results.map { entry in entry.1.json.merging(["setting": entry.0]) { $1 } },
                    "recommended": ["throughput": fastest.0],
                    "kernel_set": processContext.kernelSet.jsonObject,
                ]
                if let maxLatencyMs {
                    document["recommended"] = ["throughput": fastest.0, "latency_bound": underBound?.0 ?? NSNull(), "max_latency_ms": maxLatencyMs]
                }
                printJSON(document)
                return
            }
            stoke.printTable(
                ["setting", "samples/s", "p50 ms", "p99 ms", "data wait", "peak memory"],
                results.map { [label($0.0), String(format: "%.0f", $0.1.samplesPerSecond), String(format: "%.2f", $0.1.latencyP50),
                               String(format: "%.2f", $0.1.latencyP99), String(format: "%.1f%%", $0.1.dataWaitFraction * 100),
                               formatBytes($0.1.peakResidentBytes)] })
            print("recommended for throughput: \(label(fastest.0))")
            if let maxLatencyMs {
                print("recommended under p99 \(maxLatencyMs) ms: " + (underBound.map { label($0.0) } ?? "none of these settings"))
            }
        }
    }

    /// Throughput and latency per setting: against the batch size when only it varies (the sweet spot
    /// shows as the knee), else one bar per setting.
    private func writeSweepReport(_ results: [(label: String, setting: [String: Int], result: StreamingInference.Result)], fastest: String,
                                  to path: String) throws {
        let byBatch = results.allSatisfy { $0.setting.keys.sorted() == ["batch-size"] }
        let charts: [String]
        if byBatch {
            let points = results.map { (Double($0.setting["batch-size"]!), $0.result) }
            charts = [
                Report.lineChart(title: "Throughput against batch size", xLabel: "batch size", yLabel: "samples/s",
                                 series: [("samples/s", points.map { ($0.0, $0.1.samplesPerSecond) })]),
                Report.lineChart(title: "Latency per batch against batch size", xLabel: "batch size", yLabel: "ms",
                                 series: [("p50", points.map { ($0.0, $0.1.latencyP50) }), ("p99", points.map { ($0.0, $0.1.latencyP99) })],
                                 references: maxLatencyMs.map { [("latency bound", $0)] } ?? []),
            ]
        } else {
            charts = [
                Report.barChart(title: "Throughput per setting", yLabel: "samples/s", bars: results.map { ($0.label, $0.result.samplesPerSecond) }),
                Report.barChart(title: "p99 latency per setting", yLabel: "ms", bars: results.map { ($0.label, $0.result.latencyP99) }),
            ]
        }
        let text: String
        if path.hasSuffix(".svg") {
            text = Report.svgDocument(charts)
        } else {
            text = Report.html(
                title: "stoke infer \(model) \(store)",
                table: (["setting", "samples/s", "p50 ms", "p99 ms", "data wait", "peak memory"],
                        results.map { [$0.label, String(format: "%.0f", $0.result.samplesPerSecond), String(format: "%.2f", $0.result.latencyP50),
                                       String(format: "%.2f", $0.result.latencyP99), String(format: "%.1f%%", $0.result.dataWaitFraction * 100),
                                       formatBytes($0.result.peakResidentBytes)] }),
                charts: charts, notes: ["Recommended for throughput: \(fastest)."], footer: Machine.summary())
        }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw UsageError("\(path): cannot write the report (\(error.localizedDescription))")
        }
    }

    private func printResult(_ result: StreamingInference.Result) {
        print(String(format: "%d samples in %.3f s: %.0f samples/s (batch %d)", result.samples, result.seconds, result.samplesPerSecond, result.batchSize))
        print(String(format: "latency per batch: p50 %.2f ms, p99 %.2f ms (first batch %.1f ms: planning); data wait %.1f%% of wall time",
                     result.latencyP50, result.latencyP99, result.firstBatchMilliseconds, result.dataWaitFraction * 100))
        print("threads: \(result.loaderWorkers) loader, \(result.engineThreads) engine (\(result.threadChoice))")
        if let accuracy = result.accuracy {
            print(String(format: "accuracy: %.2f%%", accuracy * 100))
            let worst = result.confusion.enumerated().compactMap { label, row -> (Int, Int, Int)? in
                guard let (prediction, count) = row.enumerated().filter({ $0.offset != label }).max(by: { $0.element < $1.element }).map({ ($0.offset, $0.element) }),
                      count > 0 else { return nil }
                return (label, prediction, count)
            }.sorted { $0.2 > $1.2 }.prefix(3)
            if !worst.isEmpty {
                print("most confused: " + worst.map { "\($0.0)→\($0.1) ×\($0.2)" }.joined(separator: ", "))
            }
        }
        print("bottleneck: \(result.bottleneck)")
        if let output { print("predictions written to \(output)") }
    }
}
