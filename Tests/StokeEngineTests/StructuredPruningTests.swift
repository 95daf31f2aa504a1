import Foundation
import Testing
@testable import StokeEngine

/// Models covering every chain structured pruning handles, with BatchNorm statistics that are not the
/// identity so a misaligned feature would change the outputs.
enum PruningModels {
    /// Conv → ReLU → MaxPool → Conv → ReLU → Conv (the last layer a Conv).
    static func convConv() throws -> SequentialModel {
        try SequentialModel(layers: [.conv2d(inChannels: 3, outChannels: 6, kernelSize: 3, padding: 1), .relu, .maxPool2d(kernelSize: 2),
                                     .conv2d(inChannels: 6, outChannels: 5, kernelSize: 3, stride: 1, padding: 1, bias: false), .relu,
                                     .conv2d(inChannels: 5, outChannels: 4, kernelSize: 1)],
                            sampleShape: [3, 8, 8], seed: 11)
    }

    /// Conv → BN → ReLU → AvgPool → Dropout → Flatten → Linear → BN → ReLU → Linear.
    static func convBNFlattenLinear() throws -> SequentialModel {
        var model = try SequentialModel(layers: [.conv2d(inChannels: 2, outChannels: 8, kernelSize: 3, stride: 2, padding: 1), .batchNorm(features: 8),
                                                 .relu, .avgPool2d(kernelSize: 2), .dropout(probability: 0.1), .flatten,
                                                 .linear(inFeatures: 32, outFeatures: 12), .batchNorm(features: 12), .relu,
                                                 .linear(inFeatures: 12, outFeatures: 3)],
                                        sampleShape: [2, 8, 8], seed: 12)
        for (index, features) in [(1, 8), (7, 12)] {
            try model.setParameter("\(index).weight", Tensor(shape: [features], floats: GraphBuilding.randomFloats(features, seed: 1).map { 1 + $0 / 2 }))
            try model.setParameter("\(index).bias", GraphBuilding.random([features], seed: 2))
            try model.setParameter("\(index).running_mean", GraphBuilding.random([features], seed: 3))
            try model.setParameter("\(index).running_var", Tensor(shape: [features], floats: GraphBuilding.randomFloats(features, seed: 4).map { 1.2 + $0 }))
        }
        return model
    }

    /// Flatten → Linear → ReLU → Linear → ReLU → Dropout → Linear.
    static func mlp() throws -> SequentialModel {
        try SequentialModel(layers: [.flatten, .linear(inFeatures: 12, outFeatures: 10), .relu, .linear(inFeatures: 10, outFeatures: 7), .relu,
                                     .dropout(probability: 0.5), .linear(inFeatures: 7, outFeatures: 3)],
                            sampleShape: [3, 4], seed: 13)
    }

    static let all: [(String, @Sendable () throws -> SequentialModel)] = [("conv-conv", convConv), ("conv-bn-flatten-linear", convBNFlattenLinear), ("mlp", mlp)]

    static func outputs(_ model: SequentialModel, seed: UInt64 = 5) throws -> Tensor {
        let x = GraphBuilding.random([4] + model.sampleShape, seed: seed)
        return try #require(try Session(model: model.model()).run(["input": x])["output"])
    }

    static func macs(_ model: SequentialModel) throws -> Int {
        try Session(model: model.model()).costs(inputShapes: ["input": [1] + model.sampleShape]).reduce(0) { $0 + $1.macs }
    }
}

