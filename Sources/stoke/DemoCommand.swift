import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokePack
import StokeStore

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the main job on its embedded default and report what it measured.",
        discussion: """
            Packs Fashion-MNIST (Debian's dataset-fashion-mnist; a generated dataset with the same shapes \
            when it is not installed) into train and test stores, inspects and verifies them, and streams them \
            through the loader. Training, compression and inference join as their issues land.
            """)

    static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

    @Option(name: .long, help: "Where to write the demo's files.") var directory: String = "stoke-demo"
    @Option(name: .long, help: "Samples of the generated dataset when Fashion-MNIST is not installed.") var samples: Int = 60_000
    @Flag(name: .long, help: "Use the generated dataset even when Fashion-MNIST is installed.") var generated = false
    @Option(name: .long, help: "Epochs to train the teacher MLP.") var epochs = 3
    @Flag(name: .long, help: "Only pack, verify and stream the stores (no training or model variants).") var dataOnly = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard samples > 0 else { throw UsageError("--samples must be positive") }
        guard epochs > 0 else { throw UsageError("--epochs must be positive") }
    }

    func run() throws {
        try reportingErrors {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let useFashion = !generated && FileManager.default.fileExists(atPath: Demo.fashionMNIST + "/train-images-idx3-ubyte.gz")
            let dataset = useFashion ? "Fashion-MNIST (\(Demo.fashionMNIST))" : "a generated dataset with Fashion-MNIST's shapes (Fashion-MNIST is not installed)"
            if !json { print("stoke demo: \(dataset)") }
            var document: [String: Any] = ["dataset": useFashion ? "fashion-mnist" : "generated"]
            var stores: [(name: String, path: String)] = []
            for split in ["train", "test"] {
                let path = "\(directory)/\(split).h5"
                let started = Date()
                if useFashion {
                    try packFashion(split: split, to: path)
                } else {
                    try packGenerated(samples: split == "train" ? samples : max(1, samples / 6), seed: split == "train" ? 1 : 2, to: path)
                }
                document["\(split)_pack_seconds"] = Date().timeIntervalSince(started)
                stores.append((split, path))
            }
            var streams: [[String: Any]] = []
            for (split, path) in stores {
                let report = try InspectReport(path: path)
                let verified = try Store(path: path, options: StoreReadOptions(verifyChecksums: true)).fields.reduce(0) { $0 + (try $1.verify()) }
                var options = LoaderOptions()
                options.batchSize = 256
                options.order = split == "train" ? .chunkShuffle(window: 4) : .sequential
                options.seed = 42
                let loader = try Loader(store: Store(path: path), options: options)
                let started = ContinuousClock.now
                let epoch = try loader.epoch(0)
                var delivered = 0
                var marks: [(Double, Int)] = []  // (seconds since start, samples so far) per batch
                while let batch = try epoch.next() {
                    delivered += batch.count
                    let now = started.duration(to: .now)
                    marks.append((Double(now.components.seconds) + Double(now.components.attoseconds) * 1e-18, delivered))
                }
                // Throughput over time: samples/s over windows of 8 batches.
                var timeline: [[Double]] = []
                for index in stride(from: 8, to: marks.count, by: 4) {
                    let (t0, n0) = marks[index - 8], (t1, n1) = marks[index]
                    if t1 > t0 { timeline.append([t1, Double(n1 - n0) / (t1 - t0)]) }
                }
                let elapsed = started.duration(to: .now)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                let stats = epoch.stats
                let stream: [String: Any] = [
                    "store": split, "order": options.order.description, "samples": delivered, "seconds": seconds,
                    "samples_per_s": Double(delivered) / max(seconds, 1e-9), "batches": stats.batches,
                    "data_wait_fraction": stats.waitSeconds / max(seconds, 1e-9), "chunk_decodes": stats.chunkDecodes,
                    "normalized": loader.layouts.first { $0.name == "image" }?.dtype == .f32,
                    "pinned": loader.pinning.pinned, "verified_chunks": verified, "timeline": timeline,
                ]
                streams.append(stream)
                document[split] = report.json
                if !json {
                    print("")
                    report.printTable()
                    print("verify: \(verified) chunks decode and match their Fletcher-32 checksums")
                    print(String(format: "loader (%@, batch 256, %@): %d samples in %.3f s = %.0f samples/s; %d chunk decodes; pinned buffers: %@",
                                 options.order.description, stream["normalized"] as? Bool == true ? "normalized to f32" : "u8",
                                 delivered, seconds, Double(delivered) / max(seconds, 1e-9), stats.chunkDecodes,
                                 loader.pinning.pinned ? "yes" : "no (\(loader.pinning.reason))"))
                }
            }
            document["streams"] = streams
            if !dataOnly { document["variants"] = try compressionTable(trainPath: stores[0].path, testPath: stores[1].path) }
            try writeReport(document)
            if json { printJSON(document) }
        }
    }

    /// Trains the teacher, derives the variants available so far (FP32, dynamic INT8), streams the test
    /// store through each and prints one table.
    private func compressionTable(trainPath: String, testPath: String) throws -> [[String: Any]] {
        let trainStore = try Store(path: trainPath)
        let sampleShape = try trainStore.field("image").sampleShape
        let model = try SequentialModel(
            layers: [.flatten, .linear(inFeatures: 784, outFeatures: 512), .relu, .linear(inFeatures: 512, outFeatures: 256), .relu,
                     .linear(inFeatures: 256, outFeatures: 10)],
            sampleShape: sampleShape, seed: 42)
        var options = TrainingOptions()
        options.schedule = .cosine(epochs: epochs)
        options.seed = 42
        let trainer = try Trainer(model: model, options: options)
        var loaderOptions = LoaderOptions()
        loaderOptions.fields = ["image", "label"]
        loaderOptions.batchSize = 128
        loaderOptions.seed = 42
        loaderOptions.workers = 1
        loaderOptions.outputTypes["image"] = .f32
        let loader = try Loader(store: trainStore, options: loaderOptions)
        let started = Date()
        for epochNumber in 0..<epochs {
            trainer.startEpoch(epochNumber)
            let epoch = try loader.epoch(epochNumber)
            let progress = ProgressLine(total: trainStore.sampleCount, label: "training teacher \(epochNumber + 1)/\(epochs)")
            var seen = 0
            while let batch = try epoch.next() {
                let count = batch.count
                let labels = try batch.values("label", as: Int64.self)
                _ = unsafe try batch.withField("image") { bytes, _ in
                    unsafe try labels.withUnsafeBufferPointer { unsafe try trainer.step(input: unsafe bytes.assumingMemoryBound(to: Float.self), labels: $0, count: count) }
                }
                seen += count
                progress.update(seen)
            }
            progress.finish()
        }
        let trainingSeconds = Date().timeIntervalSince(started)
        let teacherPath = "\(directory)/teacher.h5"
        try trainer.model().save(to: teacherPath, metadata: ["trained_on": trainPath])
        let fp32 = try Model.load(path: teacherPath)

        // A student a tenth the size, distilled from the teacher's soft targets on the same batches.
        let studentModel = try SequentialModel(
            layers: [.flatten, .linear(inFeatures: 784, outFeatures: 64), .relu, .linear(inFeatures: 64, outFeatures: 10)],
            sampleShape: sampleShape, seed: 42)
        var studentOptions = TrainingOptions()
        studentOptions.learningRate = 2e-3
        studentOptions.schedule = .cosine(epochs: epochs)
        studentOptions.seed = 42
        let student = try Trainer(model: studentModel, options: studentOptions)
        let teacherSession = Session(model: fp32)
        for epochNumber in 0..<epochs {
            student.startEpoch(epochNumber)
            let progress = ProgressLine(total: trainStore.sampleCount, label: "distilling student \(epochNumber + 1)/\(epochs)")
            _ = try trainEpoch(student, epoch: try loader.epoch(epochNumber), field: "image", progress: progress,
                               teacher: (teacherSession, fp32.inputs[0].name, fp32.outputs[0].name, 2, 0.5))
            progress.finish()
        }
        let studentPath = "\(directory)/student.h5"
        try student.model().save(to: studentPath, metadata: ["distilled_from": teacherPath])
        let studentFP32 = try Model.load(path: studentPath)

        // Half the hidden neurons pruned by L2 norm (a smaller dense MLP), fine-tuned one epoch.
        let teacherNative = try SequentialModel.load(path: teacherPath)
        var pruneOptions = TrainingOptions()
        pruneOptions.learningRate = 5e-4
        pruneOptions.seed = 42
        let finetuner = try Trainer(model: try teacherNative.prunedNeurons(amount: 0.5), options: pruneOptions)
        let pruneProgress = ProgressLine(total: trainStore.sampleCount, label: "fine-tuning pruned teacher")
        _ = try trainEpoch(finetuner, epoch: try loader.epoch(epochs), field: "image", progress: pruneProgress)
        pruneProgress.finish()
        let prunedPath = "\(directory)/teacher-pruned.h5"
        try finetuner.model().save(to: prunedPath, metadata: ["pruned_from": teacherPath, "method": "neurons", "amount": "0.5"])
        let pruned = try Model.load(path: prunedPath)

        // MACs are counted on the FP32 graph: quantization changes their cost, not their number.
        let variants: [(name: String, model: Model, bytesPerParameter: Double, fp32: Model)] = [
            ("teacher FP32", fp32, 4, fp32), ("teacher INT8 (dynamic)", try fp32.quantizedDynamic(), 1, fp32),
            ("teacher 50% neurons pruned + fine-tuned", pruned, 4, pruned), ("pruned INT8 (dynamic)", try pruned.quantizedDynamic(), 1, pruned),
            ("student 784-64-10 distilled", studentFP32, 4, studentFP32), ("student INT8 (dynamic)", try studentFP32.quantizedDynamic(), 1, studentFP32),
        ]
        var rows: [[String: Any]] = []
        var baseline = 0.0
        for variant in variants {
            var options = StreamingInference.Options()
            options.batchSize = 256
            let result = try StreamingInference.run(model: variant.model, storePath: testPath, options: options)
            if baseline == 0 { baseline = result.samplesPerSecond }
            let macs = try Session(model: variant.fp32).costs(inputShapes: [variant.fp32.inputs[0].name: [1] + sampleShape]).reduce(0) { $0 + $1.macs }
            rows.append([
                "variant": variant.name, "parameters": variant.model.parameterCount,
                "size_bytes": Int(Double(variant.model.parameterCount) * variant.bytesPerParameter), "macs": macs,
                "accuracy": result.accuracy ?? 0, "samples_per_s": result.samplesPerSecond,
                "data_wait_fraction": result.dataWaitFraction, "speedup": result.samplesPerSecond / max(baseline, 1e-9),
                "latency_ms_p50": result.latencyP50,
            ])
        }
        if !json {
            print(String(format: "\nteacher MLP 784-512-256-10 trained for %d epochs in %.1f s; pruned copy fine-tuned 1 epoch; student distilled (T = 2, alpha = 0.5); variants streamed through the test store:", epochs, trainingSeconds))
            printTable(
                ["variant", "parameters", "size", "MACs", "accuracy", "samples/s", "data wait", "speedup"],
                rows.map {
                    [$0["variant"] as! String, "\($0["parameters"] as! Int)", formatBytes($0["size_bytes"] as! Int), "\($0["macs"] as! Int)",
                     String(format: "%.2f%%", ($0["accuracy"] as! Double) * 100), String(format: "%.0f", $0["samples_per_s"] as! Double),
                     String(format: "%.1f%%", ($0["data_wait_fraction"] as! Double) * 100), String(format: "%.2fx", $0["speedup"] as! Double)]
                })
            print("(statically quantized and mixed-precision variants join as their issue lands)")
        }
        return rows
    }

    /// `report.json` and a `report.html` with the variants table and a plot of accuracy against samples/s.
    private func writeReport(_ document: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])
        try data.write(to: URL(fileURLWithPath: "\(directory)/report.json"))
        let variants = document["variants"] as? [[String: Any]] ?? []
        let chart = Report.lineChart(
            title: "Accuracy against throughput", xLabel: "samples/s", yLabel: "test accuracy",
            series: variants.map { ($0["variant"] as! String, [($0["samples_per_s"] as! Double, $0["accuracy"] as! Double)]) },
            zeroBased: false, legendRight: true)
        let streams = document["streams"] as? [[String: Any]] ?? []
        let throughput = Report.lineChart(
            title: "Loader throughput over time", xLabel: "seconds", yLabel: "samples/s",
            series: streams.map { stream in
                ("\(stream["store"] as? String ?? "?") (\(stream["order"] as? String ?? ""))",
                 (stream["timeline"] as? [[Double]] ?? []).map { ($0[0], $0[1]) })
            })
        let html = Report.html(
            title: "stoke demo",
            table: (["variant", "parameters", "accuracy", "samples/s", "data wait", "speedup"],
                    variants.map { [$0["variant"] as! String, "\($0["parameters"] as! Int)", String(format: "%.4f", $0["accuracy"] as! Double),
                                    String(format: "%.0f", $0["samples_per_s"] as! Double), String(format: "%.3f", $0["data_wait_fraction"] as! Double),
                                    String(format: "%.2f", $0["speedup"] as! Double)] }),
            charts: [chart, throughput], notes: ["Dataset: \(document["dataset"] as? String ?? "?")."])
        try html.write(toFile: "\(directory)/report.html", atomically: true, encoding: .utf8)
    }

    /// Packs one split of Debian's Fashion-MNIST, with its usual normalization recorded for the loader.
    private func packFashion(split: String, to path: String) throws {
        let prefix = split == "train" ? "train" : "t10k"
        let images = try IDXArray(path: "\(Demo.fashionMNIST)/\(prefix)-images-idx3-ubyte.gz")
        let labelFile = try IDXArray(path: "\(Demo.fashionMNIST)/\(prefix)-labels-idx1-ubyte.gz")
        let labels = try labelFile.int64Values()
        var options = StoreWriteOptions()
        options.overwrite = true
        _ = try ArrayPacker.pack(
            fields: [
                PackField(name: "image", source: images, sampleShape: [1] + images.sampleShape),
                PackField(name: "label", source: MemoryArray(path: labelFile.path, dtype: .i64, shape: [labels.count], values: labels)),
            ],
            to: path, options: options, metadata: [("normalization", Demo.normalizationJSON)])
    }

    /// Fashion-MNIST's mean and std of pixel values on the 0–1 scale.
    static let normalizationJSON = #"{"field": "image", "mean": [0.2860], "std": [0.3530], "scale": 0.00392156862745098}"#

    /// A blurry class-dependent blob per sample: compressible like real images, learnable by class.
    private func packGenerated(samples: Int, seed: UInt64, to path: String) throws {
        let images = FieldSpec(name: "image", dtype: .u8, sampleShape: [1, 28, 28])
        let labels = FieldSpec(name: "label", dtype: .i64, sampleShape: [])
        var options = StoreWriteOptions()
        options.overwrite = true
        let writer = try StoreWriter(path: path, fields: [images, labels], options: options)
        try writer.setMetadata("normalization", json: Demo.normalizationJSON)
        var generator = SplitMix64(seed: seed)
        var produced = 0
        while produced < samples {
            let count = min(1000, samples - produced)
            var pixels = [UInt8](repeating: 0, count: count * images.sampleBytes)
            var classes = [Int64](repeating: 0, count: count)
            for sample in 0..<count {
                let label = Int(generator.next() % 10)
                classes[sample] = Int64(label)
                for y in 0..<28 {
                    for x in 0..<28 {
                        let dx = x - 8 - label, dy = y - 14
                        let value = max(0, 255 - (dx * dx + dy * dy) * 3) / 8 * 8 + (generator.next() % 64 == 0 ? 3 : 0)
                        pixels[sample * 784 + y * 28 + x] = UInt8(clamping: value)
                    }
                }
            }
            try writer.append("image", values: pixels)
            try writer.append("label", values: classes)
            produced += count
        }
        try writer.finish()
    }
}
