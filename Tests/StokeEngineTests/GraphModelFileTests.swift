import Foundation
import StokeStore
import Testing
@testable import StokeEngine

@Suite("HDF5 graph model files")
struct GraphModelFileTests {
    /// A small MLP graph (Gemm → Relu → MatMul + Add) built by hand, so the file holds what ONNX
    /// models have and native models do not: MatMul, a named Add, symbolic batch dimension.
    static func handMLP(inputs: Int = 12, hidden: Int = 16) throws -> Model {
        let graph = Graph(name: "hand", nodes: [
            Node(name: "fc1", opType: "Gemm", inputs: ["x", "w1", "b1"], outputs: ["h"], attributes: ["transB": .int(1)]),
            Node(name: "act", opType: "Relu", inputs: ["h"], outputs: ["r"]),
            Node(name: "fc2", opType: "MatMul", inputs: ["r", "w2"], outputs: ["m"]),
            Node(name: "bias2", opType: "Add", inputs: ["m", "b2"], outputs: ["y"]),
            Node(name: "clip", opType: "LeakyRelu", inputs: ["y"], outputs: ["z"], attributes: ["alpha": .float(0.1)]),
        ], initializers: [
            "w1": GraphBuilding.random([hidden, inputs], seed: 1), "b1": GraphBuilding.random([hidden], seed: 2),
            "w2": GraphBuilding.random([hidden, 5], seed: 3), "b2": GraphBuilding.random([5], seed: 4),
        ], inputs: [ValueInfo(name: "x", shape: [.symbolic("batch"), .fixed(inputs)])],
           outputs: [ValueInfo(name: "z", shape: [.symbolic("batch"), .fixed(5)])])
        return try Model(graph: graph, opset: 17)
    }

    static func outputs(_ model: Model, _ input: Tensor) throws -> [Float] {
        let result = try Session(model: model).run([model.inputs[0].name: input])
        return try #require(result[model.outputs[0].name]).floats
    }

