import ArgumentParser
import Foundation
import StokeEngine
import StokeLoader
import StokeStore

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a store, fed by the loader; save it as an HDF5 model file.",
        discussion: """
            Architectures: mlp:IN-H1-…-OUT (Flatten, Linear+ReLU stacks; --dropout after each hidden layer), or \
            cnn:TOKEN-TOKEN-… with tokens c<OUT>k<K>[s<S>][p<P>] (Conv2d), relu, bn (BatchNorm), mp<K>[s<S>] / \
            ap<K>[s<S>] (max / average pooling), do<P> (Dropout), flat, fc<N> (Linear; a Flatten is inserted \
            before the first one). Input channels come from the store's sample shape.
            Examples: stoke train train.h5 --arch mlp:784-512-256-10 -o mlp.h5 --epochs 5 --eval test.h5
                      stoke train train.h5 --arch cnn:c16k3p1-bn-relu-mp2-c32k3p1-relu-mp2-fc128-relu-fc10 -o cnn.h5 --eval test.h5
            """)

    @Argument(help: "The training store.") var store: String
    @Option(name: .long, help: "mlp:IN-H1-…-OUT or cnn:TOKENS (see below).") var arch: String
    @Option(name: .shortAndLong, help: "The model file to write (.h5).") var output: String
    @Option(name: .long, help: "Epochs.") var epochs = 5
    @Option(name: .long, help: "Samples per batch.") var batchSize = 128
    @Option(name: .long, help: "Learning rate.") var lr: Float = 1e-3
    @Option(name: .long, help: "adam or sgd.") var optimizer = "adam"
    @Option(name: .long, help: "SGD momentum.") var momentum: Float = 0.9
    @Option(name: .long, help: "L2 weight decay.") var weightDecay: Float = 0
    @Option(name: .long, help: "constant, step or cosine.") var schedule = "cosine"
    @Option(name: .long, help: "Dropout probability after each hidden layer.") var dropout: Float = 0
    @Option(name: .long, help: "Seed for weights, shuffling and dropout.") var seed: UInt64 = 0
    @Option(name: .long, help: "A test store to evaluate on after each epoch.") var eval: String?
    @Option(name: .long, help: "Loader worker threads.") var workers = 1
    @Option(name: .long, help: "Engine threads for the GEMMs.") var threads = 1
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard epochs > 0, batchSize > 0, lr > 0, workers > 0, threads > 0 else {
            throw UsageError("--epochs, --batch-size, --lr, --workers and --threads must be positive")
        }
        guard ["adam", "sgd"].contains(optimizer) else { throw UsageError("--optimizer '\(optimizer)': use adam or sgd") }
        guard ["constant", "step", "cosine"].contains(schedule) else { throw UsageError("--schedule '\(schedule)': use constant, step or cosine") }
        guard (0..<1).contains(dropout) else { throw UsageError("--dropout must be in [0, 1)") }
        try Train.validateArch(arch)
        try checkOutputPath(output, inputs: [store, eval])
    }

    /// Checks --arch's spelling before any file is opened.
    static func validateArch(_ spec: String) throws {
        do { try ArchitectureSpec.validate(spec) } catch { throw UsageError("--arch: \(error.description)") }
    }

    /// The layers of --arch for samples of `sampleShape`.
    static func layers(_ spec: String, sampleShape: [Int], dropout: Float) throws -> [Layer] {
        do { return try ArchitectureSpec.layers(spec, sampleShape: sampleShape, dropout: dropout) } catch { throw UsageError("--arch: \(error.description)") }
    }

    func run() throws {
        try reportingErrors {
            let trainStore = try Store(path: store)
            let imageField = try trainingField(of: trainStore, path: store)
            if let eval { try checkEvalStore(eval, field: imageField.name, sampleShape: imageField.sampleShape) }
            let layers = try Train.layers(arch, sampleShape: imageField.sampleShape, dropout: dropout)
            let model = try SequentialModel(layers: layers, sampleShape: imageField.sampleShape, seed: seed)
            var options = TrainingOptions()
            options.learningRate = lr
            options.optimizer = optimizer == "adam" ? .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8) : .sgd(momentum: momentum)
            options.weightDecay = weightDecay
            options.schedule = schedule == "cosine" ? .cosine(epochs: epochs) : schedule == "step" ? .step(every: max(1, epochs / 3), gamma: 0.1) : .constant
            options.seed = seed
            let trainer = try Trainer(model: model, options: options, context: processContext.with(threads: threads))

            var loaderOptions = LoaderOptions()
            loaderOptions.fields = [imageField.name, "label"]
            loaderOptions.batchSize = batchSize
            loaderOptions.order = .chunkShuffle(window: 4)
            loaderOptions.seed = seed
            loaderOptions.workers = workers
            loaderOptions.outputTypes[imageField.name] = .f32
            let loader = try Loader(store: trainStore, options: loaderOptions)
            var history: [[String: Any]] = []
            var totalSamples = 0, totalSeconds = 0.0
            for epochNumber in 0..<epochs {
                trainer.startEpoch(epochNumber)
                let progress = ProgressLine(total: trainStore.sampleCount, label: "epoch \(epochNumber + 1)/\(epochs)")
                let started = Date()
                let epoch = try loader.epoch(epochNumber)
                let (lossSum, samples) = try trainEpoch(trainer, epoch: epoch, field: imageField.name, progress: progress)
                progress.finish()
                let seconds = Date().timeIntervalSince(started)
                totalSamples += samples
                totalSeconds += seconds
                var entry: [String: Any] = ["epoch": epochNumber + 1, "train_loss": lossSum / Double(max(samples, 1)),
                                            "samples_per_s": Double(samples) / max(seconds, 1e-9), "data_wait_fraction": epoch.stats.waitSeconds / max(seconds, 1e-9)]
                if let eval { entry["test_accuracy"] = try evaluateAccuracy(trainer, storePath: eval, field: imageField.name, workers: workers) }
                history.append(entry)
                if !json {
                    print(String(format: "epoch %d: loss %.4f, %.0f samples/s", epochNumber + 1, entry["train_loss"] as! Double, entry["samples_per_s"] as! Double)
                          + ((entry["test_accuracy"] as? Double).map { String(format: ", test accuracy %.2f%%", $0 * 100) } ?? ""))
                }
            }
            let trained = try trainer.model()
            try trained.save(to: output, metadata: ["trained_on": store, "arch": arch, "epochs": String(epochs), "seed": String(seed)])
            let last = history.last ?? [:]
            if json {
                printJSON([
                    "epochs": epochs, "train_loss": last["train_loss"] ?? NSNull(), "test_accuracy": last["test_accuracy"] ?? NSNull(),
                    "samples_per_s": Double(totalSamples) / max(totalSeconds, 1e-9), "history": history, "model": output,
                ])
            } else {
                print("saved \(output)")
            }
        }
    }
}

