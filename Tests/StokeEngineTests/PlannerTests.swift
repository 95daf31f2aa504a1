import Testing
@testable import StokeEngine

@Suite("Passes, planner and session")
struct PlannerTests {
    /// conv -> BatchNorm -> Relu -> flatten (dynamic, via Shape) -> Gemm -> Relu -> Gemm, plus a dead branch.
    static func convNet() -> Graph {
        let initializers: [String: Tensor] = [
            "w1": GraphBuilding.random([4, 2, 3, 3], seed: 11), "b1": GraphBuilding.random([4], seed: 12),
            "bn.scale": Tensor(shape: [4], floats: [1, 0.5, 2, 1.5]), "bn.bias": Tensor(shape: [4], floats: [0.1, 0, -0.1, 0.2]),
            "bn.mean": Tensor(shape: [4], floats: [0, 0.1, -0.1, 0.2]), "bn.var": Tensor(shape: [4], floats: [1, 2, 0.5, 1]),
            "w2": GraphBuilding.random([6, 4 * 5 * 5], seed: 13), "b2": GraphBuilding.random([6], seed: 14),
            "w3": GraphBuilding.random([3, 6], seed: 15),
            "zero": Tensor(shape: [], int64s: [0]), "minus1": Tensor(shape: [1], int64s: [-1]), "axes": Tensor(shape: [1], int64s: [0]),
            "two": Tensor(shape: [], floats: [2]),
        ]
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], outputs: ["n"]),
            Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["r"]),
            Node(name: "shape", opType: "Shape", inputs: ["r"], outputs: ["s"]),
            Node(name: "gather", opType: "Gather", inputs: ["s", "zero"], outputs: ["batch"]),
            Node(name: "unsqueeze", opType: "Unsqueeze", inputs: ["batch", "axes"], outputs: ["batch1"]),
            Node(name: "concat", opType: "Concat", inputs: ["batch1", "minus1"], outputs: ["newshape"], attributes: ["axis": .int(0)]),
            Node(name: "reshape", opType: "Reshape", inputs: ["r", "newshape"], outputs: ["flat"]),
            Node(name: "fc1", opType: "Gemm", inputs: ["flat", "w2", "b2"], outputs: ["h"], attributes: ["transB": .int(1)]),
            Node(name: "relu2", opType: "Relu", inputs: ["h"], outputs: ["hr"]),
            Node(name: "fc2", opType: "Gemm", inputs: ["hr", "w3"], outputs: ["y"], attributes: ["transB": .int(1)]),
            Node(name: "dead", opType: "Mul", inputs: ["x", "two"], outputs: ["unused"]),
            Node(name: "folded", opType: "Mul", inputs: ["two", "two"], outputs: ["four"]),
        ]
        return Graph(name: "convnet", nodes: nodes.reversed(), initializers: initializers,
                     inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(2), .fixed(5), .fixed(5)])],
                     outputs: [ValueInfo(name: "y", shape: [.symbolic("N"), .fixed(3)])])
    }

    @Test func passesRewriteTheGraphAndKeepItsResults() throws {
        let optimized = try Model(graph: Self.convNet(), opset: 17)
        let plain = try Model(graph: Self.convNet(), opset: 17, options: .none)
        let ops = optimized.graph.nodes.map(\.opType)
        #expect(!ops.contains("BatchNormalization"), "BatchNorm folded into Conv")
        #expect(!ops.contains("Relu"), "Relu fused into Conv and Gemm")
        #expect(!ops.contains("Mul"), "dead and constant nodes removed")
        #expect(optimized.graph.nodes.first { $0.opType == "Conv" }?.attributes[fusedActivationKey] != nil)
        #expect(optimized.graph.initializers["two"] == nil, "unused initializers dropped")
        #expect(plain.graph.nodes.count == 13)
        for batch in [1, 3, 8] {
            let x = GraphBuilding.random([batch, 2, 5, 5], seed: UInt64(batch))
            let fast = try #require(try Session(model: optimized).run(["x": x])["y"])
            let slow = try #require(try Session(model: plain).run(["x": x])["y"])
            #expect(fast.shape == [batch, 3])
            GraphBuilding.assertClose(fast, slow.floats, shape: [batch, 3], tolerance: 1e-4)
        }
    }

    @Test func arenaReusesBuffersOfDeadValues() throws {
        // A chain of 12 elementwise ops: at most two intermediates are alive at any time.
        var nodes: [Node] = []
        var previous = "x"
        for index in 0..<12 {
            nodes.append(Node(name: "op\(index)", opType: index % 2 == 0 ? "Sigmoid" : "Tanh", inputs: [previous], outputs: ["v\(index)"]))
            previous = "v\(index)"
        }
        let model = try Model(graph: GraphBuilding.graph(nodes, inputs: ["x"], outputs: [previous]), opset: 17)
        let session = Session(model: model)
        let memory = try session.memoryPlan(inputShapes: ["x": [64, 64]])
        #expect(memory.unsharedBytes == 12 * 64 * 64 * 4)
        #expect(memory.arenaBytes <= 2 * 64 * 64 * 4)
        let x = GraphBuilding.random([64, 64], seed: 3)
        let first = try #require(try session.run(["x": x])[previous])
        let second = try #require(try session.run(["x": x])[previous])
        #expect(first.floats == second.floats, "reusing the plan gives the same results")
    }

    @Test func declaredShapesAreEnforcedAndSymbolsBound() throws {
        let model = try Model(graph: Self.convNet(), opset: 17)
        let session = Session(model: model)
        do {
            _ = try session.run(["x": GraphBuilding.random([1, 3, 5, 5], seed: 1)])
            Issue.record("wrong channel count accepted")
        } catch {
            #expect("\(error)".contains("axis 1"))
        }
        #expect(throws: EngineError.self) { try session.run([:]) }
        do {
            _ = try session.run(["x": Tensor(shape: [1, 2, 5, 5], int64s: [Int64](repeating: 1, count: 50))])
            Issue.record("int64 data accepted for a float input")
        } catch {
            #expect("\(error)".contains("float32"))
        }
        #expect(throws: EngineError.self) { try session.run(["x": GraphBuilding.random([1, 2, 5, 5], seed: 1), "other": GraphBuilding.random([1], seed: 1)]) }
    }

    @Test func borrowedSpanInputAndOutputViews() throws {
        let model = try Model(graph: Self.convNet(), opset: 17)
        let session = Session(model: model, threads: 2)
        #expect(session.threads == 2)
        #expect(Session.openBLASThreads >= 1)
        let x = GraphBuilding.random([2, 2, 5, 5], seed: 21)
        let expected = try #require(try session.run(["x": x])["y"]).floats
        let values = x.floats
        let viewed = try session.run(input: "x", shape: [2, 2, 5, 5], data: values.span) { outputs in
            #expect(outputs.names == ["y"])
            #expect(outputs.shape("y") == [2, 3])
            return try outputs.withFloats("y") { span in (0..<span.count).map { span[$0] } }
        }
        #expect(viewed == expected)
    }

    @Test func profileReportsEveryStep() throws {
        let model = try Model(graph: Self.convNet(), opset: 17)
        let timings = try Session(model: model).profile(["x": GraphBuilding.random([4, 2, 5, 5], seed: 2)], repeats: 2)
        #expect(timings.map(\.opType).contains("Conv"))
        #expect(timings.allSatisfy { $0.seconds >= 0 })
        // conv: 4 images x 4 filters x 25 pixels x (2 channels x 9 taps); fc1: 4 x 6 x 100; fc2: 4 x 3 x 6.
        let costs = try Session(model: model).costs(inputShapes: ["x": [4, 2, 5, 5]])
        #expect(costs.first { $0.opType == "Conv" }?.macs == 4 * 4 * 25 * 18)
        #expect(costs.filter { $0.opType == "Gemm" }.map(\.macs) == [4 * 6 * 100, 4 * 3 * 6])
        #expect(timings.first { $0.opType == "Conv" }?.macs == 2 * 4 * 4 * 25 * 18)
        let perOperator = NodeTiming.byOperator(timings)
        #expect(perOperator.first { $0.opType == "Gemm" }?.macs == 2 * (4 * 6 * 100 + 4 * 3 * 6))
        #expect(Set(perOperator.map(\.opType)).count == perOperator.count)
    }

    @Test func exportedGraphReloadsWithTheSameResults() throws {
        let model = try Model(graph: Self.convNet(), opset: 17)
        // Exporting the optimized graph writes fused activations back as standard Relu nodes.
        let bytes = ONNXExport.serialize(graph: model.graph, opset: model.opset)
        let reloaded = try Model.load(onnxBytes: bytes, options: .none)
        #expect(reloaded.graph.nodes.filter { $0.opType == "Relu" }.count == 2)
        let x = GraphBuilding.random([2, 2, 5, 5], seed: 5)
        let a = try #require(try Session(model: model).run(["x": x])["y"])
        let b = try #require(try Session(model: reloaded).run(["x": x])["y"])
        GraphBuilding.assertClose(b, a.floats, shape: [2, 3], tolerance: 1e-6)
    }
}