    @Test func fp32ModelsRoundTripWithEqualOutputs() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cnn = try NativeModelTests.smallCNN().model()
        for (name, model, input) in [("mlp", try Self.handMLP(), GraphBuilding.random([3, 12], seed: 9)),
                                     ("cnn", cnn, GraphBuilding.random([2, 1, 12, 12], seed: 10))] {
            let path = directory.appendingPathComponent("\(name).h5").path
            try model.save(to: path, metadata: ["dataset": "test"])
            let (loaded, metadata) = try Model.loadWithMetadata(hdf5: path)
            #expect(metadata["dataset"] == "test" && metadata["stoke_version"] != nil)
            #expect(try Self.outputs(loaded, input) == Self.outputs(model, input), "\(name)")
            #expect(loaded.operatorCounts.map(\.op) == model.operatorCounts.map(\.op), "the same passes ran again")
            #expect(loaded.inputs == model.inputs && loaded.outputs == model.outputs)
            #expect(try Self.outputs(Model.load(path: path), input) == Self.outputs(model, input), "Model.load opens graph files")
            // The file is plain HDF5: weights by initializer name, the standard graph without fused attributes.
            let (arrays, attributes) = try ArrayFile.read(path)
            #expect(!arrays.isEmpty && arrays.allSatisfy { $0.dtype == .f32 || $0.dtype == .i64 })
            #expect(attributes["stoke_model"]?.contains("stoke.") == false, "internal attributes are not saved")
        }
        // Sequential model files still load through the same entry point.
        let sequential = directory.appendingPathComponent("sequential.h5").path
        try NativeModelTests.smallCNN().save(to: sequential)
        let input = GraphBuilding.random([2, 1, 12, 12], seed: 10)
        #expect(try Self.outputs(Model.load(path: sequential), input) == Self.outputs(cnn, input))
    }

    @Test func dynamicQuantizedModelSavesInt8WeightsAndReloadsQuantized() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fp32 = try Self.handMLP(inputs: 96, hidden: 64)
        let dynamic = try fp32.quantizedDynamic()
        let path = directory.appendingPathComponent("dynamic.h5").path
        try dynamic.save(to: path, metadata: [:])
        let loaded = try Model.load(path: path)
        #expect(loaded.quantizedNodeCount == dynamic.quantizedNodeCount && dynamic.quantizedNodeCount == 2)
        let input = GraphBuilding.random([7, 96], seed: 11)
        // The int8 weights are the same; the per-channel scales recomputed from the dequantized
        // weights may differ from the first ones in the last bit, so outputs agree to ~1e-6 relative.
        GraphBuilding.assertClose(try Session(model: loaded).run(["x": input])["z"]!, try Self.outputs(dynamic, input), shape: [7, 5], tolerance: 1e-5)
        let (arrays, attributes) = try ArrayFile.read(path)
        #expect(arrays.first { $0.name == "w1" }?.dtype == .i8 && arrays.first { $0.name == "w2" }?.dtype == .i8)
        #expect(arrays.first { $0.name == "w1.scale" }?.shape == [64], "Gemm transB: one scale per row")
        #expect(arrays.first { $0.name == "w2.scale" }?.shape == [5], "MatMul: one scale per column")
        #expect(attributes["stoke_model"]?.contains("\"quantization\":\"dynamic\"") == true)
        #expect(attributes["stoke_model"]?.contains(dynamicQuantizedLinear) == false, "the internal operator is not saved")
        #expect(attributes["stoke_model"]?.contains("\"weight_range\":\"s7\"") == true)
        #expect(attributes["stoke_model"]?.contains(WeightRange.attribute) == false, "the range is a file field, not a node attribute")
        #expect(loaded.weightRange == .s7)
        #expect(arrays.first { $0.name == "w1" }?.bytes.allSatisfy { abs(Int(Int8(bitPattern: $0))) <= 63 } == true, "s7 weights")
        let fp32Path = directory.appendingPathComponent("fp32.h5").path
        try fp32.save(to: fp32Path, metadata: [:])
        let size = { (p: String) in try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int ?? 0 }
        #expect(try size(path) < size(fp32Path), "int8 weights make the file smaller")
    }

    /// A QDQ graph as ONNX Runtime's quantize_static writes it: the input quantized to u8, the
    /// weights stored as s8 with a per-channel scale, DequantizeLinear in front of an FP32 MatMul.
    static func qdqGraph() throws -> Model {
        let weights = (0..<(12 * 4)).map { Int8(truncatingIfNeeded: ($0 * 37) % 255 - 127) }
        let graph = Graph(name: "qdq", nodes: [
            Node(name: "q_x", opType: "QuantizeLinear", inputs: ["x", "x_scale", "x_zero"], outputs: ["x_q"]),
            Node(name: "dq_x", opType: "DequantizeLinear", inputs: ["x_q", "x_scale", "x_zero"], outputs: ["x_dq"]),
            Node(name: "dq_w", opType: "DequantizeLinear", inputs: ["w_q", "w_scale", "w_zero"], outputs: ["w"], attributes: ["axis": .int(1)]),
            Node(name: "fc", opType: "MatMul", inputs: ["x_dq", "w"], outputs: ["y"]),
        ], initializers: [
            "x_scale": Tensor(shape: [], floats: [0.01]), "x_zero": Tensor(shape: [], uint8s: [128]),
            "w_q": Tensor(shape: [12, 4], int8s: weights), "w_scale": Tensor(shape: [4], floats: [0.01, 0.02, 0.005, 0.03]),
            "w_zero": Tensor(shape: [4], int8s: [0, 0, 0, 0]),
        ], inputs: [ValueInfo(name: "x", shape: [.symbolic("batch"), .fixed(12)])],
           outputs: [ValueInfo(name: "y", shape: [.symbolic("batch"), .fixed(4)])])
        // The file keeps the graph as given (`sourceGraph`), before folding DequantizeLinear(w_q) or fusing.
        return try Model(graph: graph, opset: 13)
    }

    @Test func qdqModelKeepsInt8AndUint8Datasets() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Self.qdqGraph()
        let path = directory.appendingPathComponent("qdq.h5").path
        try model.save(to: path, metadata: [:])
        let loaded = try Model.load(path: path)
        let input = GraphBuilding.random([5, 12], seed: 12)
        #expect(try Self.outputs(loaded, input) == Self.outputs(model, input))
        let (arrays, attributes) = try ArrayFile.read(path)
        #expect(arrays.first { $0.name == "w_q" }?.dtype == .i8 && arrays.first { $0.name == "x_zero" }?.dtype == .u8)
        #expect(attributes["stoke_model"]?.contains("\"quantization\":\"static\"") == true)
    }

    @Test func corruptFieldsAreNamed() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("m.h5").path
        let model = try Self.handMLP()
        func fresh() throws { try model.save(to: path, metadata: [:]) }
        func editRecord(_ edit: @escaping (inout [String: Any]) -> Void) throws {
            try ModelFileTests.rewrite(path) { _, attributes in
                var record = try! JSONSerialization.jsonObject(with: Data(attributes["stoke_model"]!.utf8)) as! [String: Any]
                edit(&record)
                attributes["stoke_model"] = String(decoding: try! JSONSerialization.data(withJSONObject: record), as: UTF8.self)
            }
        }
        try fresh()
        try ModelFileTests.rewrite(path) { arrays, _ in arrays.removeAll { $0.name == "w2" } }
        ModelFileTests.expectModelFileError(path, field: "dataset w2", containing: "missing") { _ = try Model.load(path: path) }
        try fresh()
        try ModelFileTests.rewrite(path) { arrays, _ in
            arrays = arrays.map { $0.name == "b1" ? NamedArray(name: "b1", dtype: .f32, shape: [15], values: [Float](repeating: 0, count: 15)) : $0 }
        }
        ModelFileTests.expectModelFileError(path, field: "dataset b1", containing: "shape") { _ = try Model.load(path: path) }
        try fresh()
        try ModelFileTests.rewrite(path) { arrays, _ in arrays.append(NamedArray(name: "stray", dtype: .f32, shape: [1], values: [Float(1)])) }
        ModelFileTests.expectModelFileError(path, field: "dataset stray", containing: "not referenced") { _ = try Model.load(path: path) }
        try fresh()
        try editRecord { $0["nodes"] = nil }
        ModelFileTests.expectModelFileError(path, field: "stoke_model.nodes", containing: "missing") { _ = try Model.load(path: path) }
        try fresh()
        try editRecord { $0["version"] = 99 }
        ModelFileTests.expectModelFileError(path, field: "stoke_model.version") { _ = try Model.load(path: path) }
        try fresh()
        try editRecord { record in
            var nodes = record["nodes"] as! [[String: Any]]
            nodes[4]["attributes"] = ["alpha": ["type": "float"]]
            record["nodes"] = nodes
        }
        ModelFileTests.expectModelFileError(path, field: "stoke_model.nodes[4].attributes.alpha.f", containing: "missing") { _ = try Model.load(path: path) }
        try fresh()
        try editRecord { record in
            var tensors = record["tensors"] as! [[String: Any]]
            tensors[0]["dtype"] = "f16"
            record["tensors"] = tensors
        }
        ModelFileTests.expectModelFileError(path, field: "stoke_model.tensors[0].dtype") { _ = try Model.load(path: path) }
        try fresh()
        try editRecord { record in
            var nodes = record["nodes"] as! [[String: Any]]
            nodes[2]["op"] = "NoSuchOp"
            record["nodes"] = nodes
        }
        ModelFileTests.expectModelFileError(path, field: "stoke_model.nodes", containing: "NoSuchOp") { _ = try Model.load(path: path) }
        try fresh()
        try editRecord { $0["quantization"] = "fp4" }
        ModelFileTests.expectModelFileError(path, field: "stoke_model.quantization") { _ = try Model.load(path: path) }
        // A save that fails leaves no file behind and names the file.
        let missingDirectory = directory.appendingPathComponent("no/such/dir/m.h5").path
        ModelFileTests.expectModelFileError(missingDirectory, field: "file") { try model.save(to: missingDirectory, metadata: [:]) }
        #expect(!FileManager.default.fileExists(atPath: missingDirectory))
    }
}