@Suite("structured pruning")
struct StructuredPruningTests {
    @Test("amount 0 is the identity: same layers, parameters and outputs", arguments: PruningModels.all.map(\.0))
    func amountZero(name: String) throws {
        let model = try PruningModels.all.first { $0.0 == name }!.1()
        let pruned = try model.prunedStructured(amount: 0, norm: 2)
        #expect(pruned.layers == model.layers)
        #expect(pruned.parameters.keys.sorted() == model.parameters.keys.sorted())
        for (key, value) in model.parameters { #expect(pruned.parameters[key]!.floats == value.floats, "\(key)") }
        #expect(try PruningModels.outputs(pruned).floats == PruningModels.outputs(model).floats)
    }

    /// The channels with the smallest Ln norms, computed here independently of the implementation.
    func expectedRemovals(_ model: SequentialModel, amount: Double, norm: Int) -> [Int: Set<Int>] {
        var result: [Int: Set<Int>] = [:]
        let weighted = model.layers.indices.filter { if case .linear = model.layers[$0] { true } else if case .conv2d = model.layers[$0] { true } else { false } }
        for index in weighted.dropLast() {
            let weight = model.parameters["\(index).weight"]!
            let rows = weight.shape[0], length = weight.count / rows
            var norms: [(Float, Int)] = []
            for row in 0..<rows {
                var sum: Float = 0
                for column in 0..<length {
                    let value = weight.floats[row * length + column]
                    sum += norm == 1 ? abs(value) : value * value
                }
                norms.append((norm == 1 ? sum : sum.squareRoot(), row))
            }
            let count = min(rows - 1, Int((Double(rows) * amount + 1e-9).rounded(.down)))
            result[index] = Set(norms.sorted { $0 < $1 }.prefix(count).map(\.1))
        }
        return result
    }

    /// The definition: the original model with each removed channel's weights, bias and the following
    /// BatchNorm's scale and shift set to zero, so the channel is 0 everywhere downstream.
    func zeroed(_ model: SequentialModel, removing removed: [Int: Set<Int>]) throws -> SequentialModel {
        var result = model
        for (index, channels) in removed {
            let weight = model.parameters["\(index).weight"]!
            let length = weight.count / weight.shape[0]
            var values = weight.floats
            for channel in channels { for column in 0..<length { values[channel * length + column] = 0 } }
            try result.setParameter("\(index).weight", Tensor(shape: weight.shape, floats: values))
            if let bias = model.parameters["\(index).bias"] {
                try result.setParameter("\(index).bias", Tensor(shape: bias.shape, floats: bias.floats.enumerated().map { channels.contains($0.offset) ? 0 : $0.element }))
            }
            var next = index + 1
            while next < model.layers.count {
                if case .batchNorm = model.layers[next] {
                    for suffix in ["weight", "bias"] {
                        let tensor = model.parameters["\(next).\(suffix)"]!
                        try result.setParameter("\(next).\(suffix)", Tensor(shape: tensor.shape, floats: tensor.floats.enumerated().map { channels.contains($0.offset) ? 0 : $0.element }))
                    }
                }
                if case .linear = model.layers[next] { break }
                if case .conv2d = model.layers[next] { break }
                next += 1
            }
        }
        return result
    }

    @Test("removes exactly the smallest-norm channels; outputs equal the original with them zeroed; parameters and MACs fall",
          arguments: PruningModels.all.map(\.0), [1, 2])
    func definition(name: String, norm: Int) throws {
        let model = try PruningModels.all.first { $0.0 == name }!.1()
        for amount in [0.3, 0.5, 1.0] {
            let expected = expectedRemovals(model, amount: amount, norm: norm)
            let plan = try model.channelsToKeep(amount: amount, norm: norm)
            for (index, removed) in expected {
                let width = try #require(SequentialModel.outputWidth(model.layers[index]))
                #expect(Set(plan[index] ?? Array(0..<width)) == Set(0..<width).subtracting(removed), "\(name) layer \(index) amount \(amount)")
            }
            #expect(Set(plan.keys).isSubset(of: Set(expected.keys)))
            let pruned = try model.prunedStructured(amount: amount, norm: norm)
            #expect(try pruned.outputSampleShape() == model.outputSampleShape())
            for (index, removed) in expected {
                #expect(SequentialModel.outputWidth(pruned.layers[index]) == SequentialModel.outputWidth(model.layers[index])! - removed.count)
            }
            let reference = try PruningModels.outputs(zeroed(model, removing: expected))
            GraphBuilding.assertClose(try PruningModels.outputs(pruned), reference.floats, shape: reference.shape, tolerance: 1e-4)
            #expect(try pruned.model().parameterCount < model.model().parameterCount)
            #expect(try PruningModels.macs(pruned) < PruningModels.macs(model))
        }
    }

    @Test("Conv → Flatten → Linear removes each channel's H·W block of columns")
    func flattenMultiplicity() throws {
        let model = try PruningModels.convBNFlattenLinear()
        let kept = [0, 3, 5]
        let pruned = try model.keepingChannels([0: kept])
        #expect(pruned.layers[0] == .conv2d(inChannels: 2, outChannels: 3, kernelSize: 3, stride: 2, padding: 1))
        #expect(pruned.layers[1] == .batchNorm(features: 3))
        #expect(pruned.layers[6] == .linear(inFeatures: 12, outFeatures: 12))
        // The conv output is [8, 4, 4], pooled to [8, 2, 2]: channel c owns columns 4c ..< 4c + 4.
        let original = model.parameters["6.weight"]!.floats, columns = kept.flatMap { (4 * $0)..<(4 * $0 + 4) }
        let expected = (0..<12).flatMap { row in columns.map { original[row * 32 + $0] } }
        #expect(pruned.parameters["6.weight"]!.floats == expected)
        #expect(pruned.parameters["1.running_var"]!.floats == kept.map { model.parameters["1.running_var"]!.floats[$0] })
    }

    @Test("iterative rounds count channels against the baseline; amount 1 keeps one channel")
    func baselineAndExtremes() throws {
        let model = try PruningModels.mlp()
        let first = try model.prunedStructured(amount: 0.25, norm: 2, baseline: model)
        #expect(first.layers[1] == .linear(inFeatures: 12, outFeatures: 8))
        let second = try first.prunedStructured(amount: 0.5, norm: 2, baseline: model)
        #expect(second.layers[1] == .linear(inFeatures: 12, outFeatures: 5))
        #expect(second.layers[3] == .linear(inFeatures: 5, outFeatures: 4))
        #expect(second.layers[6] == .linear(inFeatures: 4, outFeatures: 3))
        let smallest = try model.prunedStructured(amount: 1, norm: 1)
        #expect(smallest.layers[1] == .linear(inFeatures: 12, outFeatures: 1))
        #expect(smallest.layers[3] == .linear(inFeatures: 1, outFeatures: 1))
        #expect(try model.prunedNeurons(amount: 0.5).parameters["3.weight"]!.floats == model.prunedStructured(amount: 0.5, norm: 2).parameters["3.weight"]!.floats)
    }

    @Test("refusals name the layer or the bad setting")
    func refusals() throws {
        let model = try PruningModels.mlp()
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            Issue.record("expected an error")
            return ""
        }
        #expect(message { _ = try model.prunedStructured(amount: 1.5) }.contains("outside 0...1"))
        #expect(message { _ = try model.prunedStructured(amount: 0.5, norm: 3) }.contains("norm 3"))
        let single = try SequentialModel(layers: [.conv2d(inChannels: 1, outChannels: 2, kernelSize: 1), .flatten], sampleShape: [1, 2, 2])
        #expect(message { _ = try single.prunedStructured(amount: 0.5) }.contains("layer 0"))
        #expect(try single.prunedStructured(amount: 0).layers == single.layers)
        #expect(message { _ = try model.keepingChannels([6: [0]]) }.contains("layer 6"))
        #expect(message { _ = try model.keepingChannels([2: [0]]) }.contains("layer 2"))
        #expect(message { _ = try model.keepingChannels([1: [3, 1]]) }.contains("layer 1"))
        #expect(message { _ = try model.keepingChannels([1: [10]]) }.contains("below 10"))
        #expect(message { _ = try model.prunedStructured(amount: 0.5, baseline: PruningModels.convConv()) }.contains("baseline"))
    }
}

