import Foundation
import Testing
@testable import StokeEngine

@Suite("ONNX protobuf reader")
struct ProtobufTests {
    /// A small valid model: y = relu(x @ W^T + b), with a symbolic batch dimension.
    static func sampleModelBytes() -> [UInt8] {
        let graph = Graph(
            name: "sample",
            nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "W", "b"], outputs: ["h"], attributes: ["transB": .int(1)]),
                    Node(name: "act", opType: "Relu", inputs: ["h"], outputs: ["y"])],
            initializers: ["W": Tensor(shape: [3, 4], floats: (0..<12).map { Float($0) / 10 - 0.5 }),
                           "b": Tensor(shape: [3], floats: [0.1, -0.2, 0.3])],
            inputs: [ValueInfo(name: "x", shape: [.symbolic("batch"), .fixed(4)])],
            outputs: [ValueInfo(name: "y", shape: [.symbolic("batch"), .fixed(3)])])
        return ONNXExport.serialize(graph: graph, opset: 17)
    }

    static func loadError(_ bytes: [UInt8]) -> EngineError? {
        do {
            _ = try Model.load(onnxBytes: bytes)
            return nil
        } catch {
            return error
        }
    }

    static func tensorError(_ bytes: [UInt8]) -> EngineError? {
        do {
            _ = try Tensor.decodeONNX(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test func roundTripRunsAndComputes() throws {
        let model = try Model.load(onnxBytes: Self.sampleModelBytes())
        #expect(model.inputs.first?.shape == [.symbolic("batch"), .fixed(4)])
        #expect(model.graph.nodes.count == 1, "Relu should be fused into Gemm")
        let x = Tensor(shape: [2, 4], floats: [1, 2, 3, 4, -1, -2, -3, -4])
        let y = try #require(try Session(model: model).run(["x": x])["y"])
        let w = (0..<12).map { Float($0) / 10 - 0.5 }, b: [Float] = [0.1, -0.2, 0.3]
        var expected: [Float] = []
        for row in 0..<2 {
            for j in 0..<3 {
                var sum = b[j]
                for k in 0..<4 { sum += x.floats[row * 4 + k] * w[j * 4 + k] }
                expected.append(max(0, sum))
            }
        }
        GraphBuilding.assertClose(y, expected, shape: [2, 3])
    }

    @Test func everyTruncationIsATypedError() {
        let bytes = Self.sampleModelBytes()
        for length in 0..<bytes.count {
            // Some prefixes end on a field boundary and still decode; none may crash.
            if let error = Self.loadError(Array(bytes[..<length])) {
                switch error {
                case .malformedProtobuf, .invalidModel: break
                default: Issue.record("prefix \(length): unexpected \(error)")
                }
            }
        }
    }

    @Test func truncatedLengthNamesTheField() throws {
        let bytes = Self.sampleModelBytes()
        let error = try #require(Self.loadError(Array(bytes[..<(bytes.count / 2)])))
        guard case let .malformedProtobuf(field, _, reason) = error else { Issue.record("got \(error)"); return }
        #expect(field.hasPrefix("ModelProto.graph"), "field was \(field)")
        #expect(reason.contains("exceeds") || reason.contains("truncated"), "reason was \(reason)")
    }

    @Test func wrongWireTypeNamesTheField() throws {
        var writer = ProtobufWriter()
        writer.int(7, 5)  // graph is a message, not a varint
        let error = try #require(Self.loadError(writer.bytes))
        #expect(error == .malformedProtobuf(field: "ModelProto.graph", offset: 1, reason: "wire type 0, expected 2"))
    }

    @Test func nestedWrongWireTypeNamesThePath() throws {
        var writer = ProtobufWriter()
        writer.message(7) { graph in
            graph.message(1) { node in
                node.string(4, "Relu")
                node.message(5) { attribute in
                    attribute.string(1, "alpha")
                    attribute.int(2, 3)  // f is fixed32
                }
            }
        }
        let error = try #require(Self.loadError(writer.bytes))
        guard case let .malformedProtobuf(field, _, _) = error else { Issue.record("got \(error)"); return }
        #expect(field == "ModelProto.graph.node[0].attribute[0].f")
    }

    @Test func hugeLengthIsRejected() throws {
        var writer = ProtobufWriter()
        writer.key(7, .lengthDelimited)
        writer.varint(1 << 60)
        let error = try #require(Self.loadError(writer.bytes + [0, 0, 0]))
        guard case let .malformedProtobuf(field, _, reason) = error else { Issue.record("got \(error)"); return }
        #expect(field == "ModelProto.graph")
        #expect(reason.contains("exceeds"))
    }

    @Test func overlongVarintIsRejected() throws {
        let error = try #require(Self.loadError([0x08] + [UInt8](repeating: 0xFF, count: 11)))
        guard case let .malformedProtobuf(field, _, reason) = error else { Issue.record("got \(error)"); return }
        #expect(field == "ModelProto.ir_version")
        #expect(reason.contains("varint"))
    }

    @Test func groupsAndBadWireTypesAreRejected() throws {
        #expect(Self.loadError([0x0B]) != nil)  // field 1, start group
        #expect(Self.loadError([0x0E]) != nil)  // field 1, wire type 6
        #expect(Self.loadError([0x00]) != nil)  // field 0
    }

    @Test func rawDataSizeMismatchNamesTheTensor() throws {
        var writer = ProtobufWriter()
        writer.packedInts(1, [2, 2])
        writer.int(2, 1)
        writer.string(8, "weights")
        writer.data(9, [UInt8](repeating: 0, count: 12))
        let error = try #require(Self.tensorError(writer.bytes))
        guard case let .malformedProtobuf(field, _, reason) = error else { Issue.record("got \(error)"); return }
        #expect(field == "TensorProto.raw_data")
        #expect(reason.contains("weights"))
    }

    @Test func externalDataIsRefusedClearly() throws {
        var writer = ProtobufWriter()
        writer.packedInts(1, [4])
        writer.int(2, 1)
        writer.string(8, "big_weight")
        writer.message(13) { entry in entry.string(1, "location"); entry.string(2, "weights.bin") }
        writer.int(14, 1)
        do {
            _ = try Tensor.decodeONNX(writer.bytes)
            Issue.record("external data was accepted")
        } catch {
            #expect(error == .externalDataUnsupported(tensor: "big_weight"))
            #expect(error.description.contains("external file"))
        }
    }

    @Test func typedFieldsDecode() throws {
        var writer = ProtobufWriter()
        writer.packedInts(1, [3])
        writer.int(2, 6)  // int32 in int32_data, with a negative value sign-extended to 10 bytes
        writer.packedInts(5, [1, -2, 3])
        let ints = try Tensor.decodeONNX(writer.bytes).tensor
        #expect(ints.int64s == [1, -2, 3])

        var floats = ProtobufWriter()
        floats.int(1, 2)  // unpacked dims
        floats.int(2, 1)
        floats.float(4, 1.5)  // unpacked float_data
        floats.float(4, -2)
        #expect(try Tensor.decodeONNX(floats.bytes).tensor.floats == [1.5, -2])

        var int64s = ProtobufWriter()
        int64s.packedInts(1, [2])
        int64s.int(2, 7)
        int64s.packedInts(7, [Int64.max, -5])
        #expect(try Tensor.decodeONNX(int64s.bytes).tensor.int64s == [Int64.max, -5])
    }

    @Test func unsupportedOperatorIsNamedAtLoad() throws {
        let graph = GraphBuilding.graph([Node(name: "mystery_node", opType: "NonMaxSuppression", inputs: ["x"], outputs: ["y"])],
                                        inputs: ["x"], outputs: ["y"])
        let error = try #require(Self.loadError(ONNXExport.serialize(graph: graph, opset: 17)))
        #expect(error == .unsupportedOperator(op: "NonMaxSuppression", domain: "", node: "mystery_node"))
    }

    @Test func corruptedBytesNeverCrash() {
        let original = Self.sampleModelBytes()
        var state: UInt64 = 0x5EED
        var errors = 0
        for _ in 0..<400 {
            var bytes = original
            for _ in 0..<3 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let position = Int(state >> 33) % bytes.count
                bytes[position] = UInt8(truncatingIfNeeded: state >> 20)
            }
            do {
                let model = try Model.load(onnxBytes: bytes)
                // Whatever decoded must also plan and run or fail with a typed error.
                _ = try? Session(model: model).run(["x": Tensor(shape: [1, 4], floats: [1, 2, 3, 4])])
            } catch {
                errors += 1
            }
        }
        #expect(errors > 0)
    }

    @Test func corruptedConvNetNeverCrashes() {
        let model = try? Model(graph: PlannerTests.convNet(), opset: 17, options: .none)
        guard let model else { Issue.record("conv net did not build"); return }
        let original = ONNXExport.serialize(graph: model.graph, opset: 17)
        var state: UInt64 = 0xC0FFEE
        let x = GraphBuilding.random([2, 2, 5, 5], seed: 1)
        // STOKE_FUZZ_ROUNDS raises the count for a longer local run.
        let rounds = Int(ProcessInfo.processInfo.environment["STOKE_FUZZ_ROUNDS"] ?? "") ?? 300
        for round in 0..<rounds {
            var bytes = original
            for _ in 0..<(1 + round % 4) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let position = Int(state >> 33) % bytes.count
                bytes[position] = UInt8(truncatingIfNeeded: state >> 20)
            }
            if let loaded = try? Model.load(onnxBytes: bytes) {
                _ = try? Session(model: loaded).run(["x": x])
            }
        }
    }

    @Test func hostileShapesAreErrorsNotCrashes() throws {
        let x = Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        #expect(throws: EngineError.self) {
            try GraphBuilding.runNode("Reshape", [x, Tensor(shape: [3], int64s: [1 << 40, 1 << 40, -1])], constantInputs: [1])
        }
        #expect(throws: EngineError.self) {
            try GraphBuilding.runNode("ConstantOfShape", [Tensor(shape: [3], int64s: [1 << 30, 1 << 30, 1 << 30])], constantInputs: [0])
        }
        #expect(throws: EngineError.self) {
            try GraphBuilding.runNode("Expand", [x, Tensor(shape: [3], int64s: [Int64.max, 2, 3])], constantInputs: [1])
        }
        #expect(throws: EngineError.self) {
            try GraphBuilding.runNode("Conv", [GraphBuilding.random([1, 1, 4, 4], seed: 1), GraphBuilding.random([1, 1, 2, 2], seed: 2)],
                                      attributes: ["pads": .ints([Int64.max, 0, 0, 0])])
        }
        #expect(throws: EngineError.self) {
            try GraphBuilding.runNode("Pad", [x, Tensor(shape: [4], int64s: [0, Int64.max, 0, 0])], constantInputs: [1])
        }
        let sliced = try GraphBuilding.runNode("Slice", [x, Tensor(shape: [1], int64s: [0]), Tensor(shape: [1], int64s: [Int64.max]),
                                                         Tensor(shape: [1], int64s: [1]), Tensor(shape: [1], int64s: [Int64.max])],
                                               constantInputs: [1, 2, 3, 4])
        #expect(sliced.shape == [2, 1])
    }
}
