import Foundation
import Testing
@testable import StokeEngine

/// Gradient checks of every trainable layer against central finite differences, and the CNN-level
/// properties: overfitting, determinism, BatchNorm statistics and ONNX export.
@Suite("training layers")
struct TrainingLayerTests {
    struct Probe {
        var group: Int
        var element: Int
        var bias = false
    }

    /// Compares the analytic gradient of each probed parameter with (L(p + h) − L(p − h)) / 2h, the
    /// loss taken in training mode (batch statistics; dropout masks frozen after one draw).
    func check(_ layers: [Layer], sampleShape: [Int], count: Int = 6, classes: Int, probes: [Probe], seed: UInt64 = 1,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let model = try SequentialModel(layers: layers, sampleShape: sampleShape, seed: seed)
        var options = TrainingOptions()
        options.optimizer = .sgd(momentum: 0)
        options.learningRate = 0
        options.seed = seed
        let trainer = try Trainer(model: model, options: options)
        let x = GraphBuilding.randomFloats(count * sampleShape.reduce(1, *), seed: seed + 100)
        let labels = (0..<count).map { Int64($0 % classes) }
        try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { labels in
                _ = try trainer.loss(input: input, labels: labels, count: count, teacher: nil, training: true)
                trainer.freezesDropoutMasks = true
                for probe in probes {
                    let analytic = try trainer.analyticGradient(layer: probe.group, element: probe.element, bias: probe.bias,
                                                                input: input, labels: labels, count: count)
                    let h: Float = 5e-3
                    trainer.perturb(layer: probe.group, element: probe.element, bias: probe.bias, by: h)
                    let up = try trainer.loss(input: input, labels: labels, count: count, teacher: nil, training: true)
                    trainer.perturb(layer: probe.group, element: probe.element, bias: probe.bias, by: -2 * h)
                    let down = try trainer.loss(input: input, labels: labels, count: count, teacher: nil, training: true)
                    trainer.perturb(layer: probe.group, element: probe.element, bias: probe.bias, by: h)
                    let numeric = (up - down) / (2 * h)
                    #expect(abs(analytic - numeric) <= 2e-3 + 0.03 * abs(numeric),
                            "group \(probe.group) element \(probe.element)\(probe.bias ? " (bias)" : ""): analytic \(analytic), numeric \(numeric)",
                            sourceLocation: sourceLocation)
                }
            }
        }
    }

    static func probes(_ group: Int, _ elements: [Int], biases: [Int] = [0]) -> [Probe] {
        elements.map { Probe(group: group, element: $0) } + biases.map { Probe(group: group, element: $0, bias: true) }
    }

    @Test("Conv2d with stride 2 and padding 1: weight and bias gradients")
    func convStridePadding() throws {
        try check([.conv2d(inChannels: 2, outChannels: 3, kernelSize: 3, stride: 2, padding: 1), .relu, .flatten,
                   .linear(inFeatures: 48, outFeatures: 4)],
                  sampleShape: [2, 7, 7], classes: 4, probes: Self.probes(0, [0, 8, 13, 40, 53], biases: [0, 2]) + Self.probes(1, [3, 150]))
    }

    @Test("Conv2d input gradients (col2im, stride 1 and 2, padding) reach the layers below")
    func convInputGradients() throws {
        try check([.conv2d(inChannels: 2, outChannels: 3, kernelSize: 3, padding: 1), .conv2d(inChannels: 3, outChannels: 2, kernelSize: 3, padding: 1),
                   .conv2d(inChannels: 2, outChannels: 2, kernelSize: 3, stride: 2, padding: 1), .flatten, .linear(inFeatures: 32, outFeatures: 3)],
                  sampleShape: [2, 7, 7], classes: 3, probes: Self.probes(0, [0, 10, 26, 53], biases: [1]) + Self.probes(1, [4, 40], biases: [0]))
    }

    @Test("MaxPool2d routes the gradient to each window's maximum")
    func maxPool() throws {
        try check([.conv2d(inChannels: 1, outChannels: 2, kernelSize: 3, padding: 1), .maxPool2d(kernelSize: 2), .flatten,
                   .linear(inFeatures: 18, outFeatures: 3)],
                  sampleShape: [1, 6, 6], classes: 3, probes: Self.probes(0, [0, 4, 11, 17], biases: [1]))
    }

    @Test("AvgPool2d with overlapping windows (kernel 3, stride 2)")
    func avgPool() throws {
        try check([.conv2d(inChannels: 1, outChannels: 2, kernelSize: 3, padding: 1), .avgPool2d(kernelSize: 3, stride: 2), .flatten,
                   .linear(inFeatures: 18, outFeatures: 3)],
                  sampleShape: [1, 7, 7], classes: 3, probes: Self.probes(0, [0, 5, 9, 16], biases: [0, 1]))
    }

    @Test("BatchNorm over N×H×W in training mode: scale, shift and the layer below it")
    func batchNorm2d() throws {
        try check([.conv2d(inChannels: 1, outChannels: 3, kernelSize: 3), .batchNorm(features: 3), .flatten,
                   .linear(inFeatures: 48, outFeatures: 3)],
                  sampleShape: [1, 6, 6], classes: 3,
                  probes: Self.probes(0, [0, 7, 20], biases: []) + Self.probes(1, [0, 1, 2], biases: [0, 2]) + Self.probes(2, [5]))
    }

    @Test("BatchNorm over N for features, Linear, and Dropout with a fixed mask")
    func batchNorm1dDropout() throws {
        try check([.linear(inFeatures: 5, outFeatures: 6), .batchNorm(features: 6), .relu, .dropout(probability: 0.3),
                   .linear(inFeatures: 6, outFeatures: 3)],
                  sampleShape: [5], count: 8, classes: 3,
                  probes: Self.probes(0, [0, 12, 29], biases: [3]) + Self.probes(1, [1, 4], biases: [5]) + Self.probes(2, [0, 17], biases: [2]))
    }

    static let tinyCNN: [Layer] = [
        .conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1), .batchNorm(features: 4), .relu, .maxPool2d(kernelSize: 2),
        .conv2d(inChannels: 4, outChannels: 6, kernelSize: 3, stride: 2, padding: 1), .relu, .avgPool2d(kernelSize: 2),
        .flatten, .dropout(probability: 0.1), .linear(inFeatures: 6, outFeatures: 4),
    ]

    func trainTinyCNN(seed: UInt64, steps: Int) throws -> (trainer: Trainer, loss: Float, x: [Float], labels: [Int64]) {
        let model = try SequentialModel(layers: Self.tinyCNN, sampleShape: [1, 8, 8], seed: seed)
        var options = TrainingOptions()
        options.learningRate = 0.02
        options.seed = seed
        let trainer = try Trainer(model: model, options: options)
        let x = GraphBuilding.randomFloats(12 * 64, seed: 21)
        let labels = (0..<12).map { Int64($0 % 4) }
        var loss: Float = 0
        try x.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { labels in
                for _ in 0..<steps { try trainer.step(input: input, labels: labels, count: 12) }
                loss = try trainer.loss(input: input, labels: labels, count: 12, teacher: nil, training: true)
            }
        }
        return (trainer, loss, x, labels)
    }

    @Test("a tiny CNN (conv, BatchNorm, both pools, dropout) overfits 12 samples; the same seed gives the same weights")
    func tinyCNNOverfitsDeterministically() throws {
        let (trainer, loss, _, _) = try trainTinyCNN(seed: 3, steps: 250)
        #expect(loss < 0.1, "loss \(loss) after 250 steps on 12 samples")
        let first = try trainer.model().parameters
        let again = try trainTinyCNN(seed: 3, steps: 250).trainer.model().parameters
        #expect(first.keys.sorted() == again.keys.sorted())
        for key in first.keys { #expect(first[key]!.floats == again[key]!.floats, "\(key)") }
        let other = try trainTinyCNN(seed: 4, steps: 250).trainer.model().parameters
        #expect(first["0.weight"]!.floats != other["0.weight"]!.floats)
    }

    @Test("BatchNorm running statistics follow PyTorch: momentum 0.1 and the unbiased batch variance")
    func batchNormRunningStatistics() throws {
        let model = try SequentialModel(layers: [.batchNorm(features: 2), .flatten, .linear(inFeatures: 6, outFeatures: 2)], sampleShape: [2, 3], seed: 1)
        var options = TrainingOptions()
        options.learningRate = 0
        options.optimizer = .sgd(momentum: 0)
        let trainer = try Trainer(model: model, options: options)
        // Two samples of [2 channels, 3 positions]: channel 0 holds 0…5, channel 1 holds 10, 12, …, 20.
        let x: [Float] = [0, 1, 2, 10, 12, 14, 3, 4, 5, 16, 18, 20]
        _ = try x.withUnsafeBufferPointer { input in
            try [Int64(0), 1].withUnsafeBufferPointer { try trainer.step(input: input, labels: $0, count: 2) }
        }
        let exported = try trainer.model()
        let mean = exported.parameters["0.running_mean"]!.floats, variance = exported.parameters["0.running_var"]!.floats
        // channel 0: mean 2.5, unbiased variance 3.5; channel 1: mean 15, unbiased variance 14.
        #expect(abs(mean[0] - 0.25) < 1e-5 && abs(mean[1] - 1.5) < 1e-5, "\(mean)")
        #expect(abs(variance[0] - (0.9 + 0.35)) < 1e-5 && abs(variance[1] - (0.9 + 1.4)) < 1e-5, "\(variance)")
    }

    @Test("a trained CNN with BatchNorm exports to ONNX that onnxruntime runs with the trainer's logits (1e-4)")
    func exportRunsInOnnxRuntime() throws {
        let (trainer, _, x, _) = try trainTinyCNN(seed: 5, steps: 30)
        let ours = try x.withUnsafeBufferPointer { try trainer.logits(input: $0, count: 12) }
        let native = try trainer.model()
        let engine = try #require(try Session(model: native.model()).run(["input": Tensor(shape: [12, 1, 8, 8], floats: x)])["output"])
        GraphBuilding.assertClose(engine, ours, shape: [12, 4], tolerance: 1e-4)
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("stoke-train-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let modelURL = directory.appendingPathComponent("model.onnx"), inputURL = directory.appendingPathComponent("input.pb")
        let outputURL = directory.appendingPathComponent("output.pb")
        try Data(try native.onnx()).write(to: modelURL)
        try Data(ONNXExport.serialize(tensor: Tensor(shape: [12, 1, 8, 8], floats: x), name: "input")).write(to: inputURL)
        let (status, log) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent("ort_run.py").path,
                                                       modelURL.path, inputURL.path, outputURL.path])
        try #require(status == 0, "onnxruntime failed: \(log)")
        let theirs = try Tensor.decodeONNX(try TestSupport.readBytes(outputURL)).tensor
        GraphBuilding.assertClose(theirs, ours, shape: [12, 4], tolerance: 1e-4)
    }
}

