import Testing
@testable import StokeEngine

@Suite("training")
struct TrainingTests {
    func batch(_ count: Int, features: Int, classes: Int, seed: UInt64) -> ([Float], [Int64]) {
        let x = GraphBuilding.randomFloats(count * features, seed: seed)
        // Labels a simple function of the inputs, so the model can learn them.
        let labels = (0..<count).map { row in Int64(abs(Int(x[row * features] * 1000)) % classes) }
        return (x, labels)
    }

    @Test("linear-layer gradients match central finite differences")
    func gradientCheck() throws {
        let model = try SequentialModel(
            layers: [.flatten, .linear(inFeatures: 6, outFeatures: 5), .relu, .linear(inFeatures: 5, outFeatures: 3)], sampleShape: [2, 3], seed: 4)
        var options = TrainingOptions()
        options.optimizer = .sgd(momentum: 0)
        options.learningRate = 0
        let trainer = try Trainer(model: model, options: options)
        let (x, labels) = batch(7, features: 6, classes: 3, seed: 11)
        try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { labels in
                for (layer, elements) in [(0, [0, 7, 29]), (1, [0, 4, 14])] {
                    for element in elements {
                        let analytic = try trainer.analyticGradient(layer: layer, element: element, input: input, labels: labels, count: 7)
                        let h: Float = 1e-2
                        trainer.perturb(layer: layer, element: element, by: h)
                        let up = try trainer.loss(input: input, labels: labels, count: 7)
                        trainer.perturb(layer: layer, element: element, by: -2 * h)
                        let down = try trainer.loss(input: input, labels: labels, count: 7)
                        trainer.perturb(layer: layer, element: element, by: h)
                        let numeric = (up - down) / (2 * h)
                        #expect(abs(analytic - numeric) <= 2e-3 + 0.05 * abs(numeric), "layer \(layer) element \(element): \(analytic) vs \(numeric)")
                    }
                }
            }
        }
    }

    @Test("the distillation loss's gradient matches finite differences")
    func distillationGradientCheck() throws {
        let model = try SequentialModel(layers: [.linear(inFeatures: 4, outFeatures: 6), .relu, .linear(inFeatures: 6, outFeatures: 3)], sampleShape: [4], seed: 8)
        var options = TrainingOptions()
        options.optimizer = .sgd(momentum: 0)
        options.learningRate = 0
        let trainer = try Trainer(model: model, options: options)
        let (x, labels) = batch(5, features: 4, classes: 3, seed: 2)
        let teacherLogits = GraphBuilding.randomFloats(15, seed: 13).map { $0 * 3 }
        try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { labels in
                try teacherLogits.withUnsafeBufferPointer { teacherBuffer in
                    let teacher = (logits: teacherBuffer, temperature: Float(3), alpha: Float(0.7))
                    for (layer, element) in [(0, 1), (0, 17), (1, 5), (1, 11)] {
                        let analytic = try trainer.analyticGradient(layer: layer, element: element, input: input, labels: labels, count: 5, teacher: teacher)
                        let h: Float = 1e-2
                        trainer.perturb(layer: layer, element: element, by: h)
                        let up = try trainer.loss(input: input, labels: labels, count: 5, teacher: teacher)
                        trainer.perturb(layer: layer, element: element, by: -2 * h)
                        let down = try trainer.loss(input: input, labels: labels, count: 5, teacher: teacher)
                        trainer.perturb(layer: layer, element: element, by: h)
                        let numeric = (up - down) / (2 * h)
                        #expect(abs(analytic - numeric) <= 3e-3 + 0.05 * abs(numeric), "layer \(layer) element \(element): \(analytic) vs \(numeric)")
                    }
                }
            }
        }
    }

    @Test("a small MLP overfits a small batch, and the same seed gives the same weights")
    func overfitsAndIsDeterministic() throws {
        func train(seed: UInt64) throws -> (Float, [Float]) {
            let model = try SequentialModel(layers: [.linear(inFeatures: 10, outFeatures: 32), .relu, .dropout(probability: 0.1),
                                                     .linear(inFeatures: 32, outFeatures: 4)], sampleShape: [10], seed: seed)
            var options = TrainingOptions()
            options.learningRate = 0.01
            options.seed = seed
            let trainer = try Trainer(model: model, options: options)
            let (x, labels) = batch(16, features: 10, classes: 4, seed: 3)
            var loss: Float = 0
            try x.withUnsafeBufferPointer { input in
                try labels.withUnsafeBufferPointer { labels in
                    for _ in 0..<300 { loss = try trainer.step(input: input, labels: labels, count: 16) }
                    loss = try trainer.loss(input: input, labels: labels, count: 16)
                }
            }
            return (loss, try trainer.model().parameters["3.weight"]!.floats)
        }
        let (loss, weights) = try train(seed: 5)
        #expect(loss < 0.05, "loss \(loss) after 300 steps on 16 samples")
        let (_, again) = try train(seed: 5)
        #expect(weights == again)
        let (_, other) = try train(seed: 6)
        #expect(weights != other)
    }

    @Test("malformed batches, labels and layers are refused with their context")
    func refusesBadInput() throws {
        let model = try SequentialModel(layers: [.flatten, .linear(inFeatures: 4, outFeatures: 3)], sampleShape: [4])
        let trainer = try Trainer(model: model)
        let x = [Float](repeating: 0.5, count: 8)
        x.withUnsafeBufferPointer { input in
            #expect(throws: EngineError.badInput("label 3 of sample 1 is outside the model's 3 classes")) {
                try [Int64(0), 3].withUnsafeBufferPointer { try trainer.step(input: input, labels: $0, count: 2) }
            }
            #expect(throws: EngineError.self) {
                try [Int64(0), 1, 2].withUnsafeBufferPointer { try trainer.step(input: input, labels: $0, count: 3) }
            }
        }
        let dropout = try SequentialModel(layers: [.dropout(probability: 1.5)], sampleShape: [4])
        #expect(throws: EngineError.badInput("layer 0: dropout probability 1.5 is outside [0, 1)")) { try Trainer(model: dropout) }
    }
}
