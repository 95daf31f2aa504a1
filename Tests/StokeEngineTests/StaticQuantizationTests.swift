import CStokeKernels
import Foundation
import StokeStore
import Testing
@testable import StokeEngine

/// QuantizeLinear/DequantizeLinear reference semantics, the element types behind them, and static
/// quantization (calibration, the QDQ graph, its fusion, export to onnxruntime).
@Suite("static quantization", .serialized)
struct StaticQuantizationTests {
    // MARK: - QuantizeLinear / DequantizeLinear

    /// Ties and saturation, the cases numpy's `clip(rint(x / s) + zp)` decides (values computed with
    /// numpy 1.x: rint rounds half to even).
    static let tieInputs: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, 300, -300, 0.3, -0.7]

    @Test("QuantizeLinear per tensor rounds half to even and saturates, like numpy, for uint8 and int8")
    func quantizePerTensor() throws {
        let x = Tensor(shape: [12], floats: Self.tieInputs)
        let scale = Tensor(shape: [], floats: [0.5])
        let u8 = try GraphBuilding.runNode("QuantizeLinear", [x, scale, Tensor(shape: [], uint8s: [3])], opset: 13, constantInputs: [1, 2])
        #expect(u8.elementType == .uint8)
        #expect(u8.uint8s == [4, 6, 8, 2, 0, 0, 255, 255, 255, 0, 4, 2])
        let s8 = try GraphBuilding.runNode("QuantizeLinear", [x, scale, Tensor(shape: [], int8s: [-2])], opset: 10, constantInputs: [1, 2])
        #expect(s8.elementType == .int8)
        #expect(s8.int8s == [-1, 1, 3, -3, -5, -7, 127, 127, 127, -128, -1, -3])
        // No zero point: uint8 with zero point 0.
        let implicit = try GraphBuilding.runNode("QuantizeLinear", [x, scale], opset: 13, constantInputs: [1])
        #expect(implicit.uint8s == [1, 3, 5, 0, 0, 0, 255, 255, 255, 0, 1, 0])
    }

    @Test("QuantizeLinear and DequantizeLinear per axis use each channel's scale and zero point")
    func perAxis() throws {
        let x = Tensor(shape: [2, 3], floats: [1.0, 2.5, -3.0, 0.25, -0.75, 5.0])
        let scales = Tensor(shape: [2], floats: [0.5, 0.25]), zeros = Tensor(shape: [2], uint8s: [128, 10])
        let q = try GraphBuilding.runNode("QuantizeLinear", [x, scales, zeros], attributes: ["axis": .int(0)], opset: 13, constantInputs: [1, 2])
        #expect(q.uint8s == [130, 133, 122, 11, 7, 30])
        let dq = try GraphBuilding.runNode("DequantizeLinear", [q, scales, zeros], attributes: ["axis": .int(0)], opset: 13, constantInputs: [1, 2])
        #expect(dq.floats == [1.0, 2.5, -3.0, 0.25, -0.75, 5.0])
        // int8 weights along the last axis, as a Gemm's [K, N] weight is quantized.
        let w = Tensor(shape: [2, 2], int8s: [-127, 5, 127, -3])
        let wScales = Tensor(shape: [2], floats: [0.01, 0.5])
        let dw = try GraphBuilding.runNode("DequantizeLinear", [w, wScales, Tensor(shape: [2], int8s: [0, 0])],
                                           attributes: ["axis": .int(-1)], opset: 13, constantInputs: [1, 2])
        #expect(dw.floats == [-1.27, 2.5, 1.27, -1.5])
    }

    @Test("DequantizeLinear of int32 (a quantized bias) and of an int8 input without zero point")
    func dequantizeInt32() throws {
        let bias = Tensor(shape: [3], int64s: [-1000, 0, 70000])
        let y = try GraphBuilding.runNode("DequantizeLinear", [bias, Tensor(shape: [3], floats: [0.001, 1, 0.5])],
                                          attributes: ["axis": .int(0)], opset: 13, constantInputs: [1])
        #expect(y.floats == [-1, 0, 35000])
        let z = try GraphBuilding.runNode("DequantizeLinear", [Tensor(shape: [2], int8s: [-128, 127]), Tensor(shape: [], floats: [2])],
                                          opset: 10, constantInputs: [1])
        #expect(z.floats == [-256, 254])
    }

    @Test("malformed Q/DQ nodes fail clearly: missing scale, wrong zero-point type, mismatched axis")
    func malformed() throws {
        let x = Tensor(shape: [2, 3], floats: [Float](repeating: 1, count: 6))
        func message(_ body: () throws -> Tensor) -> String {
            do { _ = try body(); return "" } catch { return "\(error)" }
        }
        let missing = message { try GraphBuilding.runNode("QuantizeLinear", [x], opset: 13) }
        #expect(missing.contains("scale"))
        let wrongType = message {
            try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [], floats: [1]), Tensor(shape: [], int64s: [0])],
                                      opset: 13, constantInputs: [1, 2])
        }
        #expect(wrongType.contains("zero point") && wrongType.contains("int64"))
        let mismatch = message {
            try GraphBuilding.runNode("DequantizeLinear", [Tensor(shape: [2], uint8s: [1, 2]), Tensor(shape: [], floats: [1]),
                                                           Tensor(shape: [], int8s: [0])], opset: 13, constantInputs: [1, 2])
        }
        #expect(mismatch.contains("int8") && mismatch.contains("uint8"))
        let axis = message {
            try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [4], floats: [1, 1, 1, 1])],
                                      attributes: ["axis": .int(1)], opset: 13, constantInputs: [1])
        }
        #expect(axis.contains("per-axis"))
        // A one-element 1-D scale is per tensor, axis or not.
        let single = try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [1], floats: [0.5])],
                                               attributes: ["axis": .int(1)], opset: 13, constantInputs: [1])
        #expect(single.uint8s == [UInt8](repeating: 2, count: 6))
        let zeroScale = message {
            try GraphBuilding.runNode("QuantizeLinear", [x, Tensor(shape: [], floats: [0])], opset: 13, constantInputs: [1])
        }
        #expect(zeroScale.contains("positive"))
    }

    @Test("operators without quantized kernels refuse uint8 inputs by name instead of misreading them")
    func refusesQuantizedInputs() throws {
        let q = Tensor(shape: [4], uint8s: [1, 2, 3, 4])
        do {
            _ = try GraphBuilding.runNode("Relu", [q])
            Issue.record("Relu accepted a uint8 tensor")
        } catch {
            #expect("\(error)".contains("uint8") && "\(error)".contains("Relu"))
        }
        // Data movement is fine on quantized tensors.
        let flat = try GraphBuilding.runNode("Reshape", [Tensor(shape: [2, 2], uint8s: [1, 2, 3, 4]), Tensor(shape: [1], int64s: [4])],
                                             constantInputs: [1])
        #expect(flat.elementType == .uint8 && flat.uint8s == [1, 2, 3, 4])
    }

    @Test("uint8 and int8 tensors survive the ONNX encoder and decoder")
    func tensorRoundTrip() throws {
        let u = Tensor(shape: [2, 2], uint8s: [0, 1, 128, 255]), s = Tensor(shape: [3], int8s: [-128, 0, 127])
        let (_, u2) = try Tensor.decodeONNX(ONNXExport.serialize(tensor: u, name: "u"))
        let (_, s2) = try Tensor.decodeONNX(ONNXExport.serialize(tensor: s, name: "s"))
        #expect(u2.elementType == .uint8 && u2.shape == [2, 2] && u2.uint8s == [0, 1, 128, 255])
        #expect(s2.elementType == .int8 && s2.int8s == [-128, 0, 127])
    }

    // MARK: - Static quantization end to end

    /// A small CNN with the shape of the benchmark one (conv, relu, pool, conv, relu, pool, flatten,
    /// linear, relu, linear) on 12x12 images, and an MLP; random weights.
    static func cnn() throws -> SequentialModel {
        try SequentialModel(layers: [.conv2d(inChannels: 1, outChannels: 4, kernelSize: 3, padding: 1), .relu, .maxPool2d(kernelSize: 2),
                                     .conv2d(inChannels: 4, outChannels: 8, kernelSize: 3, padding: 1), .relu, .maxPool2d(kernelSize: 2),
                                     .flatten, .linear(inFeatures: 72, outFeatures: 16), .relu, .linear(inFeatures: 16, outFeatures: 10)],
                            sampleShape: [1, 12, 12], seed: 21)
    }

    static func mlp() throws -> SequentialModel {
        try SequentialModel(layers: [.linear(inFeatures: 64, outFeatures: 32), .relu, .linear(inFeatures: 32, outFeatures: 16), .relu,
                                     .linear(inFeatures: 16, outFeatures: 10)], sampleShape: [64], seed: 5)
    }

    /// Calibration batches and a separate evaluation batch, uniform in [-1, 1).
    static func data(_ sampleShape: [Int], batches: Int = 4, size: Int = 32) -> (calibration: [Tensor], evaluation: Tensor) {
        let shape = [size] + sampleShape
        return ((0..<batches).map { GraphBuilding.random(shape, seed: 100 + UInt64($0)) }, GraphBuilding.random(shape, seed: 999))
    }

    static func calibrated(_ model: Model, _ batches: [Tensor], method: CalibrationMethod = .minMax) throws -> CalibrationTable {
        let calibrator = try Calibrator(model: model, method: method)
        for batch in batches { try calibrator.observe(["input": batch]) }
        #expect(calibrator.samplesObserved == batches.reduce(0) { $0 + $1.shape[0] })
        return try calibrator.table()
    }

    /// The scale of the QDQ pair on the graph output (one output quantization step).
    static func outputStep(_ model: Model) throws -> Float {
        let output = model.outputs[0].name
        let dq = try #require(model.sourceGraph.nodes.first { $0.opType == "DequantizeLinear" && $0.outputs == [output] })
        return try #require(model.sourceGraph.initializers[dq.inputs[1]]).floats[0]
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let difference = zip(a, b).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return (difference / max(1e-12, b.reduce(0) { $0 + $1 * $1 })).squareRoot()
    }

    static func argmaxAgreement(_ a: [Float], _ b: [Float], classes: Int) -> Double {
        let rows = a.count / classes
        var same = 0
        for row in 0..<rows {
            let x = a[(row * classes)..<((row + 1) * classes)], y = b[(row * classes)..<((row + 1) * classes)]
            if x.firstIndex(of: x.max()!)! - row * classes == y.firstIndex(of: y.max()!)! - row * classes { same += 1 }
        }
        return Double(same) / Double(rows)
    }

    @Test("a quantized CNN and MLP run fused INT8 kernels, match the unfused QDQ reference and stay close to FP32",
          arguments: ["cnn", "mlp"])
    func quantizedModels(kind: String) throws {
        let native = kind == "cnn" ? try Self.cnn() : try Self.mlp()
        let fp32 = try native.model()
        let (batches, x) = Self.data(native.sampleShape)
        let table = try Self.calibrated(fp32, batches)
        #expect(fp32.quantizableNodes.count == (kind == "cnn" ? 4 : 3))
        let int8 = try fp32.quantizedStatic(calibration: table)
        #expect(int8.quantizedNodeCount == fp32.quantizableNodes.count)
        let ops = Dictionary(uniqueKeysWithValues: int8.operatorCounts.map { ($0.op, $0.count) })
        if kind == "cnn" {
            #expect(ops[quantizedConvOp] == 2 && ops[quantizedMaxPoolOp] == 2 && ops[quantizedGemmOp] == 2)
            // Everything after the first Conv stays NHWC up to the Gemm behind the Flatten.
            #expect(int8.graph.nodes.filter { $0.attributes[outputNHWCKey] != nil }.count == 2)
            #expect(int8.graph.nodes.filter { $0.attributes[nhwcPoolKey] != nil }.count == 2)
            #expect(int8.graph.nodes.contains { $0.attributes[nhwcChannelsKey] != nil })
        } else {
            #expect(ops[quantizedGemmOp] == 3)
        }
        // The fused nodes count the parameters and multiply-accumulates of the nodes they replace.
        #expect(int8.parameterCount == fp32.parameterCount)
        let shapes = ["input": x.shape]
        #expect(try Session(model: int8).costs(inputShapes: shapes).reduce(0) { $0 + $1.macs }
                == Session(model: fp32).costs(inputShapes: shapes).reduce(0) { $0 + $1.macs })
        // Only the model input is quantized and the output dequantized: no float round trip inside.
        #expect(ops["QuantizeLinear"] == 1 && ops["DequantizeLinear"] == 1 && ops["Conv"] == nil && ops["Gemm"] == nil)

        let reference = try Model(graph: int8.sourceGraph, opset: int8.opset, options: {
            var options = OptimizationOptions()
            options.fuseQDQ = false
            return options
        }())
        let expected = try Session(model: reference).run(["input": x])["output"]!.floats
        let full = try Session(model: fp32).run(["input": x])["output"]!.floats
        let step = try Self.outputStep(int8)
        for level in (0..<Int32(STOKE_CPU_LEVEL_COUNT)).filter({ stoke_cpu_level_supported($0) != 0 }) {
            stoke_cpu_force(level)
            defer { stoke_cpu_force(-1) }
            let got = try Session(model: try fp32.quantizedStatic(calibration: table)).run(["input": x])["output"]!.floats
            // The fused kernels requantize with one multiply per layer where the reference rounds
            // float sums: a tie can round the other way, one step per layer at most.
            let steps = zip(got, expected).map { abs($0 - $1) / step }
            #expect(steps.max()! <= 4.01, "level \(level): \(steps.max()!) output steps from the QDQ reference")
            #expect(Double(steps.filter { $0 < 0.5 }.count) >= 0.9 * Double(steps.count), "level \(level)")
            // Against FP32: 8-bit steps through 3-4 layers of random weights.
            #expect(Self.relativeError(got, full) < 0.1, "level \(level): relative error \(Self.relativeError(got, full))")
            #expect(Self.argmaxAgreement(got, full, classes: 10) >= 0.85)
        }
    }

    @Test("per-tensor weights: one scale per weight tensor, still fused and close to FP32; the exported QDQ model reloads to the same outputs")
    func perTensorAndReload() throws {
        let fp32 = try Self.cnn().model()
        let (batches, x) = Self.data([1, 12, 12])
        var options = StaticQuantizationOptions()
        options.perChannel = false
        let int8 = try fp32.quantizedStatic(calibration: try Self.calibrated(fp32, batches), options: options)
        for node in int8.sourceGraph.nodes where node.opType == "DequantizeLinear" {
            if let weights = int8.sourceGraph.initializers[node.inputs[0]], weights.elementType == .int8 {
                #expect(int8.sourceGraph.initializers[node.inputs[1]]?.count == 1, "\(node.name)")
                #expect(node.attributes["axis"] == nil)
            }
        }
        #expect(int8.operatorCounts.contains { $0.op == quantizedConvOp && $0.count == 2 })
        let got = try Session(model: int8).run(["input": x])["output"]!.floats
        let full = try Session(model: fp32).run(["input": x])["output"]!.floats
        #expect(Self.relativeError(got, full) < 0.15, "relative error \(Self.relativeError(got, full))")
        let reloaded = try Model.load(onnxBytes: try int8.onnxBytes())
        #expect(reloaded.operatorCounts.map(\.op) == int8.operatorCounts.map(\.op))
        #expect(try Session(model: reloaded).run(["input": x])["output"]!.floats == got)
    }

    @Test("calibration methods: MinMax spans an outlier, percentile and MSE clip it; ranges hold 0; the table is Codable")
    func calibrationMethods() throws {
        let native = try SequentialModel(layers: [.linear(inFeatures: 4, outFeatures: 3), .relu], sampleShape: [4], seed: 2)
        let model = try native.model()
        var values = GraphBuilding.randomFloats(4000, seed: 7).map { $0 + 2 }   // [1, 3): 0 is outside the data
        values[17] = 100
        let batches = [Tensor(shape: [500, 4], floats: Array(values[..<2000])), Tensor(shape: [500, 4], floats: Array(values[2000...]))]
        let minMax = try Self.calibrated(model, batches)
        let percentile = try Self.calibrated(model, batches, method: .percentile(99.9))
        let mse = try Self.calibrated(model, batches, method: .mse)
        let names = Set(minMax.ranges.keys)
        #expect(names.contains("input") && names.contains("output"))
        #expect(Set(percentile.ranges.keys) == names && Set(mse.ranges.keys) == names)
        #expect(minMax.ranges["input"] == 0...100)
        for table in [minMax, percentile, mse] {
            for (name, range) in table.ranges {
                #expect(range.contains(0), "\(name): \(range)")
                #expect(minMax.ranges[name]!.lowerBound <= range.lowerBound && range.upperBound <= minMax.ranges[name]!.upperBound)
            }
        }
        let clippedPercentile = try #require(percentile.ranges["input"]).upperBound
        #expect(clippedPercentile >= 2.9 && clippedPercentile < 4, "percentile upper bound \(clippedPercentile)")
        // MSE's defining property, measured on the data itself: its range quantizes the observed
        // values with no more squared error than the other methods' (2% slack for the histogram's
        // bin width). One outlier of 100 among 4000 costs more clipped than kept.
        func error(_ range: ClosedRange<Float>) -> Double {
            let parameters = StaticQuantizer.activation(range)
            return values.reduce(0) { total, value in
                let q = QuantizationParameters.quantize(value, scale: parameters.scale, zeroPoint: parameters.zeroPoint, range: 0...255)
                let restored = Float(q - parameters.zeroPoint) * parameters.scale
                return total + Double((restored - value) * (restored - value))
            }
        }
        let mseError = error(mse.ranges["input"]!)
        #expect(mseError <= 1.02 * error(minMax.ranges["input"]!) && mseError <= 1.02 * error(percentile.ranges["input"]!))
        let decoded = try JSONDecoder().decode(CalibrationTable.self, from: JSONEncoder().encode(mse))
        #expect(decoded == mse)
        #expect(throws: EngineError.self) { try Calibrator(model: model).table() }
        #expect(throws: EngineError.self) { try Calibrator(model: model, method: .percentile(0)) }
    }

    @Test("keepFP32 leaves the named node in FP32; unknown names and already quantized models are refused")
    func keepFP32() throws {
        let fp32 = try Self.cnn().model()
        let (batches, x) = Self.data([1, 12, 12])
        let table = try Self.calibrated(fp32, batches)
        var options = StaticQuantizationOptions()
        options.keepFP32 = ["layer0"]
        let mixed = try fp32.quantizedStatic(calibration: table, options: options)
        #expect(mixed.quantizedNodeCount == 3)
        let kept = try #require(mixed.graph.nodes.first { $0.name == "layer0" })
        #expect(kept.opType == "Conv")
        let source = try #require(mixed.sourceGraph.nodes.first { $0.name == "layer0" })
        #expect(mixed.sourceGraph.initializers[source.inputs[1]]?.elementType == .float32)
        #expect(mixed.operatorCounts.contains { $0.op == quantizedConvOp && $0.count == 1 })
        let got = try Session(model: mixed).run(["input": x])["output"]!.floats
        let full = try Session(model: fp32).run(["input": x])["output"]!.floats
        #expect(Self.relativeError(got, full) < 0.1)

        options.keepFP32 = ["no_such_node"]
        do {
            _ = try fp32.quantizedStatic(calibration: table, options: options)
            Issue.record("an unknown keepFP32 name was accepted")
        } catch {
            #expect("\(error)".contains("no_such_node"))
        }
        do {
            _ = try mixed.quantizedStatic(calibration: table)
            Issue.record("an already quantized model was quantized again")
        } catch {
            #expect("\(error)".contains("already quantized"))
        }
        do {
            _ = try fp32.quantizedStatic(calibration: CalibrationTable(ranges: [:]))
            Issue.record("an empty calibration table was accepted")
        } catch {
            #expect("\(error)".contains("calibration table has no range"))
        }
        #expect(throws: EngineError.self) { try fp32.quantizedDynamic().onnxBytes() }
    }

    @Test("a QDQ graph with a malformed DequantizeLinear fails clearly at plan time instead of being fused")
    func malformedQDQModel() throws {
        let weights = Tensor(shape: [3, 2], int8s: [1, -1, 2, -2, 3, -3])
        func model(zeroPoint: Tensor?, scale: Bool) throws -> Model {
            var initializers: [String: Tensor] = ["w_q": weights, "x_s": Tensor(shape: [], floats: [0.1]), "x_z": Tensor(shape: [], uint8s: [128])]
            if scale { initializers["w_s"] = Tensor(shape: [], floats: [0.01]) }
            if let zeroPoint { initializers["w_z"] = zeroPoint }
            let nodes = [
                Node(name: "qx", opType: "QuantizeLinear", inputs: ["x", "x_s", "x_z"], outputs: ["xq"]),
                Node(name: "dqx", opType: "DequantizeLinear", inputs: ["xq", "x_s", "x_z"], outputs: ["xd"]),
                Node(name: "dqw", opType: "DequantizeLinear", inputs: ["w_q"] + (scale ? ["w_s"] : []) + (zeroPoint == nil ? [] : ["w_z"]), outputs: ["wd"]),
                Node(name: "mm", opType: "MatMul", inputs: ["xd", "wd"], outputs: ["y"]),
            ]
            return try Model(graph: GraphBuilding.graph(nodes, inputs: ["x"], outputs: ["y"], initializers: initializers), opset: 13)
        }
        let x = Tensor(shape: [1, 3], floats: [0.5, -0.5, 1])
        for (zeroPoint, scale, needle) in [(nil as Tensor?, false, "scale"), (Tensor(shape: [], int64s: [0]), true, "zero point")] {
            do {
                _ = try Session(model: try model(zeroPoint: zeroPoint, scale: scale)).run(["x": x])
                Issue.record("malformed DequantizeLinear accepted")
            } catch {
                #expect("\(error)".contains(needle) && "\(error)".contains("dqw"), "\(error)")
            }
        }
        // Well formed, the same graph runs: (round(x / 0.1) + 128 - 128) · 0.1 · w · 0.01 = [0.025, -0.025].
        let y = try Session(model: try model(zeroPoint: Tensor(shape: [], int8s: [0]), scale: true)).run(["x": x])["y"]!.floats
        #expect(zip(y, [0.025, -0.025] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(y)")
    }

    // MARK: - onnxruntime interop

    static func write(_ bytes: [UInt8], _ path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    static func python(_ script: String, _ arguments: [String]) throws {
        let (status, output) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent(script).path] + arguments)
        try #require(status == 0, "\(script) failed: \(output.suffix(2000))")
    }

    /// Output steps between two dequantized outputs: (largest, fraction within half a step).
    static func stepDifference(_ a: [Float], _ b: [Float], step: Float) -> (largest: Float, exact: Double) {
        let steps = zip(a, b).map { abs($0 - $1) / step }
        return (steps.max() ?? 0, Double(steps.filter { $0 < 0.5 }.count) / Double(max(1, steps.count)))
    }

    @Test("onnxBytes() of QDQ and FP32 models runs in onnxruntime with Stoke's outputs", arguments: ["cnn", "mlp"])
    func exportRunsInOnnxRuntime(kind: String) throws {
        let native = kind == "cnn" ? try Self.cnn() : try Self.mlp()
        let fp32 = try native.model()
        let (batches, x) = Self.data(native.sampleShape)
        let int8 = try fp32.quantizedStatic(calibration: try Self.calibrated(fp32, batches))
        let directory = NSTemporaryDirectory() + "stoke-qdq-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.write(ONNXExport.serialize(tensor: x, name: "input"), directory + "/input.pb")
        for (name, model) in [("fp32", fp32), ("int8", int8)] {
            try Self.write(try model.onnxBytes(), directory + "/\(name).onnx")
            try Self.python("ort_run.py", [directory + "/\(name).onnx", directory + "/input.pb", directory + "/\(name).pb"])
            let ort = try Tensor.decodeONNX(TestSupport.readBytes(URL(fileURLWithPath: directory + "/\(name).pb"))).tensor.floats
            let stoke = try Session(model: model).run(["input": x])["output"]!.floats
            if name == "fp32" {
                #expect(zip(ort, stoke).allSatisfy { abs($0 - $1) <= 1e-4 + 1e-4 * abs($1) })
                continue
            }
            // onnxruntime fuses the same QDQ groups into QLinearConv/QGemm with its own
            // requantization arithmetic; a tie may round differently once per quantized layer, so
            // outputs agree to a few output steps and mostly exactly.
            let (largest, exact) = Self.stepDifference(stoke, ort, step: try Self.outputStep(int8))
            print("[static-quantization] \(kind) QDQ export in onnxruntime: \(largest) output steps at most, \(exact) of outputs identical")
            #expect(largest <= 2.01 && exact >= 0.95, "\(kind): \(largest) steps at most, \(exact) exact")
        }
    }

    @Test("a model quantized by onnxruntime's quantize_static loads, fuses and matches onnxruntime", arguments: ["cnn", "mlp"])
    func onnxRuntimeQuantizedModel(kind: String) throws {
        let native = kind == "cnn" ? try Self.cnn() : try Self.mlp()
        let fp32 = try native.model()
        let (batches, x) = Self.data(native.sampleShape, batches: 2)
        let directory = NSTemporaryDirectory() + "stoke-ortq-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let calibration = Tensor(shape: [64] + native.sampleShape, floats: batches.flatMap(\.floats))
        try Self.write(try fp32.onnxBytes(), directory + "/fp32.onnx")
        try Self.write(ONNXExport.serialize(tensor: calibration, name: "input"), directory + "/calibration.pb")
        try Self.write(ONNXExport.serialize(tensor: x, name: "input"), directory + "/input.pb")
        try Self.python("ort_quantize_static.py", [directory + "/fp32.onnx", directory + "/calibration.pb", directory + "/input.pb",
                                                   directory + "/qdq.onnx", directory + "/ort.pb"])
        let model = try Model.load(onnx: directory + "/qdq.onnx")
        let ops = Dictionary(uniqueKeysWithValues: model.operatorCounts.map { ($0.op, $0.count) })
        #expect((ops[quantizedConvOp] ?? 0) + (ops[quantizedGemmOp] ?? 0) == (kind == "cnn" ? 4 : 3), "\(model.operatorCounts)")
        let ort = try Tensor.decodeONNX(TestSupport.readBytes(URL(fileURLWithPath: directory + "/ort.pb"))).tensor.floats
        let stoke = try Session(model: model).run(["input": x])[model.outputs[0].name]!.floats
        let (largest, exact) = Self.stepDifference(stoke, ort, step: try Self.outputStep(model))
        print("[static-quantization] \(kind) quantized by onnxruntime, run by Stoke: \(largest) output steps at most, \(exact) identical")
        #expect(largest <= 2.01 && exact >= 0.95, "\(kind): \(largest) steps at most, \(exact) exact")
    }

    // MARK: - Accuracy on Fashion-MNIST

    static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

    /// The payload of one of Debian's gzipped IDX files (after its `header` bytes).
    static func idx(_ name: String, header: Int) throws -> [UInt8] {
        let path = fashionMNIST + "/" + name
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let bytes = try data.withUnsafeBytes { raw throws(StoreError) in try unsafe Gzip.decompress(raw, path: path) }
        return Array(bytes[header...])
    }

    static func accuracy(_ model: Model, images: [Float], labels: [UInt8]) throws -> Double {
        let session = Session(model: model)
        var correct = 0
        for start in stride(from: 0, to: labels.count, by: 1000) {
            let count = min(1000, labels.count - start)
            let batch = Tensor(shape: [count, 784], floats: Array(images[(start * 784)..<((start + count) * 784)]))
            let logits = try session.run(["input": batch])["output"]!.floats
            for row in 0..<count {
                let scores = logits[(row * 10)..<((row + 1) * 10)]
                if scores.firstIndex(of: scores.max()!)! - row * 10 == Int(labels[start + row]) { correct += 1 }
            }
        }
        return Double(correct) / Double(labels.count)
    }

    @Test("a Fashion-MNIST MLP quantized statically stays within 0.5 pp of its FP32 accuracy",
          .enabled(if: FileManager.default.fileExists(atPath: fashionMNIST + "/train-images-idx3-ubyte.gz")))
    func fashionMNISTAccuracy() throws {
        // Debian's dataset-fashion-mnist, decoded from the same IDX files `stoke pack --from idx` reads;
        // pixels scaled to [0, 1]. 12k training samples, two epochs: enough for ~83% in seconds.
        let trainCount = 12_000
        let trainImages = try Self.idx("train-images-idx3-ubyte.gz", header: 16)[..<(trainCount * 784)].map { Float($0) / 255 }
        let trainLabels = try Self.idx("train-labels-idx1-ubyte.gz", header: 8)[..<trainCount].map { Int64($0) }
        let testImages = try Self.idx("t10k-images-idx3-ubyte.gz", header: 16).map { Float($0) / 255 }
        let testLabels = try Self.idx("t10k-labels-idx1-ubyte.gz", header: 8)
        let native = try SequentialModel(layers: [.linear(inFeatures: 784, outFeatures: 128), .relu, .linear(inFeatures: 128, outFeatures: 10)],
                                         sampleShape: [784], seed: 1)
        var options = TrainingOptions()
        options.learningRate = 2e-3
        options.seed = 1
        let trainer = try Trainer(model: native, options: options)
        let batch = 100
        try trainImages.withUnsafeBufferPointer { images in
            try trainLabels.withUnsafeBufferPointer { labels in
                for epoch in 0..<2 {
                    trainer.startEpoch(epoch)
                    for start in stride(from: 0, to: trainCount, by: batch) {
                        _ = try trainer.step(input: UnsafeBufferPointer(rebasing: images[(start * 784)..<((start + batch) * 784)]),
                                             labels: UnsafeBufferPointer(rebasing: labels[start..<(start + batch)]), count: batch)
                    }
                }
            }
        }
        let fp32 = try trainer.model().model()
        // Calibration: 1024 training samples, MinMax.
        let calibrator = try Calibrator(model: fp32)
        for start in stride(from: 0, to: 1024, by: 256) {
            try calibrator.observe(["input": Tensor(shape: [256, 784], floats: Array(trainImages[(start * 784)..<((start + 256) * 784)]))])
        }
        let int8 = try fp32.quantizedStatic(calibration: try calibrator.table())
        let fp32Accuracy = try Self.accuracy(fp32, images: testImages, labels: testLabels)
        let int8Accuracy = try Self.accuracy(int8, images: testImages, labels: testLabels)
        print("[static-quantization] Fashion-MNIST test set (10k): FP32 \(fp32Accuracy), static INT8 \(int8Accuracy)")
        #expect(fp32Accuracy > 0.8, "training did not converge: \(fp32Accuracy)")
        #expect(abs(int8Accuracy - fp32Accuracy) <= 0.005, "FP32 \(fp32Accuracy), INT8 \(int8Accuracy)")
    }
}

