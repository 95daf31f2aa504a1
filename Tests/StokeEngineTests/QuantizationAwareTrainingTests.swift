import Foundation
import Testing
@testable import StokeEngine

@Suite("quantization-aware training")
struct QuantizationAwareTrainingTests {
    @Test("ranges start at the first batch's extremes and then move by the momentum; every range contains 0")
    func movingRanges() throws {
        let model = try SequentialModel(layers: [.linear(inFeatures: 4, outFeatures: 3), .relu, .linear(inFeatures: 3, outFeatures: 2)],
                                        sampleShape: [4], seed: 2)
        var options = TrainingOptions()
        options.quantizationAware = true
        options.learningRate = 0
        options.optimizer = .sgd(momentum: 0)
        let trainer = try Trainer(model: model, options: options)
        #expect(trainer.activationRanges().isEmpty)
        let x: [Float] = [0.5, -1, 2, 0.25, 1, 1.5, -0.5, 0.75]
        try x.withUnsafeBufferPointer { input in
            try [Int64(0), 1].withUnsafeBufferPointer { _ = try trainer.step(input: input, labels: $0, count: 2) }
        }
        var ranges = trainer.activationRanges()
        #expect(Set(ranges.keys) == ["input", "layer0", "layer1", "output"])
        #expect(ranges["input"] == -1...2)
        #expect(ranges["layer1"]!.lowerBound == 0, "ReLU output widened to contain 0")
        let wider = x.map { $0 * 3 }
        try wider.withUnsafeBufferPointer { input in
            try [Int64(0), 1].withUnsafeBufferPointer { _ = try trainer.step(input: input, labels: $0, count: 2) }
        }
        ranges = trainer.activationRanges()
        #expect(abs(ranges["input"]!.lowerBound - (-1 + 0.01 * (-3 + 1))) < 1e-6)
        #expect(abs(ranges["input"]!.upperBound - (2 + 0.01 * (6 - 2))) < 1e-6)
    }

    @Test("QAT logits are the FP32 layer applied to uint8-rounded inputs and per-channel int8-rounded weights")
    func fakeQuantizedForward() throws {
        let model = try SequentialModel(layers: [.linear(inFeatures: 5, outFeatures: 3)], sampleShape: [5], seed: 7)
        var options = TrainingOptions()
        options.quantizationAware = true
        options.learningRate = 0
        options.optimizer = .sgd(momentum: 0)
        let trainer = try Trainer(model: model, options: options)
        let x = GraphBuilding.randomFloats(20, seed: 4)
        let labels: [Int64] = [0, 1, 2, 0]
        let logits = try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { _ = try trainer.step(input: input, labels: $0, count: 4) }
            return try trainer.logits(input: input, count: 4)
        }
        let range = try #require(trainer.activationRanges()["input"])
        let scale = (range.upperBound - range.lowerBound) / 255, zero = (-range.lowerBound / scale).rounded(.toNearestOrEven)
        let xq = x.map { (min(255, max(0, ($0 / scale).rounded(.toNearestOrEven) + zero)) - zero) * scale }
        let w = model.parameters["0.weight"]!.floats, b = model.parameters["0.bias"]!.floats
        var wq = w
        for row in 0..<3 {
            let s = w[(row * 5)..<(row * 5 + 5)].map(abs).max()! / 127
            for i in 0..<5 { wq[row * 5 + i] = (w[row * 5 + i] / s).rounded(.toNearestOrEven) * s }
        }
        #expect(Set(xq).count <= 256)
        for n in 0..<4 {
            for o in 0..<3 {
                let expected = (0..<5).reduce(b[o]) { $0 + xq[n * 5 + $1] * wq[o * 5 + $1] }
                #expect(abs(logits[n * 3 + o] - expected) < 1e-5, "sample \(n) output \(o)")
            }
        }
    }

    @Test("QAT fine-tuning of a trained MLP for one short epoch, converted to static INT8, keeps Fashion-MNIST accuracy within 0.3 pp",
          .enabled(if: FashionMNIST.installed, "needs Debian's dataset-fashion-mnist"))
    func fashionMLP() throws {
        let train = try FashionMNIST.load("train", count: 6000), test = try FashionMNIST.load("t10k", count: 2000)
        let model = try SequentialModel(layers: try ArchitectureSpec.layers("mlp:784-128-10", sampleShape: [1, 28, 28]), sampleShape: [1, 28, 28], seed: 1)
        let fp32 = try Trainer(model: model)
        try FashionMNIST.train(fp32, train, epochs: 2)
        let fp32Accuracy = FashionMNIST.accuracy(try FashionMNIST.logits(fp32, test.images), test.labels)
        var options = TrainingOptions()
        options.quantizationAware = true
        options.learningRate = 1e-4
        let qat = try Trainer(model: try fp32.model(), options: options)
        // One short epoch: the first 2,000 training samples.
        try FashionMNIST.train(qat, (Array(train.images[0..<(2000 * 784)]), Array(train.labels[0..<2000])), epochs: 1)
        let fakeQuantizedAccuracy = FashionMNIST.accuracy(try FashionMNIST.logits(qat, test.images), test.labels)
        let table = qat.calibrationTable()
        #expect(table.ranges["input"] != nil && table.ranges["output"] != nil)
        let int8 = try qat.model().model().quantizedStatic(calibration: table)
        #expect(int8.quantizedNodeCount == 2)
        let output = try #require(try Session(model: int8).run(["input": Tensor(shape: [2000, 1, 28, 28], floats: test.images)])["output"])
        let int8Accuracy = FashionMNIST.accuracy(output.floats, test.labels)
        #expect(fp32Accuracy > 0.8, "FP32 accuracy \(fp32Accuracy)")
        #expect(int8Accuracy >= fp32Accuracy - 0.003, "FP32 \(fp32Accuracy), static INT8 after QAT \(int8Accuracy) (fake-quantized \(fakeQuantizedAccuracy))")
        print("QAT on Fashion-MNIST (2,000 test samples): FP32 \(fp32Accuracy), QAT fake-quantized \(fakeQuantizedAccuracy), static INT8 \(int8Accuracy)")
    }
}
