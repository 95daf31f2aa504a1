import Testing
@testable import StokeEngine

/// Small helpers to build and run graphs in tests without any files.
enum GraphBuilding {
    static func graph(_ nodes: [Node], inputs: [String], outputs: [String], initializers: [String: Tensor] = [:]) -> Graph {
        Graph(name: "test", nodes: nodes, initializers: initializers,
              inputs: inputs.map { ValueInfo(name: $0, onnxElementType: 0, shape: nil) }, outputs: outputs.map { ValueInfo(name: $0, onnxElementType: 0, shape: nil) })
    }

    /// Runs `nodes` on `feeds` and returns the named outputs.
    static func run(_ nodes: [Node], feeds: [String: Tensor], outputs: [String], initializers: [String: Tensor] = [:],
                    opset: Int64 = 17, options: OptimizationOptions = .init()) throws -> [String: Tensor] {
        let model = try Model(graph: graph(nodes, inputs: feeds.keys.sorted(), outputs: outputs, initializers: initializers),
                              opset: opset, options: options)
        return try Session(model: model).run(feeds)
    }

    /// Runs a single node with inputs named x0, x1, ... and one output y.
    static func runNode(_ op: String, _ inputs: [Tensor?], attributes: [String: AttributeValue] = [:], opset: Int64 = 17,
                        constantInputs: Set<Int> = []) throws -> Tensor {
        var feeds: [String: Tensor] = [:], initializers: [String: Tensor] = [:]
        var names: [String] = []
        for (index, tensor) in inputs.enumerated() {
            guard let tensor else { names.append(""); continue }
            names.append("x\(index)")
            if constantInputs.contains(index) { initializers["x\(index)"] = tensor } else { feeds["x\(index)"] = tensor }
        }
        let node = Node(name: "n", opType: op, inputs: names, outputs: ["y"], attributes: attributes)
        let model = try Model(graph: graph([node], inputs: feeds.keys.sorted(), outputs: ["y"], initializers: initializers),
                              opset: opset, options: .none)
        return try #require(try Session(model: model).run(feeds)["y"])
    }

    /// Deterministic pseudo-random floats in [-1, 1).
    static func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1 + 1e-7 * 0
        }
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        Tensor(shape: shape, floats: randomFloats(shape.reduce(1, *), seed: seed))
    }

    static func assertClose(_ actual: Tensor, _ expected: [Float], shape: [Int], tolerance: Float = 1e-4,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.shape == shape, sourceLocation: sourceLocation)
        let values = actual.floats
        guard values.count == expected.count else {
            Issue.record("count \(values.count) != \(expected.count)", sourceLocation: sourceLocation)
            return
        }
        for index in values.indices where !(abs(values[index] - expected[index]) <= tolerance * max(1, abs(expected[index]))) {
            Issue.record("element \(index): \(values[index]) != \(expected[index])", sourceLocation: sourceLocation)
            return
        }
    }
}