/// One epoch of training steps (distillation steps when a teacher session is given); returns the summed
/// loss and the samples seen.
func trainEpoch(
    _ trainer: Trainer, epoch: borrowing Epoch, field: String, progress: ProgressLine,
    teacher: (session: Session, input: String, output: String, temperature: Float, alpha: Float)? = nil
) throws -> (lossSum: Double, samples: Int) {
    var lossSum = 0.0, samples = 0
    while let batch = try epoch.next() {
        let count = batch.count
        let labels = try batch.values("label", as: Int64.self)
        let loss = unsafe try batch.withField(field) { bytes, layout in
            let input = unsafe bytes.assumingMemoryBound(to: Float.self)
            return unsafe try labels.withUnsafeBufferPointer { labelBuffer in
                guard let teacher else { return unsafe try trainer.step(input: input, labels: labelBuffer, count: count) }
                let span = unsafe Span(_unsafeElements: UnsafeBufferPointer(rebasing: input[0..<(count * layout.sampleShape.reduce(1, *))]))
                return try teacher.session.run(input: teacher.input, shape: [count] + layout.sampleShape, data: span) { outputs in
                    try outputs.withFloats(teacher.output) { logits in
                        let copy = (0..<logits.count).map { logits[$0] }
                        return unsafe try copy.withUnsafeBufferPointer {
                            unsafe try trainer.distillationStep(input: input, labels: labelBuffer, teacherLogits: $0, count: count,
                                                         temperature: teacher.temperature, alpha: teacher.alpha)
                        }
                    }
                }
            }
        }
        lossSum += Double(loss) * Double(count)
        samples += count
        progress.update(samples)
    }
    return (lossSum, samples)
}

/// Top-1 accuracy of a trainer's model on a store, streamed sequentially.
func evaluateAccuracy(_ trainer: Trainer, storePath: String, field: String, workers: Int) throws -> Double {
    var options = LoaderOptions()
    options.fields = [field, "label"]
    options.batchSize = 512
    options.order = .sequential
    options.workers = workers
    options.outputTypes[field] = .f32
    let loader = try Loader(store: Store(path: storePath), options: options)
    let epoch = try loader.epoch(0)
    var correct = 0, total = 0
    let classes = trainer.classes
    while let batch = try epoch.next() {
        let count = batch.count
        let labels = try batch.values("label", as: Int64.self)
        let logits = unsafe try batch.withField(field) { bytes, _ in
            unsafe try trainer.logits(input: unsafe bytes.assumingMemoryBound(to: Float.self), count: count)
        }
        for row in 0..<count {
            var best = 0
            for column in 1..<classes where logits[row * classes + column] > logits[row * classes + best] { best = column }
            if Int64(best) == labels[row] { correct += 1 }
        }
        total += count
    }
    return Double(correct) / Double(max(total, 1))
}
