import Testing
@testable import StokeEngine

@Suite("pruning")
struct PruningTests {
    func mlp() throws -> SequentialModel {
        try SequentialModel(layers: [.flatten, .linear(inFeatures: 8, outFeatures: 16), .relu, .linear(inFeatures: 16, outFeatures: 4)],
                            sampleShape: [2, 4], seed: 3)
    }

    @Test("unstructured pruning zeroes exactly the requested share, smallest magnitudes first (per layer or globally)")
    func unstructured() throws {
        let model = try mlp()
        for method in [PruningMethod.l1, .random(seed: 1)] {
            let pruned = try model.prunedUnstructured(amount: 0.5, method: method)
            #expect(pruned.parameters["1.weight"]!.floats.filter { $0 == 0 }.count == 64)
            #expect(pruned.parameters["3.weight"]!.floats.filter { $0 == 0 }.count == 32)
            #expect(pruned.parameters["1.bias"]! .floats == model.parameters["1.bias"]!.floats)
        }
        let l1 = try model.prunedUnstructured(amount: 0.5, method: .l1).parameters["1.weight"]!.floats
        let original = model.parameters["1.weight"]!.floats
        let largestPruned = zip(original, l1).filter { $0.1 == 0 }.map { abs($0.0) }.max()!
        let smallestKept = zip(original, l1).filter { $0.1 != 0 }.map { abs($0.0) }.min()!
        #expect(largestPruned <= smallestKept)
        let global = try model.prunedUnstructured(amount: 0.3, method: .globalL1)
        #expect(abs(global.sparsity - 0.3) < 0.01)
        #expect(try model.prunedUnstructured(amount: 0.5, method: .random(seed: 1)).parameters["1.weight"]!.floats == model.prunedUnstructured(amount: 0.5, method: .random(seed: 1)).parameters["1.weight"]!.floats)
        #expect(throws: EngineError.self) { try model.prunedUnstructured(amount: 1.5, method: .l1) }
    }

    @Test("fine-tuning a pruned model keeps its zeros")
    func holdZeros() throws {
        let pruned = try mlp().prunedUnstructured(amount: 0.5, method: .l1)
        var options = TrainingOptions()
        options.holdZeroWeights = true
        let trainer = try Trainer(model: pruned, options: options)
        let x = GraphBuilding.randomFloats(10 * 8, seed: 2)
        let labels = (0..<10).map { Int64($0 % 4) }
        try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { labels in
                for _ in 0..<20 { try trainer.step(input: input, labels: labels, count: 10) }
            }
        }
        let tuned = try trainer.model()
        #expect(abs(tuned.sparsity - 0.5) < 1e-9)
        #expect(tuned.parameters["1.weight"]!.floats != pruned.parameters["1.weight"]!.floats)
    }
}
