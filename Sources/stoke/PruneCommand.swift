import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokeStore

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune a Stoke model file, optionally fine-tuning on a store with the pruned weights held at zero.",
        discussion: "Example: stoke prune mlp.h5 --amount 0.5 --method l1 --finetune train.h5 --epochs 2 --eval test.h5 -o mlp-pruned.h5")

    enum Method: String, ExpressibleByArgument, CaseIterable { case l1, globalL1 = "global-l1", random, neurons }

    @Argument(help: "The model file (.h5, from stoke train or distill).") var model: String
    @Option(name: .shortAndLong, help: "The pruned model file to write.") var output: String
    @Option(name: .long, help: "Fraction to prune (0-1).") var amount: Double = 0.5
    @Option(name: .long, help: "l1, global-l1, random (unstructured) or neurons (removes hidden units of an MLP).") var method: Method = .l1
    @Option(name: .long, help: "Seed for random pruning and fine-tuning.") var seed: UInt64 = 0
    @Option(name: .long, help: "A training store to fine-tune on.") var finetune: String?
    @Option(name: .long, help: "Fine-tuning epochs.") var epochs = 1
    @Option(name: .long, help: "Fine-tuning learning rate (Adam).") var lr: Float = 5e-4
    @Option(name: .long, help: "A test store: report accuracy before and after.") var eval: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard (0...1).contains(amount), !(method == .neurons && amount >= 1) else { throw UsageError("--amount must be in [0, 1] ([0, 1) for neurons)") }
        guard epochs > 0, lr > 0 else { throw UsageError("--epochs and --lr must be positive") }
    }

    func run() throws {
        try reportingErrors {
            let original = try SequentialModel.load(path: model)
            var pruned: SequentialModel
            switch method {
            case .l1: pruned = try original.prunedUnstructured(amount: amount, method: .l1)
            case .globalL1: pruned = try original.prunedUnstructured(amount: amount, method: .globalL1)
            case .random: pruned = try original.prunedUnstructured(amount: amount, method: .random(seed: seed))
            case .neurons: pruned = try original.prunedNeurons(amount: amount)
            }
            var result: [String: Any] = ["method": method.rawValue, "amount": amount, "sparsity": pruned.sparsity,
                                         "parameters_before": try original.model().parameterCount, "parameters_after": try pruned.model().parameterCount]
            let field = "image"
            if let eval {
                var options = StreamingInference.Options()
                options.batchSize = 512
                result["accuracy_before"] = try StreamingInference.run(model: original.model(), storePath: eval, options: options).accuracy ?? NSNull()
                result["accuracy_pruned"] = try StreamingInference.run(model: pruned.model(), storePath: eval, options: options).accuracy ?? NSNull()
            }
            if let finetune {
                var options = TrainingOptions()
                options.learningRate = lr
                options.holdZeroWeights = true
                options.seed = seed
                options.schedule = .cosine(epochs: epochs)
                let trainer = try Trainer(model: pruned, options: options)
                let store = try Store(path: finetune)
                var loaderOptions = LoaderOptions()
                loaderOptions.fields = [field, "label"]
                loaderOptions.batchSize = 128
                loaderOptions.seed = seed
                loaderOptions.workers = 1
                loaderOptions.outputTypes[field] = .f32
                let loader = try Loader(store: store, options: loaderOptions)
                for epochNumber in 0..<epochs {
                    trainer.startEpoch(epochNumber)
                    let progress = ProgressLine(total: store.sampleCount, label: "fine-tuning \(epochNumber + 1)/\(epochs)")
                    _ = try trainEpoch(trainer, epoch: try loader.epoch(epochNumber), field: field, progress: progress)
                    progress.finish()
                }
                pruned = try trainer.model()
                if let eval { result["accuracy_finetuned"] = try evaluateAccuracy(trainer, storePath: eval, field: field, workers: 1) }
            }
            try pruned.save(to: output, metadata: ["pruned_from": model, "method": method.rawValue, "amount": "\(amount)"])
            result["model"] = output
            result["sparsity"] = pruned.sparsity
            if json {
                printJSON(result)
                return
            }
            print(String(format: "%@ pruning of %.0f%%: %d → %d parameters, %.1f%% of weights zero; saved %@", method.rawValue, amount * 100,
                         result["parameters_before"] as! Int, result["parameters_after"] as! Int, pruned.sparsity * 100, output))
            let accuracy = { (key: String) in (result[key] as? Double).map { String(format: "%.2f%%", $0 * 100) } }
            let parts = [("before", "accuracy_before"), ("pruned", "accuracy_pruned"), ("fine-tuned", "accuracy_finetuned")]
                .compactMap { label, key in accuracy(key).map { "\(label) \($0)" } }
            if !parts.isEmpty { print("accuracy: " + parts.joined(separator: ", ")) }
        }
    }
}