@Suite("architecture specs")
struct ArchitectureSpecTests {
    @Test("cnn: tokens build the layers, with a Flatten before the first fc and channels from the sample shape")
    func cnnSpec() throws {
        let layers = try ArchitectureSpec.layers("cnn:c16k3p1-bn-relu-mp2-c32k3s2p1-relu-ap2s1-do0.25-fc128-relu-fc10", sampleShape: [1, 28, 28])
        #expect(layers == [
            .conv2d(inChannels: 1, outChannels: 16, kernelSize: 3, stride: 1, padding: 1), .batchNorm(features: 16), .relu, .maxPool2d(kernelSize: 2),
            .conv2d(inChannels: 16, outChannels: 32, kernelSize: 3, stride: 2, padding: 1), .relu, .avgPool2d(kernelSize: 2, stride: 1),
            .dropout(probability: 0.25), .flatten, .linear(inFeatures: 32 * 6 * 6, outFeatures: 128), .relu, .linear(inFeatures: 128, outFeatures: 10),
        ])
        #expect(try ArchitectureSpec.layers("mlp:784-64-10", sampleShape: [1, 28, 28], dropout: 0.5)
            == [.flatten, .linear(inFeatures: 784, outFeatures: 64), .relu, .dropout(probability: 0.5), .linear(inFeatures: 64, outFeatures: 10)])
    }

    @Test("bad tokens and shapes are refused naming the token")
    func badSpecs() throws {
        for (spec, token) in [("cnn:c16k3-pool2", "'pool2'"), ("cnn:ck3", "'ck3'"), ("cnn:c4k3x2", "'c4k3x2'"), ("cnn:mp0", "'mp0'"),
                              ("cnn:c4k3--fc10", "''"), ("mlp:784", "two sizes"), ("mlp:784-0-10", "'0'")] {
            do {
                try ArchitectureSpec.validate(spec)
                Issue.record("\(spec) was accepted")
            } catch {
                #expect(error.description.contains(token), "\(spec): \(error.description)")
            }
        }
        #expect(throws: EngineError.self) { try ArchitectureSpec.layers("cnn:c4k9-fc10", sampleShape: [1, 5, 5]) }
        #expect(throws: EngineError.self) { try ArchitectureSpec.layers("cnn:c4k3", sampleShape: [784]) }
        #expect(throws: EngineError.self) { try ArchitectureSpec.layers("mlp:100-10", sampleShape: [1, 28, 28]) }
    }
}
