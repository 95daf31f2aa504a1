import Foundation
import Testing
@testable import StokeEngine

@Suite("Native sequential models")
struct NativeModelTests {
    static func smallCNN(seed: UInt64 = 7) throws -> SequentialModel {
        var model = try SequentialModel(layers: [
            .conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1), .batchNorm(features: 4), .relu, .maxPool2d(kernelSize: 2),
            .conv2d(inChannels: 4, outChannels: 6, kernelSize: 3, stride: 2), .relu, .avgPool2d(kernelSize: 2, stride: 1),
            .flatten, .dropout(probability: 0.5), .linear(inFeatures: 6, outFeatures: 10),
        ], sampleShape: [1, 12, 12], seed: seed)
        // Non-trivial BatchNorm statistics so folding is exercised.
        try model.setParameter("1.running_mean", Tensor(shape: [4], floats: [0.1, -0.1, 0.2, 0]))
        try model.setParameter("1.running_var", Tensor(shape: [4], floats: [0.5, 2, 1, 1.5]))
        try model.setParameter("1.weight", Tensor(shape: [4], floats: [1.5, 0.5, 1, 2]))
        return model
    }

    @Test func shapesAreCheckedLayerByLayer() throws {
        #expect(try Self.smallCNN().outputSampleShape() == [10])
        #expect(throws: EngineError.self) {
            try SequentialModel(layers: [.linear(inFeatures: 10, outFeatures: 2)], sampleShape: [1, 12, 12])
        }
        var model = try Self.smallCNN()
        #expect(throws: EngineError.self) { try model.setParameter("0.weight", Tensor(shape: [1], floats: [0])) }
    }

    @Test func initializationIsSeeded() throws {
        let a = try Self.smallCNN(seed: 1), b = try Self.smallCNN(seed: 1), c = try Self.smallCNN(seed: 2)
        #expect(a.parameters["0.weight"]?.floats == b.parameters["0.weight"]?.floats)
        #expect(a.parameters["0.weight"]?.floats != c.parameters["0.weight"]?.floats)
        let bound = 1 / Float(9).squareRoot()
        #expect(a.parameters["0.weight"]?.floats.allSatisfy { abs($0) <= bound } == true)
    }

    @Test func runsOnTheExecutorAndMatchesTheUnoptimizedGraph() throws {
        let native = try Self.smallCNN()
        let x = GraphBuilding.random([3, 1, 12, 12], seed: 4)
        let fast = try #require(try Session(model: native.model()).run(["input": x])["output"])
        let plain = try #require(try Session(model: native.model(options: .none)).run(["input": x])["output"])
        GraphBuilding.assertClose(fast, plain.floats, shape: [3, 10], tolerance: 1e-4)
    }

    @Test func threadedKernelsMatchSingleThreaded() throws {
        let native = try SequentialModel(layers: [
            .conv2d(inChannels: 3, outChannels: 16, kernelSize: 3, padding: 1), .relu, .maxPool2d(kernelSize: 2),
            .conv2d(inChannels: 16, outChannels: 8, kernelSize: 3, padding: 1), .relu, .avgPool2d(kernelSize: 2),
            .flatten, .linear(inFeatures: 8 * 8 * 8, outFeatures: 100), .relu, .linear(inFeatures: 100, outFeatures: 4),
        ], sampleShape: [3, 32, 32], seed: 3)
        let model = try native.model()
        let x = GraphBuilding.random([24, 3, 32, 32], seed: 12)
        let single = try #require(try Session(model: model, threads: 1).run(["input": x])["output"])
        let threaded = try #require(try Session(model: model, threads: 2).run(["input": x])["output"])
        GraphBuilding.assertClose(threaded, single.floats, shape: [24, 4], tolerance: 1e-5)
    }

    @Test func exportedONNXRunsInOnnxRuntimeWithTheSameOutputs() throws {
        let native = try Self.smallCNN()
        let x = GraphBuilding.random([5, 1, 12, 12], seed: 9)
        let ours = try #require(try Session(model: native.model()).run(["input": x])["output"])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stoke-native-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let modelURL = directory.appendingPathComponent("model.onnx"), inputURL = directory.appendingPathComponent("input.pb")
        let outputURL = directory.appendingPathComponent("output.pb")
        try Data(try native.onnx()).write(to: modelURL)
        try Data(ONNXExport.serialize(tensor: x, name: "input")).write(to: inputURL)
        let (status, log) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent("ort_run.py").path,
                                                       modelURL.path, inputURL.path, outputURL.path])
        try #require(status == 0, "onnxruntime failed: \(log)")
        let theirs = try Tensor.decodeONNX(try TestSupport.readBytes(outputURL)).tensor
        GraphBuilding.assertClose(ours, theirs.floats, shape: theirs.shape, tolerance: 1e-4)
    }
}
