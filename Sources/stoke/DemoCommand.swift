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
            through the loader, trains a teacher CNN, derives quantized, pruned and distilled variants (the student MLP \
            trained alone and distilled from the teacher's logits with the same seeds and epochs) and streams \
            the test store through each; the verdicts (is the teacher strongest, does distillation pay, is data \
            wait under 5%) are computed from the measured numbers. Every output goes under --directory; a rerun reuses each step whose \
            inputs are unchanged (--force redoes them).
            """)

    static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

    @Option(name: .long, help: "Where to write the demo's files.") var directory: String = "stoke-demo"
    @Option(name: .long, help: "Samples of the generated dataset when Fashion-MNIST is not installed.") var samples: Int = 60_000
    @Flag(name: .long, help: "Use the generated dataset even when Fashion-MNIST is installed.") var generated = false
    @Option(name: .long, help: "Epochs to train the teacher.") var epochs = 3
    @Option(name: .long, help: "The teacher: cnn:TOKENS or mlp:IN-H1-…-OUT (as stoke train).") var teacherArch = Demo.teacherArchitecture
    @Option(name: .long, help: "Adam learning rate of the teacher (cosine schedule).") var teacherLearningRate = Demo.teacherLearningRateDefault
    @Option(name: .long, help: "The student, trained alone and distilled: mlp:IN-H1-…-OUT or cnn:TOKENS.") var studentArch = Demo.studentArchitecture
    @Option(name: .long, help: "Epochs to train the student, alone and distilled (distillation gains show with longer training).")
    var studentEpochs = Demo.studentEpochDefault
    @Option(name: .long, help: "Distillation temperature T of the soft targets.") var temperature = Demo.temperatureDefault
    @Option(name: .long, help: "Weight of the distillation term (1 − alpha weighs the hard labels).") var alpha = Demo.alphaDefault
    @Option(name: .long, help: "Adam learning rate of the students (cosine schedule).") var studentLearningRate = Demo.studentLearningRateDefault
    @Option(name: .long, help: "Seed of the students' initialization and batch order (the first of --seeds).") var seed: UInt64 = 42
    @Option(name: .long, help: "Seeds the students are trained with, alone and distilled, for the distillation verdict (the table shows the first).")
    var seeds = Demo.seedCountDefault
    @Flag(name: .long, help: "Only pack, verify and stream the stores (no training or model variants).") var dataOnly = false
    @Flag(name: .long, help: "A fast run for tests: 1 epoch, at most 6,000 training and 1,000 test samples.") var quick = false
    @Flag(name: .long, help: "Redo every step even when its output is up to date.") var force = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    /// The teacher: a small CNN, the strongest model of the table.
    static let teacherArchitecture = "cnn:c16k3p1-bn-relu-mp2-c32k3p1-bn-relu-mp2-fc128-relu-fc10"
    /// The student: an MLP about a fifth of the teacher's parameters.
    static let studentArchitecture = "mlp:784-64-10"
    static let teacherLearningRateDefault: Float = 1e-3
    static let studentEpochDefault = DistillationDefaults.epochs
    static let temperatureDefault: Float = DistillationDefaults.temperature
    static let alphaDefault: Float = DistillationDefaults.alpha
    static let studentLearningRateDefault: Float = DistillationDefaults.learningRate
    static let seedCountDefault = 3

    func validate() throws {
        guard samples > 0 else { throw UsageError("--samples must be positive") }
        guard epochs > 0, studentEpochs > 0 else { throw UsageError("--epochs and --student-epochs must be positive") }
        guard temperature > 0, (0...1).contains(alpha) else { throw UsageError("--temperature must be positive and --alpha in [0, 1]") }
        guard studentLearningRate > 0, teacherLearningRate > 0 else { throw UsageError("--student-learning-rate and --teacher-learning-rate must be positive") }
        guard seeds > 0 else { throw UsageError("--seeds must be positive") }
        for (option, spec) in [("--teacher-arch", teacherArch), ("--student-arch", studentArch)] {
            do { try ArchitectureSpec.validate(spec) } catch { throw UsageError("\(option): \(error)") }
        }
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
        let demoStarted = Date()
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
                // What decoding alone allows on all cores: the line the loader's throughput is drawn against.
                let ceiling = try Ceilings.decode(store: Store(path: path), fields: ["image"], workers: Machine.cores)
                let stream: [String: Any] = [
                    "decode_ceiling_samples_per_s": ceiling.samplesPerSecond,
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
                try compressionTable(trainPath: stores[0].path, testPath: stores[1].path, trainRecipe: storeRecipes[0], document: &document)
            }
            let total = Date().timeIntervalSince(demoStarted)
            let footer = String(format: "total %.1f s; ", total) + Machine.summary()
            document["total_seconds"] = total
            document["machine"] = Machine.json
            document["footer"] = footer
            if !json { print(footer) }
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

    /// Runs `epochs` epochs of `trainer` over the training loader. With `teacherLogits` (the teacher's
    /// logits of every training sample, `classes` floats per sample by sample index, computed once) each
    /// step distills from the batch's rows of them, so the teacher does not run again per step.
    private func train(_ trainer: Trainer, loader: Loader, samples: Int, epochs: Int, firstEpoch: Int = 0, label: String,
                       teacherLogits: [Float]? = nil, temperature: Float = 1, alpha: Float = 0) throws {
        let classes = trainer.classes
        var gathered: [Float] = []
        for epochNumber in firstEpoch..<(firstEpoch + epochs) {
            trainer.startEpoch(epochNumber - firstEpoch)
            let progress = ProgressLine(total: samples, label: "\(label) \(epochNumber - firstEpoch + 1)/\(epochs)")
            let epoch = try loader.epoch(epochNumber)
            guard let teacherLogits else {
                _ = try trainEpoch(trainer, epoch: epoch, field: "image", progress: progress)
                progress.finish()
                continue
            }
            var done = 0
            while let batch = try epoch.next() {
                let count = batch.count
                let labels = try batch.values("label", as: Int64.self)
                gathered.removeAll(keepingCapacity: true)
                for index in batch.indices { gathered.append(contentsOf: teacherLogits[(index * classes)..<((index + 1) * classes)]) }
                try unsafe batch.withField("image") { bytes, _ in
                    let input = unsafe bytes.assumingMemoryBound(to: Float.self)
                    try unsafe labels.withUnsafeBufferPointer { labelBuffer in
                        try unsafe gathered.withUnsafeBufferPointer { logits in
                            _ = try unsafe trainer.distillationStep(input: input, labels: labelBuffer, teacherLogits: logits, count: count,
                                                                   temperature: temperature, alpha: alpha)
                        }
                    }
                }
                done += count
                progress.update(done)
            }
            progress.finish()
        }
    }

    /// The teacher's logits for every sample of the training store (`classes` floats per sample, by
    /// sample index): one sequential pass, so distillation reads them instead of running the teacher.
    private func teacherLogits(_ teacher: Model, storePath: String, classes: Int) throws -> [Float] {
        let store = try Store(path: storePath)
        var options = LoaderOptions()
        options.fields = ["image"]
        options.batchSize = 512
        options.order = .sequential
        options.workers = 1
        options.outputTypes["image"] = .f32
        let loader = try Loader(store: store, options: options)
        let session = Session(model: teacher, context: processContext)
        let sampleShape = try store.field("image").sampleShape
        let width = sampleShape.reduce(1, *)
        let (input, output) = (teacher.inputs[0].name, teacher.outputs[0].name)
        try MemoryBudget.current.check(MemoryBudget.product([store.sampleCount, classes, MemoryLayout<Float>.size]) ?? -1, for: "the teacher's logits of \(storePath)")
        var logits = [Float](repeating: 0, count: store.sampleCount * classes)
        let progress = ProgressLine(total: store.sampleCount, label: "teacher logits")
        let epoch = try loader.epoch(0)
        var done = 0
        while let batch = try epoch.next() {
            let count = batch.count
            let indices = batch.indices
            try unsafe batch.withField("image") { bytes, _ in
                let floats = unsafe bytes.assumingMemoryBound(to: Float.self)
                let span = unsafe Span(_unsafeElements: UnsafeBufferPointer(rebasing: floats[0..<(count * width)]))
                try session.run(input: input, shape: [count] + sampleShape, data: span) { outputs in
                    try outputs.withFloats(output) { values in
                        guard values.count == count * classes else {
                            throw UsageError("teacher: \(values.count) logits for \(count) samples of \(classes) classes")
                        }
                        for (row, index) in indices.enumerated() {
                            for column in 0..<classes { logits[index * classes + column] = values[row * classes + column] }
                        }
                    }
                }
            }
            done += count
            progress.update(done)
        }
        progress.finish()
        return logits
    }

    /// Streaming settings sized for a model of `macsPerSample` multiply-adds: batch size, loader workers,
    /// engine threads and prefetch depth, so the engine does not wait for the loader (a tiny model needs
    /// the loader's throughput, a large one the engine's threads).
    static func streamingOptions(macsPerSample: Int, samples: Int, cores: Int) -> StreamingInference.Options {
        var options = StreamingInference.Options()
        options.context = processContext
        // Enough passes over the test store for about 3·10⁹ multiply-adds, so a model that streams it in
        // milliseconds is timed over many batches (at most 20 passes).
        let work = Double(max(macsPerSample, 1)) * Double(max(samples, 1))
        options.passes = max(1, min(20, Int((3e9 / work).rounded(.up))))
        if macsPerSample < 300_000 {
            // A small model outruns one loader worker: every core decodes, the engine needs one thread,
            // larger batches and a deeper queue smooth the hand-over.
            options.batchSize = 1024
            options.loaderWorkers = cores
            options.engineThreads = 1
            options.prefetch = 8
        } else {
            options.batchSize = 256
            options.loaderWorkers = 1
            options.engineThreads = max(1, cores - 1)
            options.prefetch = 4
        }
        return options
    }

    /// A verdict in plain words, computed from the accuracies: whether the teacher is the most accurate
    /// model, whether distillation paid over the seeds, whether every streamed row stayed under 5% data wait.
    static func verdicts(rows: [[String: Any]], teacher: String, seeds: [(seed: UInt64, alone: Double, distilled: Double)],
                         epochs: Int) -> [String] {
        var lines: [String] = []
        let accuracy = { (row: [String: Any]) in row["accuracy"] as? Double ?? 0 }
        if let teacherRow = rows.first(where: { $0["variant"] as? String == teacher }),
           let best = rows.max(by: { accuracy($0) < accuracy($1) }) {
            let students = rows.filter { ($0["variant"] as? String ?? "").hasPrefix("student") }
            let bestStudent = students.max { accuracy($0) < accuracy($1) }
            if accuracy(best) <= accuracy(teacherRow) {
                lines.append(String(format: "The teacher is the most accurate model of the table (%.2f%%).", accuracy(teacherRow) * 100))
            } else if let bestStudent, accuracy(bestStudent) < accuracy(teacherRow) {
                lines.append(String(format: "The teacher (%.2f%%) is more accurate than every student (best %.2f%%); its own variant %@ reaches %.2f%% (%+.2f pp).",
                                    accuracy(teacherRow) * 100, accuracy(bestStudent) * 100, best["variant"] as? String ?? "?", accuracy(best) * 100,
                                    (accuracy(best) - accuracy(teacherRow)) * 100))
            } else {
                lines.append(String(format: "The teacher (%.2f%%) is NOT the strongest model: %@ reaches %.2f%%.",
                                    accuracy(teacherRow) * 100, (bestStudent ?? best)["variant"] as? String ?? "?", accuracy(bestStudent ?? best) * 100))
            }
        }
        if !seeds.isEmpty {
            let gains = seeds.map { ($0.distilled - $0.alone) * 100 }
            let wins = gains.filter { $0 > 0 }.count
            let mean = gains.reduce(0, +) / Double(gains.count)
            let each = seeds.map { String(format: "seed %llu: %.2f%% vs %.2f%% (%+.2f pp)", $0.seed, $0.distilled * 100, $0.alone * 100, ($0.distilled - $0.alone) * 100) }
                .joined(separator: "; ")
            let head: String
            if wins == seeds.count {
                head = String(format: "Distillation pays: the distilled student beats the same student trained alone (same seed, %d epochs) for %@ (mean %+.2f pp).",
                              epochs, seeds.count == 1 ? "this seed" : "all \(seeds.count) seeds", mean)
            } else if wins == 0 {
                head = String(format: "Distillation does NOT pay here: the distilled student is not above the same student trained alone (same seed, %d epochs) for any of %d seed(s) (mean %+.2f pp).",
                              epochs, seeds.count, mean)
            } else {
                head = String(format: "Distillation does not reliably pay here: the distilled student beats the same student trained alone (same seed, %d epochs) for only %d of %d seeds (mean %+.2f pp).",
                              epochs, wins, seeds.count, mean)
            }
            lines.append(head + " " + each + ".")
        }
        let streamed = rows.filter { ($0["data_wait_fraction"] as? Double ?? 0) >= 0.05 }
        if streamed.isEmpty {
            lines.append("Data wait is under 5% on every streamed row.")
        } else {
            lines.append("Data wait is 5% or more on: " + streamed.map { String(format: "%@ (%.1f%%)", $0["variant"] as? String ?? "?", ($0["data_wait_fraction"] as? Double ?? 0) * 100) }
                .joined(separator: ", ") + ".")
        }
        return lines
    }

    /// Trains the teacher, derives the variants (INT8, pruned, distilled), streams the test store through
    /// each, prints one table and records the variants, the distillation results over the seeds and the
    /// verdicts in `document`. Each trained model is reused when its recipe is unchanged.
    private func compressionTable(trainPath: String, testPath: String, trainRecipe: String, document: inout [String: Any]) throws {
        let trainStore = try Store(path: trainPath)
        let sampleShape = try trainStore.field("image").sampleShape
        let epochs = trainingEpochs
        func loader(seed: UInt64) throws -> Loader {
            var loaderOptions = LoaderOptions()
            loaderOptions.fields = ["image", "label"]
            loaderOptions.batchSize = 128
            loaderOptions.seed = seed
            loaderOptions.workers = 1
            loaderOptions.outputTypes["image"] = .f32
            return try Loader(store: trainStore, options: loaderOptions)
        }
        let teacherLoader = try loader(seed: 42)
        let samples = trainStore.sampleCount

        let teacherLayers: [Layer]
        let studentLayers: [Layer]
        do {
            teacherLayers = try ArchitectureSpec.layers(teacherArch, sampleShape: sampleShape)
            studentLayers = try ArchitectureSpec.layers(studentArch, sampleShape: sampleShape)
        } catch {
            throw UsageError("\(error)")
        }
        let teacherRecipe = Demo.recipe(["step": "teacher", "data": trainRecipe, "layers": "\(teacherLayers)", "epochs": epochs, "seed": 42,
                                         "lr": Double(teacherLearningRate)])
        let teacherPath = "\(directory)/teacher.h5"
        let (teacherNative, trainingSeconds) = try trainedModel(path: teacherPath, recipe: teacherRecipe) {
            var options = TrainingOptions()
            options.learningRate = teacherLearningRate
            options.schedule = .cosine(epochs: epochs)
            options.seed = 42
            let trainer = try Trainer(model: SequentialModel(layers: teacherLayers, sampleShape: sampleShape, seed: 42), options: options, context: processContext)
            try train(trainer, loader: teacherLoader, samples: samples, epochs: epochs, label: "training teacher")
            return try trainer.model()
        }
        let fp32 = try teacherNative.model()
        let classes = try teacherNative.outputSampleShape().reduce(1, *)

        // The student trained alone, and distilled from the teacher's soft targets on the same batches
        // with the same seed and epochs, so the difference is the teacher's; over `seeds` seeds, so the
        // verdict is not one seed's luck.
        let studentName = studentArch.hasPrefix("mlp:") ? String(studentArch.dropFirst(4)) : studentArch
        var studentOptions = TrainingOptions()
        studentOptions.learningRate = studentLearningRate
        let studentEpochs = quick ? 1 : self.studentEpochs
        studentOptions.schedule = .cosine(epochs: studentEpochs)
        var cachedLogits: [Float]?
        func logits() throws -> [Float] {
            if let cachedLogits { return cachedLogits }
            let computed = try teacherLogits(fp32, storePath: trainPath, classes: classes)
            cachedLogits = computed
            return computed
        }
        var students: [(seed: UInt64, alone: Model, aloneFile: String, distilled: Model, distilledFile: String)] = []
        for studentSeed in (0..<UInt64(seeds)).map({ seed &+ $0 }) {
            let suffix = studentSeed == seed ? "" : "-seed\(studentSeed)"
            var options = studentOptions
            options.seed = studentSeed
            let common: [String: Any] = ["layers": "\(studentLayers)", "epochs": studentEpochs, "seed": String(studentSeed), "lr": Double(studentLearningRate)]
            let aloneRecipe = Demo.recipe(common.merging(["step": "student-alone", "data": trainRecipe]) { $1 })
            let aloneFile = "\(directory)/student-alone\(suffix).h5"
            let studentLoader = try loader(seed: studentSeed)
            let alone = try trainedModel(path: aloneFile, recipe: aloneRecipe) {
                let trainer = try Trainer(model: SequentialModel(layers: studentLayers, sampleShape: sampleShape, seed: studentSeed), options: options, context: processContext)
                try train(trainer, loader: studentLoader, samples: samples, epochs: studentEpochs, label: "training student alone (seed \(studentSeed))")
                return try trainer.model()
            }.model.model()
            let distilledRecipe = Demo.recipe(common.merging([
                "step": "student-distilled", "teacher": teacherRecipe, "temperature": Double(temperature), "alpha": Double(alpha),
            ]) { $1 })
            let distilledFile = "\(directory)/student\(suffix).h5"
            let distilled = try trainedModel(path: distilledFile, recipe: distilledRecipe) {
                let trainer = try Trainer(model: SequentialModel(layers: studentLayers, sampleShape: sampleShape, seed: studentSeed), options: options, context: processContext)
                try train(trainer, loader: studentLoader, samples: samples, epochs: studentEpochs, label: "distilling student (seed \(studentSeed))",
                          teacherLogits: try logits(), temperature: temperature, alpha: alpha)
                return try trainer.model()
            }.model.model()
            students.append((studentSeed, alone, aloneFile, distilled, distilledFile))
        }
        let (alone, studentFP32) = (students[0].alone, students[0].distilled)

        // Half of every hidden layer's channels or neurons removed by L2 norm (structured pruning: a
        // smaller dense model, so parameters and MACs really fall), fine-tuned one epoch.
        let prunedRecipe = Demo.recipe(["step": "pruned", "teacher": teacherRecipe, "method": "ln-structured", "n": 2, "amount": 0.5,
                                        "epochs": 1, "lr": 5e-4])
        let pruned = try trainedModel(path: "\(directory)/teacher-pruned.h5", recipe: prunedRecipe) {
            var options = TrainingOptions()
            options.learningRate = 5e-4
            options.seed = 42
            let trainer = try Trainer(model: try teacherNative.prunedStructured(amount: 0.5, norm: 2), options: options, context: processContext)
            try train(trainer, loader: teacherLoader, samples: samples, epochs: 1, firstEpoch: epochs, label: "fine-tuning pruned teacher")
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
        let files = (teacher: teacherPath, pruned: "\(directory)/teacher-pruned.h5", alone: students[0].aloneFile, student: students[0].distilledFile)
        let variants: [(name: String, kind: String, model: Model, path: String, fp32: Model)] = try [
            ("teacher FP32", "FP32", (fp32, files.teacher), fp32),
            ("teacher INT8 (dynamic)", "INT8", saved(fp32.quantizedDynamic(), "teacher-int8-dynamic", from: files.teacher), fp32),
            ("teacher INT8 (static)", "INT8", saved(quantizedStatic(fp32), "teacher-int8-static", from: files.teacher), fp32),
            ("teacher 50% pruned (L2 structured) + fine-tuned", "pruned", (pruned, files.pruned), pruned),
            ("pruned INT8 (dynamic)", "pruned + INT8", saved(pruned.quantizedDynamic(), "pruned-int8-dynamic", from: files.pruned), pruned),
            ("pruned INT8 (static)", "pruned + INT8", saved(quantizedStatic(pruned), "pruned-int8-static", from: files.pruned), pruned),
            ("student \(studentName) alone", "FP32", (alone, files.alone), alone),
            ("student \(studentName) distilled", "distilled", (studentFP32, files.student), studentFP32),
            ("student INT8 (dynamic)", "distilled + INT8", saved(studentFP32.quantizedDynamic(), "student-int8-dynamic", from: files.student), studentFP32),
            ("student INT8 (static)", "distilled + INT8", saved(quantizedStatic(studentFP32), "student-int8-static", from: files.student), studentFP32),
        ].map { ($0.0, $0.1, $0.2.0, $0.2.1, $0.3) }
        var rows: [[String: Any]] = []
        var baseline = 0.0
        let testSamples = try Store(path: testPath).sampleCount
        for variant in variants {
            let macs = try Session(model: variant.fp32, context: processContext).costs(inputShapes: [variant.fp32.inputs[0].name: [1] + sampleShape]).reduce(0) { $0 + $1.macs }
            let options = Demo.streamingOptions(macsPerSample: macs, samples: testSamples, cores: Machine.cores)
            let result = try StreamingInference.run(model: variant.model, storePath: testPath, options: options)
            if baseline == 0 { baseline = result.samplesPerSecond }
            rows.append([
                "variant": variant.name, "kind": variant.kind, "parameters": variant.model.parameterCount,
                "size_bytes": ((try? FileManager.default.attributesOfItem(atPath: variant.path))?[.size] as? NSNumber)?.intValue ?? 0,
                "macs": macs, "model_file": variant.path,
                "accuracy": result.accuracy ?? 0, "samples_per_s": result.samplesPerSecond,
                "data_wait_fraction": result.dataWaitFraction, "speedup": result.samplesPerSecond / max(baseline, 1e-9),
                "latency_ms_p50": result.latencyP50, "batch_size": result.batchSize, "passes": options.passes,
                "threads": ["loader": result.loaderWorkers, "engine": result.engineThreads],
            ])
        }
        // The other seeds' students, for the verdict (the first seed's accuracies are the table's).
        var seedResults: [(seed: UInt64, alone: Double, distilled: Double)] = []
        for (index, student) in students.enumerated() {
            if index == 0 {
                seedResults.append((student.seed, rows[6]["accuracy"] as? Double ?? 0, rows[7]["accuracy"] as? Double ?? 0))
                continue
            }
            var options = StreamingInference.Options()
            options.context = processContext
            options.batchSize = 1024
            let aloneAccuracy = try StreamingInference.run(model: student.alone, storePath: testPath, options: options).accuracy ?? 0
            let distilledAccuracy = try StreamingInference.run(model: student.distilled, storePath: testPath, options: options).accuracy ?? 0
            seedResults.append((student.seed, aloneAccuracy, distilledAccuracy))
        }
        let verdicts = Demo.verdicts(rows: rows, teacher: "teacher FP32", seeds: seedResults, epochs: studentEpochs)
        let description = String(
            format: "teacher %@ trained for %d epoch(s) (Adam, learning rate %g, cosine) in %.1f s; half of each hidden layer pruned (L2 structured) and fine-tuned 1 epoch; static INT8 calibrated on %d training samples; students %@ trained %d epochs (Adam, learning rate %g, cosine), alone and distilled from the teacher's logits (T = %g, alpha = %g, soft loss scaled by T²), seeds %@; variants streamed through the test store:",
            teacherArch, epochs, Double(teacherLearningRate), trainingSeconds, calibrationSamples, studentArch, studentEpochs, Double(studentLearningRate), Double(temperature), Double(alpha),
            students.map { String($0.seed) }.joined(separator: ", "))
        document["variants"] = rows
        document["models"] = description
        document["distillation"] = [
            "temperature": Double(temperature), "alpha": Double(alpha), "epochs": studentEpochs, "learning_rate": Double(studentLearningRate),
            "student": studentArch, "teacher": teacherArch,
            "seeds": seedResults.map { ["seed": String($0.seed), "alone_accuracy": $0.alone, "distilled_accuracy": $0.distilled] },
        ]
        document["verdicts"] = verdicts
        if !json {
            print("\n" + description)
            printTable(
                ["#", "variant", "parameters", "size", "MACs", "accuracy", "samples/s", "data wait", "speedup"],
                rows.enumerated().map { index, row in
                    ["\(index + 1)", row["variant"] as! String, "\(row["parameters"] as! Int)", formatBytes(row["size_bytes"] as! Int), "\(row["macs"] as! Int)",
                     String(format: "%.2f%%", (row["accuracy"] as! Double) * 100), String(format: "%.0f", row["samples_per_s"] as! Double),
                     String(format: "%.1f%%", (row["data_wait_fraction"] as! Double) * 100), String(format: "%.2fx", row["speedup"] as! Double)]
                })
            for line in verdicts { print(line) }
        }
    }

    /// `report.json` and a self-contained `report.html` (no script, nothing fetched): the variants table,
    /// accuracy against samples/s with the Pareto front, model size per variant, and the loader's
    /// throughput over time against the decode ceiling; the verdicts and the machine footer.
    private func writeReport(_ document: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])
        try data.write(to: URL(fileURLWithPath: "\(directory)/report.json"), options: .atomic)
        try Demo.reportHTML(document).write(toFile: "\(directory)/report.html", atomically: true, encoding: .utf8)
    }

    /// The demo's HTML report from its `report.json` document.
    static func reportHTML(_ document: [String: Any]) -> String {
        let variants = document["variants"] as? [[String: Any]] ?? []
        var charts: [String] = []
        if !variants.isEmpty {
            charts.append(Report.scatterChart(
                title: "Accuracy against throughput (test store; numbers as in the table)", xLabel: "samples/s", yLabel: "accuracy",
                points: variants.map {
                    Report.ScatterPoint(name: $0["variant"] as? String ?? "?", x: $0["samples_per_s"] as? Double ?? 0,
                                        y: $0["accuracy"] as? Double ?? 0, kind: $0["kind"] as? String ?? "FP32")
                }))
            charts.append(Report.horizontalBarChart(
                title: "Model file size per variant", xLabel: "bytes on disk",
                bars: variants.enumerated().map { ("\($0.offset + 1). \($0.element["variant"] as? String ?? "?")", Double($0.element["size_bytes"] as? Int ?? 0)) },
                kinds: variants.map { $0["kind"] as? String ?? "FP32" }, format: { formatBytes(Int($0)) }))
        }
        let streams = document["streams"] as? [[String: Any]] ?? []
        charts.append(Report.lineChart(
            title: "Loader throughput over time", xLabel: "seconds", yLabel: "samples/s",
            series: streams.map { stream in
                ("\(stream["store"] as? String ?? "?") (\(stream["order"] as? String ?? ""))", (stream["timeline"] as? [[Double]] ?? []).map { ($0[0], $0[1]) })
            },
            references: streams.compactMap { stream in
                (stream["decode_ceiling_samples_per_s"] as? Double).map { ("decode ceiling, \(stream["store"] as? String ?? "?") store", $0) }
            }))
        var notes = (document["verdicts"] as? [String] ?? [])
        if let models = document["models"] as? String { notes.append(models) }
        notes.append("Dataset: \(document["dataset"] as? String ?? "?").")
        return Report.html(
            title: "stoke demo",
            table: (["#", "variant", "parameters", "size", "MACs", "accuracy", "samples/s", "data wait", "speedup"],
                    variants.enumerated().map { index, row in
                        ["\(index + 1)", row["variant"] as? String ?? "?", "\(row["parameters"] as? Int ?? 0)", formatBytes(row["size_bytes"] as? Int ?? 0),
                         "\(row["macs"] as? Int ?? 0)", String(format: "%.2f%%", (row["accuracy"] as? Double ?? 0) * 100),
                         String(format: "%.0f", row["samples_per_s"] as? Double ?? 0), String(format: "%.1f%%", (row["data_wait_fraction"] as? Double ?? 0) * 100),
                         String(format: "%.2fx", row["speedup"] as? Double ?? 0)]
                    }),
            charts: charts, notes: notes, footer: document["footer"] as? String)
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
