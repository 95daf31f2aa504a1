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
            through the loader, trains a teacher MLP, derives quantized, pruned and distilled variants and streams \
            the test store through each. Every output goes under --directory; a rerun reuses each step whose \
            inputs are unchanged (--force redoes them).
            """)

    static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

    @Option(name: .long, help: "Where to write the demo's files.") var directory: String = "stoke-demo"
    @Option(name: .long, help: "Samples of the generated dataset when Fashion-MNIST is not installed.") var samples: Int = 60_000
    @Flag(name: .long, help: "Use the generated dataset even when Fashion-MNIST is installed.") var generated = false
    @Option(name: .long, help: "Epochs to train the teacher MLP.") var epochs = 3
    @Option(name: .long, help: "Epochs to train the small student, alone and distilled (distillation gains show with longer training).")
    var studentEpochs = DistillationDefaults.epochs
    @Flag(name: .long, help: "Only pack, verify and stream the stores (no training or model variants).") var dataOnly = false
    @Flag(name: .long, help: "A fast run for tests: 1 epoch, at most 6,000 training and 1,000 test samples.") var quick = false
    @Flag(name: .long, help: "Redo every step even when its output is up to date.") var force = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard samples > 0 else { throw UsageError("--samples must be positive") }
        guard epochs > 0, studentEpochs > 0 else { throw UsageError("--epochs and --student-epochs must be positive") }
    }

    /// Epochs of every training step (the teacher's; 1 with --quick).
    private var trainingEpochs: Int { quick ? 1 : epochs }
    /// The most samples each split keeps with --quick (nil: all).
    private func sampleLimit(_ split: String) -> Int? { quick ? (split == "train" ? 6_000 : 1_000) : nil }

    /// Whether the artifact at `path` was made by exactly `recipe` (so this run can reuse it).
    private func reusable(_ recordedRecipe: String?, _ recipe: String) -> Bool { !force && recordedRecipe == recipe }

    /// A step's recipe: what it depends on, as sorted-key JSON, so equal inputs give equal strings.
    static func recipe(_ fields: [String: Any]) -> String {
        var all = fields
        all["stoke_version"] = StokeVersion.string
        let data = (try? JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Size and modification time of each source file: enough to notice a changed dataset without
    /// hashing it on every run.
    private static func fileStamps(_ paths: [String]) -> [[String: Any]] {
        paths.map { path in
            let attributes = (try? FileManager.default.attributesOfItem(atPath: path)) ?? [:]
            return ["path": path, "bytes": (attributes[.size] as? NSNumber)?.intValue ?? -1,
                    "modified": (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0]
        }
    }

    func run() throws {
        try reportingErrors {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw UsageError("--directory \(directory): cannot create it (\((error as NSError).localizedDescription))")
            }
            let useFashion = !generated && FileManager.default.fileExists(atPath: Demo.fashionMNIST + "/train-images-idx3-ubyte.gz")
            let dataset = useFashion ? "Fashion-MNIST (\(Demo.fashionMNIST))" : "a generated dataset with Fashion-MNIST's shapes (Fashion-MNIST is not installed)"
            if !json { print("stoke demo: \(dataset)") }
            var document: [String: Any] = ["dataset": useFashion ? "fashion-mnist" : "generated"]
            var stores: [(name: String, path: String)] = []
            var storeRecipes: [String] = []
            for split in ["train", "test"] {
                let path = "\(directory)/\(split).h5"
                let started = Date()
                let generatedCount = split == "train" ? samples : max(1, samples / 6)
                let recipe = Demo.recipe([
                    "step": "pack", "split": split, "limit": sampleLimit(split) ?? -1,
                    "source": useFashion ? ["fashion-mnist", Demo.fileStamps(fashionFiles(split: split))] : ["generated", generatedCount],
                ])
                let recorded = (try? Store(path: path, options: StoreReadOptions(useChunkIndex: false)))?.attributes["demo_recipe"]
                if reusable(recorded, recipe) {
                    if !json { print("\(path): up to date, reused") }
                    document["\(split)_pack_seconds"] = 0
                } else {
                    if useFashion {
                        try packFashion(split: split, to: path, limit: sampleLimit(split), recipe: recipe)
                    } else {
                        try packGenerated(samples: min(generatedCount, sampleLimit(split) ?? .max), seed: split == "train" ? 1 : 2, to: path, recipe: recipe)
                    }
                    document["\(split)_pack_seconds"] = Date().timeIntervalSince(started)
                }
                stores.append((split, path))
                storeRecipes.append(recipe)
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
            if !dataOnly {
                document["variants"] = try compressionTable(trainPath: stores[0].path, testPath: stores[1].path, trainRecipe: storeRecipes[0])
            }
            try writeReport(document)
            if json { printJSON(document) }
        }
    }

    /// A trained model at `path`, reused when the file's recipe matches, else made by `train` and saved
    /// with its recipe and training time.
    private func trainedModel(path: String, recipe: String, train: () throws -> SequentialModel) throws -> (model: SequentialModel, seconds: Double) {
        if let existing = try? SequentialModel.loadWithMetadata(path: path), reusable(existing.metadata["demo_recipe"], recipe) {
            if !json { print("\(path): up to date, reused") }
            return (existing.model, Double(existing.metadata["training_seconds"] ?? "") ?? 0)
        }
        let started = Date()
        let model = try train()
        let seconds = Date().timeIntervalSince(started)
        try model.save(to: path, metadata: ["demo_recipe": recipe, "training_seconds": String(seconds)])
        return (model, seconds)
    }

    /// Runs `epochs` epochs of `trainer` over the training loader (optionally distilling from a teacher).
    private func train(_ trainer: Trainer, loader: Loader, samples: Int, epochs: Int, firstEpoch: Int = 0, label: String,
                       teacher: Model? = nil, temperature: Float = 4, alpha: Float = 0.9) throws {
        let teacherSession = teacher.map { Session(model: $0) }
        for epochNumber in firstEpoch..<(firstEpoch + epochs) {
            trainer.startEpoch(epochNumber - firstEpoch)
            let progress = ProgressLine(total: samples, label: "\(label) \(epochNumber - firstEpoch + 1)/\(epochs)")
            let distillation = teacher.flatMap { model in teacherSession.map { ($0, model.inputs[0].name, model.outputs[0].name, temperature, alpha) } }
            _ = try trainEpoch(trainer, epoch: try loader.epoch(epochNumber), field: "image", progress: progress, teacher: distillation)
            progress.finish()
        }
    }

    /// Trains the teacher, derives the variants (INT8, pruned, distilled), streams the test store through
    /// each and prints one table. Each trained model is reused when its recipe is unchanged.
    private func compressionTable(trainPath: String, testPath: String, trainRecipe: String) throws -> [[String: Any]] {
        let trainStore = try Store(path: trainPath)
        let sampleShape = try trainStore.field("image").sampleShape
        let epochs = trainingEpochs
        var loaderOptions = LoaderOptions()
        loaderOptions.fields = ["image", "label"]
        loaderOptions.batchSize = 128
        loaderOptions.seed = 42
        loaderOptions.workers = 1
        loaderOptions.outputTypes["image"] = .f32
        let loader = try Loader(store: trainStore, options: loaderOptions)
        let samples = trainStore.sampleCount

        let teacherLayers: [Layer] = [.flatten, .linear(inFeatures: 784, outFeatures: 512), .relu, .linear(inFeatures: 512, outFeatures: 256), .relu,
                                      .linear(inFeatures: 256, outFeatures: 10)]
        let teacherRecipe = Demo.recipe(["step": "teacher", "data": trainRecipe, "layers": "\(teacherLayers)", "epochs": epochs, "seed": 42])
        let teacherPath = "\(directory)/teacher.h5"
        let (teacherNative, trainingSeconds) = try trainedModel(path: teacherPath, recipe: teacherRecipe) {
            var options = TrainingOptions()
            options.schedule = .cosine(epochs: epochs)
            options.seed = 42
            let trainer = try Trainer(model: SequentialModel(layers: teacherLayers, sampleShape: sampleShape, seed: 42), options: options)
            try train(trainer, loader: loader, samples: samples, epochs: epochs, label: "training teacher")
            return try trainer.model()
        }
        let fp32 = try teacherNative.model()

        // A student a tenth the size: trained alone, and distilled from the teacher's soft targets on the
        // same batches with the same seed, so the difference is the teacher's.
        let studentLayers: [Layer] = [.flatten, .linear(inFeatures: 784, outFeatures: 64), .relu, .linear(inFeatures: 64, outFeatures: 10)]
        var studentOptions = TrainingOptions()
        studentOptions.learningRate = DistillationDefaults.learningRate
        let studentEpochs = quick ? 1 : self.studentEpochs
        studentOptions.schedule = .cosine(epochs: studentEpochs)
        studentOptions.seed = 42
        let (temperature, alpha) = (DistillationDefaults.temperature, DistillationDefaults.alpha)
        let aloneRecipe = Demo.recipe(["step": "student-alone", "data": trainRecipe, "layers": "\(studentLayers)", "epochs": studentEpochs,
                                       "seed": 42, "lr": Double(DistillationDefaults.learningRate)])
        let alone = try trainedModel(path: "\(directory)/student-alone.h5", recipe: aloneRecipe) {
            let trainer = try Trainer(model: SequentialModel(layers: studentLayers, sampleShape: sampleShape, seed: 42), options: studentOptions)
            try train(trainer, loader: loader, samples: samples, epochs: studentEpochs, label: "training student alone")
            return try trainer.model()
        }.model.model()
        let studentRecipe = Demo.recipe(["step": "student-distilled", "teacher": teacherRecipe, "layers": "\(studentLayers)",
                                         "epochs": studentEpochs, "seed": 42, "lr": Double(DistillationDefaults.learningRate), "temperature": Double(temperature), "alpha": Double(alpha)])
        let studentFP32 = try trainedModel(path: "\(directory)/student.h5", recipe: studentRecipe) {
            let trainer = try Trainer(model: SequentialModel(layers: studentLayers, sampleShape: sampleShape, seed: 42), options: studentOptions)
            try train(trainer, loader: loader, samples: samples, epochs: studentEpochs, label: "distilling student", teacher: fp32,
                      temperature: temperature, alpha: alpha)
            return try trainer.model()
        }.model.model()

        // Half of every hidden layer's neurons removed by L2 norm (Ln-structured pruning: a smaller dense
        // MLP, so parameters and MACs really fall), fine-tuned one epoch.
        let prunedRecipe = Demo.recipe(["step": "pruned", "teacher": teacherRecipe, "method": "ln-structured", "n": 2, "amount": 0.5,
                                        "epochs": 1, "lr": 5e-4])
        let pruned = try trainedModel(path: "\(directory)/teacher-pruned.h5", recipe: prunedRecipe) {
            var options = TrainingOptions()
            options.learningRate = 5e-4
            options.seed = 42
            let trainer = try Trainer(model: try teacherNative.prunedStructured(amount: 0.5, norm: 2), options: options)
            try train(trainer, loader: loader, samples: samples, epochs: 1, firstEpoch: epochs, label: "fine-tuning pruned teacher")
            return try trainer.model()
        }.model.model()

        // Static INT8: activation ranges observed (MinMax) on the first training samples, streamed by the loader.
        let calibrationSamples = min(2048, samples)
        func quantizedStatic(_ model: Model) throws -> Model {
            try model.quantizedStatic(calibration: CalibrationRun.run(model: model, storePath: trainPath, samples: calibrationSamples, method: .minMax))
        }

        // Every variant is a model file under the demo folder (the FP32 ones written by training), so its
        // size is what it takes on disk and `stoke infer` runs it again. MACs are the FP32 graph's:
        // quantization changes their cost, not their number.
        func saved(_ model: Model, _ name: String, from source: String) throws -> (Model, String) {
            let path = "\(directory)/\(name).h5"
            try model.save(to: path, metadata: ["derived_from": source])
            return (model, path)
        }
        let files = (teacher: teacherPath, pruned: "\(directory)/teacher-pruned.h5", alone: "\(directory)/student-alone.h5", student: "\(directory)/student.h5")
        let variants: [(name: String, model: Model, path: String, fp32: Model)] = try [
            ("teacher FP32", (fp32, files.teacher), fp32), ("teacher INT8 (dynamic)", saved(fp32.quantizedDynamic(), "teacher-int8-dynamic", from: files.teacher), fp32),
            ("teacher INT8 (static)", saved(quantizedStatic(fp32), "teacher-int8-static", from: files.teacher), fp32),
            ("teacher 50% pruned (L2 structured) + fine-tuned", (pruned, files.pruned), pruned),
            ("pruned INT8 (dynamic)", saved(pruned.quantizedDynamic(), "pruned-int8-dynamic", from: files.pruned), pruned),
            ("pruned INT8 (static)", saved(quantizedStatic(pruned), "pruned-int8-static", from: files.pruned), pruned),
            ("student 784-64-10 alone", (alone, files.alone), alone),
            ("student 784-64-10 distilled", (studentFP32, files.student), studentFP32),
            ("student INT8 (dynamic)", saved(studentFP32.quantizedDynamic(), "student-int8-dynamic", from: files.student), studentFP32),
            ("student INT8 (static)", saved(quantizedStatic(studentFP32), "student-int8-static", from: files.student), studentFP32),
        ].map { ($0.0, $0.1.0, $0.1.1, $0.2) }
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
                "size_bytes": ((try? FileManager.default.attributesOfItem(atPath: variant.path))?[.size] as? NSNumber)?.intValue ?? 0,
                "macs": macs, "model_file": variant.path,
                "accuracy": result.accuracy ?? 0, "samples_per_s": result.samplesPerSecond,
                "data_wait_fraction": result.dataWaitFraction, "speedup": result.samplesPerSecond / max(baseline, 1e-9),
                "latency_ms_p50": result.latencyP50,
            ])
        }
        if !json {
            print(String(format: "\nteacher MLP 784-512-256-10 trained for %d epoch(s) in %.1f s; half of each hidden layer pruned (L2 structured) and fine-tuned 1 epoch; static INT8 calibrated on %d training samples; students trained %d epochs, alone and distilled (T = %g, alpha = %g); variants streamed through the test store:",
                         epochs, trainingSeconds, calibrationSamples, studentEpochs, Double(temperature), Double(alpha)))
            printTable(
                ["variant", "parameters", "size", "MACs", "accuracy", "samples/s", "data wait", "speedup"],
                rows.map {
                    [$0["variant"] as! String, "\($0["parameters"] as! Int)", formatBytes($0["size_bytes"] as! Int), "\($0["macs"] as! Int)",
                     String(format: "%.2f%%", ($0["accuracy"] as! Double) * 100), String(format: "%.0f", $0["samples_per_s"] as! Double),
                     String(format: "%.1f%%", ($0["data_wait_fraction"] as! Double) * 100), String(format: "%.2fx", $0["speedup"] as! Double)]
                })
        }
        return rows
    }

    /// `report.json` and a `report.html` with the variants table and a plot of accuracy against samples/s.
    private func writeReport(_ document: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])
        try data.write(to: URL(fileURLWithPath: "\(directory)/report.json"), options: .atomic)
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
            table: (["variant", "parameters", "size", "MACs", "accuracy", "samples/s", "data wait", "speedup"],
                    variants.map { [$0["variant"] as! String, "\($0["parameters"] as! Int)", formatBytes($0["size_bytes"] as! Int), "\($0["macs"] as! Int)",
                                    String(format: "%.4f", $0["accuracy"] as! Double),
                                    String(format: "%.0f", $0["samples_per_s"] as! Double), String(format: "%.3f", $0["data_wait_fraction"] as! Double),
                                    String(format: "%.2f", $0["speedup"] as! Double)] }),
            charts: [chart, throughput], notes: ["Dataset: \(document["dataset"] as? String ?? "?")."])
        try html.write(toFile: "\(directory)/report.html", atomically: true, encoding: .utf8)
    }

    /// The IDX files of one split of Debian's Fashion-MNIST.
    private func fashionFiles(split: String) -> [String] {
        let prefix = split == "train" ? "train" : "t10k"
        return ["\(Demo.fashionMNIST)/\(prefix)-images-idx3-ubyte.gz", "\(Demo.fashionMNIST)/\(prefix)-labels-idx1-ubyte.gz"]
    }

    /// Packs one split of Debian's Fashion-MNIST (its first `limit` samples when given), with its usual
    /// normalization and the step's recipe recorded.
    private func packFashion(split: String, to path: String, limit: Int?, recipe: String) throws {
        let files = fashionFiles(split: split)
        let images = try IDXArray(path: files[0])
        let labelFile = try IDXArray(path: files[1])
        var labels = try labelFile.int64Values()
        let count = min(limit ?? labels.count, labels.count)
        labels = Array(labels.prefix(count))
        let imageSource: any ArraySource
        if count < images.shape[0] {
            var pixels: [UInt8] = []
            let rowBytes = images.sampleShape.reduce(1, *)
            try unsafe images.forEachBatch(batchRows: 1024) { rows, bytes in
                guard rows.lowerBound < count else { return }
                unsafe pixels.append(contentsOf: bytes.prefix((min(rows.upperBound, count) - rows.lowerBound) * rowBytes))
            }
            imageSource = MemoryArray(path: images.path, dtype: .u8, shape: [count] + images.sampleShape, values: pixels)
        } else {
            imageSource = images
        }
        var options = StoreWriteOptions()
        options.overwrite = true
        _ = try ArrayPacker.pack(
            fields: [
                PackField(name: "image", source: imageSource, sampleShape: [1] + images.sampleShape),
                PackField(name: "label", source: MemoryArray(path: labelFile.path, dtype: .i64, shape: [count], values: labels)),
            ],
            to: path, options: options, metadata: [("normalization", Demo.normalizationJSON), ("demo_recipe", recipe)])
    }

    /// Fashion-MNIST's mean and std of pixel values on the 0–1 scale.
    static let normalizationJSON = #"{"field": "image", "mean": [0.2860], "std": [0.3530], "scale": 0.00392156862745098}"#

    /// A blurry class-dependent blob per sample: compressible like real images, learnable by class.
    private func packGenerated(samples: Int, seed: UInt64, to path: String, recipe: String) throws {
        let images = FieldSpec(name: "image", dtype: .u8, sampleShape: [1, 28, 28])
        let labels = FieldSpec(name: "label", dtype: .i64, sampleShape: [])
        var options = StoreWriteOptions()
        options.overwrite = true
        let writer = try StoreWriter(path: path, fields: [images, labels], options: options)
        try writer.setMetadata("normalization", json: Demo.normalizationJSON)
        try writer.setMetadata("demo_recipe", json: recipe)
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
