import Foundation
import Testing
@testable import StokeEngine

/// Constant weights take the prepacked path (packed at plan time); the same weights fed as inputs
/// take the run-time path. Both must agree on every shape class: edges of the 8x32 tile, K split
/// into several blocks, bias kinds, ReLU, row and column thread splits.
@Suite("Prepacked constant weights")
struct PrepackedGemmTests {
    static func gemmNodes(bias: Bool, relu: Bool, transB: Bool) -> [Node] {
        var nodes = [Node(name: "gemm", opType: "Gemm", inputs: ["x", "w"] + (bias ? ["b"] : []), outputs: [relu ? "g" : "y"],
                          attributes: ["transB": .int(transB ? 1 : 0)])]
        if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: ["g"], outputs: ["y"])) }
        return nodes
    }

    @Test(arguments: [(1, 1, 1), (7, 33, 5), (37, 53, 71), (256, 10, 784), (130, 65, 257), (256, 512, 300), (3, 300, 513)])
    func gemmWithConstantWeightsMatchesFedWeights(shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        for (bias, relu, transB) in [(true, true, true), (false, false, false), (true, false, false)] {
            let x = GraphBuilding.random([m, k], seed: 1)
            let w = GraphBuilding.random(transB ? [n, k] : [k, n], seed: 2)
            let b = GraphBuilding.random([n], seed: 3)
            let nodes = Self.gemmNodes(bias: bias, relu: relu, transB: transB)
            let feedsOnly = try GraphBuilding.run(nodes, feeds: ["x": x, "w": w, "b": b].filter { bias || $0.key != "b" }, outputs: ["y"])
            let expected = try #require(feedsOnly["y"])
            for threads in [1, 2] {
                let graph = GraphBuilding.graph(nodes, inputs: ["x"], outputs: ["y"], initializers: bias ? ["w": w, "b": b] : ["w": w])
                let y = try #require(try Session(model: Model(graph: graph, opset: 17), threads: threads).run(["x": x])["y"])
                GraphBuilding.assertClose(y, expected.floats, shape: [m, n], tolerance: 1e-4)
            }
        }
    }

    @Test func matMulWithConstantWeightsMatchesFedWeights() throws {
        let x = GraphBuilding.random([2, 45, 70], seed: 4), w = GraphBuilding.random([70, 100], seed: 5)
        let node = Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])
        let expected = try #require(try GraphBuilding.run([node], feeds: ["x": x, "w": w], outputs: ["y"])["y"])
        for threads in [1, 2] {
            let graph = GraphBuilding.graph([node], inputs: ["x"], outputs: ["y"], initializers: ["w": w])
            let y = try #require(try Session(model: Model(graph: graph, opset: 17), threads: threads).run(["x": x])["y"])
            GraphBuilding.assertClose(y, expected.floats, shape: [2, 45, 100], tolerance: 1e-4)
        }
    }

    @Test(arguments: [(3, 16, 3, 1), (16, 32, 3, 1), (8, 12, 1, 1), (8, 12, 3, 2), (20, 9, 5, 1)])
    func convWithConstantFiltersMatchesFedFilters(shape: (Int, Int, Int, Int)) throws {
        let (channels, filters, kernel, group) = shape
        let x = GraphBuilding.random([5, channels, 13, 14], seed: 6)
        let w = GraphBuilding.random([filters, channels / group, kernel, kernel], seed: 7), b = GraphBuilding.random([filters], seed: 8)
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                        attributes: ["kernel_shape": .ints([Int64(kernel), Int64(kernel)]), "pads": .ints(Array(repeating: Int64(kernel / 2), count: 4)),
                                     "group": .int(Int64(group))])
        let expected = try #require(try GraphBuilding.run([node], feeds: ["x": x, "w": w, "b": b], outputs: ["y"])["y"])
        for threads in [1, 2] {
            let graph = GraphBuilding.graph([node], inputs: ["x"], outputs: ["y"], initializers: ["w": w, "b": b])
            let y = try #require(try Session(model: Model(graph: graph, opset: 17), threads: threads).run(["x": x])["y"])
            GraphBuilding.assertClose(y, expected.floats, shape: expected.shape, tolerance: 1e-4)
        }
    }
}