extension GraphModelFileTests {
    @Test("weight_range: s8 models and files without the field (written before it existed) run as s8; a bad value is named")
    func weightRangeIsRecorded() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fp32 = try Self.handMLP(inputs: 96, hidden: 64)
        let s8 = try fp32.quantizedDynamic(weightRange: .s8)
        let path = directory.appendingPathComponent("s8.h5").path
        let input = GraphBuilding.random([7, 96], seed: 11)
        func dropOrSet(_ value: String?) throws {
            try s8.save(to: path, metadata: [:])
            try ModelFileTests.rewrite(path) { _, attributes in
                var record = try! JSONSerialization.jsonObject(with: Data(attributes["stoke_model"]!.utf8)) as! [String: Any]
                #expect(record["weight_range"] as? String == "s8")
                record["weight_range"] = value
                attributes["stoke_model"] = String(decoding: try! JSONSerialization.data(withJSONObject: record), as: UTF8.self)
            }
        }
        try dropOrSet(nil)
        let old = try Model.load(path: path)
        #expect(old.weightRange == .s8)
        GraphBuilding.assertClose(try Session(model: old).run(["x": input])["z"]!, try Self.outputs(s8, input), shape: [7, 5], tolerance: 1e-5)
        try dropOrSet("s9")
        ModelFileTests.expectModelFileError(path, field: "stoke_model.weight_range", containing: "s9") { _ = try Model.load(path: path) }
    }

    @Test func dynamicModelExportsToONNXThatOnnxruntimeRuns() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A Gemm with transB and a fused ReLU, a MatMul, and a plain Add after it.
        let dynamic = try Self.handMLP(inputs: 40, hidden: 24).quantizedDynamic()
        let onnx = directory.appendingPathComponent("dynamic.onnx").path
        try Data(dynamic.dynamicQuantizedONNXBytes()).write(to: URL(fileURLWithPath: onnx))
        let input = GraphBuilding.random([9, 40], seed: 13)
        try Data(NPY.encode(input)).write(to: directory.appendingPathComponent("x.npy"))
        let (status, output) = try TestSupport.runPython(["-c", """
            import sys, numpy as np, onnxruntime as ort
            d = sys.argv[1]
            s = ort.InferenceSession(d + '/dynamic.onnx', providers=['CPUExecutionProvider'])
            assert sorted(n.op_type for n in __import__('onnx').load(d + '/dynamic.onnx').graph.node).count('MatMulInteger') == 2
            np.save(d + '/y.npy', s.run(None, {'x': np.load(d + '/x.npy')})[0])
            """, directory.path])
        try #require(status == 0, "\(output)")
        let theirs = try NPY.decode([UInt8](Data(contentsOf: directory.appendingPathComponent("y.npy")))).floats
        // The same int8 products (exact in s32 on both sides); only the float epilogue's rounding
        // order differs, so the outputs agree to a few float ulps.
        GraphBuilding.assertClose(try Session(model: dynamic).run(["x": input])["z"]!, theirs, shape: [9, 5], tolerance: 1e-5)
        #expect(throws: EngineError.self) { _ = try Self.handMLP().dynamicQuantizedONNXBytes() }
    }
}

