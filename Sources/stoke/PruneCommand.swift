import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokeStore

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune a Stoke model file or a sequential ONNX model, optionally fine-tuning it on a store, and compare it with the original.",
        discussion: """
            Unstructured methods (l1, global-l1, random) zero weights and keep them at zero while fine-tuning; \
            ln-structured removes whole neurons and filters with the smallest Ln norm (and the next layer's matching \
            inputs), so parameters and MACs fall. With --iterations K, K rounds of pruning amount·i/K followed by \
            --epochs of fine-tuning each.
            Example: stoke prune mlp.h5 -o mlp-pruned.h5 --method ln-structured --amount 0.5 --finetune train.h5 --epochs 2 --eval test.h5
            """)

    enum Method: String, ExpressibleByArgument, CaseIterable {
        case l1, globalL1 = "global-l1", random, lnStructured = "ln-structured"
        /// The old name of ln-structured with --n 2.
        case neurons
        var isStructured: Bool { self == .lnStructured || self == .neurons }
    }

    @Argument(help: "The model: a Stoke model file (.h5) or a PyTorch-style sequential .onnx.") var model: String
    @Option(name: .shortAndLong, help: "The pruned model to write: .onnx writes ONNX, anything else a Stoke model file.") var output: String
    @Option(name: .long, help: "Fraction to prune (0-1): of each layer's weights, of all weights (global-l1), or of each layer's channels (ln-structured).") var amount: Double = 0.5
    @Option(name: .long, help: "l1, global-l1, random (unstructured) or ln-structured (removes channels; neurons is its old name).") var method: Method = .l1
    @Option(name: .customLong("n"), help: "The norm ln-structured ranks channels by: 1 or 2.") var norm = 2
    @Option(name: .long, help: "Seed for random pruning and fine-tuning.") var seed: UInt64 = 0
    @Option(name: .long, help: "A training store to fine-tune on after pruning.") var finetune: String?
    @Option(name: .long, help: "Fine-tuning epochs per round.") var epochs = 1
    @Option(name: .long, help: "Prune-then-fine-tune rounds (needs --finetune).") var iterations = 1
    @Option(name: .long, help: "Fine-tuning learning rate (Adam).") var lr: Float = 5e-4
    @Option(name: .long, help: "A labeled test store: accuracy and streamed samples/s before and after.") var eval: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard (0...1).contains(amount) else { throw UsageError("--amount must be in [0, 1]") }
        guard norm == 1 || norm == 2 else { throw UsageError("--n must be 1 or 2") }
        guard epochs > 0, lr > 0, iterations > 0 else { throw UsageError("--epochs, --iterations and --lr must be positive") }
        guard iterations == 1 || finetune != nil else { throw UsageError("--iterations \(iterations) needs --finetune STORE: without fine-tuning, rounds add nothing") }
        try checkOutputPath(output, inputs: [model, finetune, eval])
    }

    func run() throws {
        try reportingErrors {
            let original = try loadSequentialModel(model)
            let before = try ModelMetrics.measure(Model.load(path: model), path: model, eval: eval)
            var current = original
            var rounds: [[String: Any]] = []
            var accuracyPruned: Double?
            for round in 1...iterations {
                let target = amount * Double(round) / Double(iterations)
                current = try prune(current, amount: target, original: original)
                var entry: [String: Any] = ["amount": target, "sparsity": current.sparsity, "params": try current.model().parameterCount]
                if let eval {
                    let accuracy = try accuracy(of: current, on: eval)
                    entry["accuracy_pruned"] = accuracy ?? NSNull()
                    accuracyPruned = accuracy
                }
                if let finetune {
                    current = try fineTune(current, store: finetune, round: round)
                    if let eval { entry["accuracy_finetuned"] = try accuracy(of: current, on: eval) ?? NSNull() }
                }
                rounds.append(entry)
            }
            if output.lowercased().hasSuffix(".onnx") {
                try Data(current.onnx()).write(to: URL(fileURLWithPath: output), options: .atomic)
            } else {
                try current.save(to: output, metadata: ["pruned_from": model, "method": method.rawValue, "amount": "\(amount)"])
            }
            let after = try ModelMetrics.measure(Model.load(path: output), path: output, eval: eval)

            if json {
                var document: [String: Any] = ["before": before.json, "after": after.json, "method": method.rawValue, "amount": amount,
                                               "sparsity": current.sparsity, "model": output, "iterations": iterations]
                if method.isStructured { document["n"] = method == .neurons ? 2 : norm }
                if finetune != nil {
                    document["epochs"] = epochs
                    document["rounds"] = rounds
                    if eval != nil {
                        document["accuracy_pruned"] = accuracyPruned ?? NSNull()
                        document["accuracy_finetuned"] = after.accuracy ?? NSNull()
                    }
                }
                printJSON(document)
                return
            }
            let what = method.isStructured ? "ln-structured (n = \(method == .neurons ? 2 : norm)) pruning of \(String(format: "%.0f%%", amount * 100)) of channels"
                : "\(method.rawValue) pruning of \(String(format: "%.0f%%", amount * 100))"
            print("\(what)\(finetune != nil ? ", \(iterations) round(s) of \(epochs) fine-tuning epoch(s)" : ""); "
                  + String(format: "%.1f%% of weights zero; saved %@", current.sparsity * 100, output))
            if finetune != nil, let accuracyPruned {
                print(String(format: "accuracy right after the last pruning step, before fine-tuning: %.2f%%", accuracyPruned * 100))
            }
            ModelMetrics.printComparison(before: before, after: after, afterLabel: "pruned")
        }
    }

    /// One pruning step to `amount` of the original: unstructured pruning of an already pruned model
    /// keeps its zeros (they are the smallest magnitudes; random pruning reuses the same permutation),
    /// and structured pruning counts channels against the original widths.
    private func prune(_ model: SequentialModel, amount: Double, original: SequentialModel) throws -> SequentialModel {
        switch method {
        case .l1: try model.prunedUnstructured(amount: amount, method: .l1)
        case .globalL1: try model.prunedUnstructured(amount: amount, method: .globalL1)
        case .random: try model.prunedUnstructured(amount: amount, method: .random(seed: seed))
        case .lnStructured: try model.prunedStructured(amount: amount, norm: norm, baseline: original)
        case .neurons: try model.prunedStructured(amount: amount, norm: 2, baseline: original)
        }
    }

    private func accuracy(of model: SequentialModel, on store: String) throws -> Double? {
        var options = StreamingInference.Options()
        options.context = processContext
        options.batchSize = 512
        return try StreamingInference.run(model: model.model(), storePath: store, options: options).accuracy
    }

    /// `epochs` of Adam on `store` with a cosine schedule; zero weights stay zero for unstructured
    /// methods (structured pruning has no mask: the removed channels are gone).
    private func fineTune(_ model: SequentialModel, store path: String, round: Int) throws -> SequentialModel {
        var options = TrainingOptions()
        options.learningRate = lr
        options.holdZeroWeights = !method.isStructured
        options.seed = seed &+ UInt64(round)
        options.schedule = .cosine(epochs: epochs)
        return try stoke.fineTune(model, store: path, options: options, epochs: epochs, seed: seed &+ UInt64(round)) { epochNumber in
            iterations > 1 ? "round \(round)/\(iterations), fine-tuning \(epochNumber + 1)/\(epochs)" : "fine-tuning \(epochNumber + 1)/\(epochs)"
        }.model()
    }
}