@Suite("sequential ONNX import")
struct SequentialImportTests {
    @Test("a model exported by SequentialModel.onnx() imports to the same layers, parameters and outputs",
          arguments: PruningModels.all.map(\.0))
    func roundTrip(name: String) throws {
        let model = try PruningModels.all.first { $0.0 == name }!.1()
        let imported = try SequentialModel(importing: Model.load(onnxBytes: model.onnx(), options: SequentialModel.importOptions))
        // Dropout's ratio travels as the node's second input, so even it comes back exactly.
        #expect(imported.layers == model.layers)
        #expect(imported.sampleShape == model.sampleShape)
        for (key, value) in model.parameters { #expect(imported.parameters[key]?.floats == value.floats, "\(key)") }
        #expect(try PruningModels.outputs(imported).floats == PruningModels.outputs(model).floats)
    }

    func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stoke-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("a PyTorch-style graph (Reshape flatten, MatMul+Add, BatchNorm, Dropout, Identity) imports with onnxruntime's outputs, then prunes")
    func torchStyle() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cnn.onnx").path
        let inputPath = directory.appendingPathComponent("x.pb"), outputPath = directory.appendingPathComponent("y.pb")
        let (status, log) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent("torch_style_onnx.py").path, "cnn", path, "8",
                                                       inputPath.path, outputPath.path])
        try #require(status == 0, "\(log)")
        let imported = try SequentialModel(importing: Model.load(onnx: path, options: SequentialModel.importOptions))
        #expect(imported.layers == [.conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1), .batchNorm(features: 4), .relu,
                                    .maxPool2d(kernelSize: 2), .conv2d(inChannels: 4, outChannels: 6, kernelSize: 3, padding: 1, bias: false),
                                    .relu, .avgPool2d(kernelSize: 2), .flatten, .linear(inFeatures: 24, outFeatures: 16), .relu,
                                    .dropout(probability: 0.25), .linear(inFeatures: 16, outFeatures: 10)])
        // Without constant folding the Constant nodes PyTorch emits are read in place.
        let unfolded = try SequentialModel(importing: Model.load(onnx: path, options: .none))
        #expect(unfolded.layers == imported.layers)
        #expect(unfolded.parameters.keys.sorted() == imported.parameters.keys.sorted())
        let x = try Tensor.decodeONNX(TestSupport.readBytes(inputPath)).tensor
        let expected = try Tensor.decodeONNX(TestSupport.readBytes(outputPath)).tensor
        let ours = try #require(try Session(model: imported.model()).run(["input": x])["output"])
        GraphBuilding.assertClose(ours, expected.floats, shape: expected.shape, tolerance: 1e-4)
        // The same file loaded with the default passes (BatchNorm folded, activations fused) also agrees.
        let engine = try #require(try Session(model: Model.load(onnx: path)).run(["x": x])["logits"])
        GraphBuilding.assertClose(engine, expected.floats, shape: expected.shape, tolerance: 1e-4)
        let pruned = try imported.prunedStructured(amount: 0.5, norm: 1)
        #expect(pruned.layers[0] == .conv2d(inChannels: 1, outChannels: 2, kernelSize: 3, padding: 1))
        #expect(pruned.layers[8] == .linear(inFeatures: 12, outFeatures: 8))
        #expect(try pruned.outputSampleShape() == [10])
    }

    func graph(_ nodes: [Node], _ initializers: [String: Tensor], input: [StokeEngine.Dimension] = [.symbolic("batch"), .fixed(4)]) -> Graph {
        Graph(name: "g", nodes: nodes, initializers: initializers, inputs: [ValueInfo(name: "x", shape: input)],
              outputs: [ValueInfo(name: "y", shape: nil)])
    }

    func importMessage(_ graph: Graph) -> String {
        do {
            _ = try SequentialModel(importing: Model(graph: graph, opset: 17, options: SequentialModel.importOptions))
        } catch {
            return "\(error)"
        }
        Issue.record("expected the import to fail")
        return ""
    }

    @Test("a graph with two branches, an unknown operator, grouped convolution or a free sample shape is refused naming the node")
    func refusals() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("branch.onnx").path
        let (status, log) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent("torch_style_onnx.py").path, "branch", path])
        try #require(status == 0, "\(log)")
        let branch = importMessage(try Model.load(onnx: path, options: SequentialModel.importOptions).graph)
        #expect(branch.contains("'/residual/Add' (Add)"), "\(branch)")

        let w = GraphBuilding.random([4, 4], seed: 1)
        let sigmoid = importMessage(graph([Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["h"], attributes: ["transB": .int(1)]),
                                           Node(name: "act", opType: "Sigmoid", inputs: ["h"], outputs: ["y"])], ["w": w]))
        #expect(sigmoid.contains("'act' (Sigmoid)"), "\(sigmoid)")
        let scaled = importMessage(graph([Node(name: "fc", opType: "Gemm", inputs: ["x", "w"], outputs: ["y"], attributes: ["alpha": .float(2)])], ["w": w]))
        #expect(scaled.contains("'fc'") && scaled.contains("alpha"), "\(scaled)")
        let computed = importMessage(graph([Node(name: "fc", opType: "MatMul", inputs: ["x", "x"], outputs: ["y"])], [:]))
        #expect(computed.contains("'fc'"), "\(computed)")
        let grouped = importMessage(graph([Node(name: "conv", opType: "Conv", inputs: ["x", "k"], outputs: ["y"], attributes: ["group": .int(2)])],
                                          ["k": GraphBuilding.random([2, 1, 3, 3], seed: 2)], input: [.symbolic("batch"), .fixed(2), .fixed(5), .fixed(5)]))
        #expect(grouped.contains("'conv'") && grouped.contains("group"), "\(grouped)")
        let fused = importMessage(try Model.load(onnxBytes: PruningModels.convConv().onnx()).graph)
        #expect(fused.contains("importOptions"), "\(fused)")
        let free = importMessage(graph([Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["y"])], [:], input: [.symbolic("batch"), .symbolic("f")]))
        #expect(free.contains("'x'") && free.contains("fixed"), "\(free)")
        let notFlat = importMessage(graph([Node(name: "reshape", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])],
                                          ["s": Tensor(shape: [3], int64s: [-1, 2, 2])]))
        #expect(notFlat.contains("'reshape'"), "\(notFlat)")
    }
}