extension GraphModelFileTests {
    @Test func tensorAttributesBecomeDatasets() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Constant nodes stay in the source graph (folding happens at load), so their tensors are saved.
        let graph = Graph(name: "constants", nodes: [
            Node(name: "offset", opType: "Constant", inputs: [], outputs: ["c"], attributes: ["value": .tensor(GraphBuilding.random([6], seed: 3))]),
            Node(name: "shape", opType: "Constant", inputs: [], outputs: ["s"], attributes: ["value": .tensor(Tensor(shape: [2], int64s: [-1, 3]))]),
            Node(name: "add", opType: "Add", inputs: ["x", "c"], outputs: ["y"]),
            Node(name: "reshape", opType: "Reshape", inputs: ["y", "s"], outputs: ["z"]),
        ], initializers: [:], inputs: [ValueInfo(name: "x", shape: [.fixed(2), .fixed(6)])], outputs: [ValueInfo(name: "z", shape: nil)])
        let model = try Model(graph: graph, opset: 17)
        let path = directory.appendingPathComponent("constants.h5").path
        try model.save(to: path, metadata: [:])
        let input = GraphBuilding.random([2, 6], seed: 4)
        let loaded = try Model.load(path: path)
        #expect(try Session(model: loaded).run(["x": input])["z"]?.floats == Session(model: model).run(["x": input])["z"]?.floats)
        let (arrays, _) = try ArrayFile.read(path)
        #expect(arrays.first { $0.name == "offset.value" }?.dtype == .f32 && arrays.first { $0.name == "shape.value" }?.dtype == .i64, "\(arrays.map(\.name))")
        try ModelFileTests.rewrite(path) { arrays, _ in arrays.removeAll { $0.name == "shape.value" } }
        ModelFileTests.expectModelFileError(path, field: "dataset shape.value", containing: "stoke_model.nodes[1].attributes.value.tensors[0]") {
            _ = try Model.load(path: path)
        }
    }
}

extension GraphModelFileTests {
    @Test func staticallyQuantizedModelsRoundTripBitExact() throws {
        let directory = try ModelFileTests.scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fp32 = try NativeModelTests.smallCNN().model()
        let calibrator = try Calibrator(model: fp32)
        for seed in 0..<3 { try calibrator.observe([fp32.inputs[0].name: GraphBuilding.random([8, 1, 12, 12], seed: UInt64(20 + seed))]) }
        let table = try calibrator.table()
        var perTensor = StaticQuantizationOptions()
        perTensor.perChannel = false
        var mixed = StaticQuantizationOptions()
        mixed.keepFP32 = [try #require(fp32.quantizableNodes.first)]
        let input = GraphBuilding.random([3, 1, 12, 12], seed: 30)
        for (name, options) in [("per-channel", StaticQuantizationOptions()), ("per-tensor", perTensor), ("mixed", mixed)] {
            let quantized = try fp32.quantizedStatic(calibration: table, options: options)
            let path = directory.appendingPathComponent("\(name).h5").path
            try quantized.save(to: path, metadata: [:])
            let loaded = try Model.load(path: path)
            #expect(try Self.outputs(loaded, input) == Self.outputs(quantized, input), "\(name): the same QDQ graph, the same fused kernels")
            #expect(loaded.operatorCounts.map(\.op) == quantized.operatorCounts.map(\.op), "\(name)")
            #expect(try loaded.onnxBytes() == quantized.onnxBytes(), "\(name): the file keeps the QDQ source graph")
        }
    }
}
