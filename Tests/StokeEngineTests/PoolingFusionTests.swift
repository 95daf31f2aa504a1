import CStokeKernels
import Foundation
import Testing
@testable import StokeEngine

@Suite("MaxPool 2x2 kernel and Conv+MaxPool fusion")
struct PoolingFusionTests {
    /// The ONNX definition of a 2x2, stride-2 max pool (floor mode), with max(a, b) = a > b ? a : b.
    static func reference(_ x: [Float], planes: Int, height: Int, width: Int) -> [Float] {
        func larger(_ a: Float, _ b: Float) -> Float { a > b ? a : b }
        var y: [Float] = []
        for p in 0..<planes {
            for oh in 0..<(height / 2) {
                for ow in 0..<(width / 2) {
                    let at = { (h: Int, w: Int) in x[(p * height + h) * width + w] }
                    y.append(larger(larger(at(2 * oh, 2 * ow), at(2 * oh, 2 * ow + 1)), larger(at(2 * oh + 1, 2 * ow), at(2 * oh + 1, 2 * ow + 1))))
                }
            }
        }
        return y
    }

    /// Bit patterns, so NaNs and signed zeros compare exactly.
    static func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    @Test(arguments: [(7, 9), (28, 28), (14, 14), (2, 2), (5, 66), (3, 33)])
    func maxPool2x2MatchesTheDefinitionOnEveryPath(height: Int, width: Int) throws {
        let planes = 3
        var values = GraphBuilding.randomFloats(planes * height * width, seed: UInt64(height * 100 + width))
        // NaNs and signed zeros in both positions of a pair exercise the comparison order.
        values[0] = .nan
        if values.count > 5 { values[3] = -0.0; values[2] = 0.0 }
        if values.count > width + 1 { values[width + 1] = .nan }
        let x = Tensor(shape: [1, planes, height, width], floats: values)
        let expected = Self.reference(values, planes: planes, height: height, width: width)
        let attributes: [String: AttributeValue] = ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]
        for level in [-1, Int(STOKE_CPU_PORTABLE.rawValue)] {
            stoke_cpu_force(Int32(level))
            defer { stoke_cpu_force(-1) }
            let y = try GraphBuilding.runNode("MaxPool", [x], attributes: attributes)
            #expect(y.shape == [1, planes, height / 2, width / 2])
            #expect(Self.bits(y.floats) == Self.bits(expected), "level \(level), \(height)x\(width)")
        }
    }

    static func convPoolGraph(activation: String?) -> (Graph, Tensor) {
        var nodes = [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                          attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])]
        var last = "c"
        if let activation {
            nodes.append(Node(name: "act", opType: activation, inputs: ["c"], outputs: ["a"], attributes: activation == "LeakyRelu" ? ["alpha": .float(0.1)] : [:]))
            last = "a"
        }
        nodes.append(Node(name: "pool", opType: "MaxPool", inputs: [last], outputs: ["y"],
                          attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]))
        let initializers = ["w": GraphBuilding.random([6, 3, 3, 3], seed: 5), "b": GraphBuilding.random([6], seed: 6)]
        return (GraphBuilding.graph(nodes, inputs: ["x"], outputs: ["y"], initializers: initializers),
                GraphBuilding.random([5, 3, 11, 10], seed: 7))
    }

    @Test(arguments: [nil, "Relu", "LeakyRelu"] as [String?])
    func convActivationPoolBecomesOneNodeWithTheSameResults(activation: String?) throws {
        let (graph, x) = Self.convPoolGraph(activation: activation)
        var unfusedOptions = OptimizationOptions()
        unfusedOptions.fusePooling = false
        let fused = try Model(graph: graph, opset: 17)
        #expect(fused.graph.nodes.map(\.opType) == ["Conv"])
        let plain = try Model(graph: graph, opset: 17, options: unfusedOptions)
        #expect(plain.graph.nodes.map(\.opType).last == "MaxPool")
        let expected = try #require(try Session(model: plain).run(["x": x])["y"])
        #expect(expected.shape == [5, 6, 5, 5])
        for threads in [1, 2] {
            let y = try #require(try Session(model: fused, threads: threads).run(["x": x])["y"])
            GraphBuilding.assertClose(y, expected.floats, shape: expected.shape, tolerance: 1e-6)
        }
        // The fused graph exports as standard ONNX (Conv, activation, MaxPool) and reloads to the same results.
        let reloaded = try Model.load(onnxBytes: ONNXExport.serialize(graph: fused.graph, opset: 17), options: .none)
        #expect(reloaded.graph.nodes.map(\.opType) == ["Conv"] + (activation.map { [$0] } ?? []) + ["MaxPool"])
        let again = try #require(try Session(model: reloaded).run(["x": x])["y"])
        GraphBuilding.assertClose(again, expected.floats, shape: expected.shape, tolerance: 1e-6)
        // MACs still count the full-resolution convolution (10x11 input, pad 1: 11x10 outputs, 5x5 after pooling).
        let macs = try Session(model: fused).costs(inputShapes: ["x": [5, 3, 11, 10]]).reduce(0) { $0 + $1.macs }
        #expect(macs == 5 * 6 * 5 * 5 * 4 * 27)
    }

    @Test func poolsThatDoNotFitStayUnfused() throws {
        // Overlapping windows (stride 1) and a second reader of the conv output both prevent fusion.
        let conv = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: ["kernel_shape": .ints([3, 3])])
        let initializers = ["w": GraphBuilding.random([2, 1, 3, 3], seed: 1)]
        let overlapping = Node(name: "pool", opType: "MaxPool", inputs: ["c"], outputs: ["y"],
                               attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([1, 1])])
        var model = try Model(graph: GraphBuilding.graph([conv, overlapping], inputs: ["x"], outputs: ["y"], initializers: initializers), opset: 17)
        #expect(model.graph.nodes.map(\.opType) == ["Conv", "MaxPool"])
        let pool = Node(name: "pool", opType: "MaxPool", inputs: ["c"], outputs: ["y"],
                        attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        model = try Model(graph: GraphBuilding.graph([conv, pool], inputs: ["x"], outputs: ["y", "c"], initializers: initializers), opset: 17)
        #expect(model.graph.nodes.map(\.opType) == ["Conv", "MaxPool"])
    }
}
