import Foundation
import StokeStore

// Graph model files: any `Model` (ONNX-loaded, native, dynamically or statically quantized) as one
// HDF5 file, written with StokeStore's `ArrayFile`.
//
//   /<tensor>      one dataset per initializer and per tensor-valued node attribute, in its own element
//                  type (f32, i64, i8, u8), named after the initializer where the name is a valid
//                  dataset name; h5py reads them as they are
//   @stoke_model   JSON: {"format": "stoke-graph-model", "version": 1, "opset": 17, "name": ...,
//                  "inputs": [{"name", "elem_type", "shape": [17 | "batch" | null]}], "outputs": [...],
//                  "nodes": [{"name", "op", "domain", "inputs", "outputs", "attributes": {...}}],
//                  "tensors": [{"name", "dataset", "dtype", "shape", "dequantize"?}],
//                  "quantization": "none" | "dynamic" | "static", "weight_range"?: "s7" | "s8"}
//                  (weight_range: quantized models; absent in files written before it existed = s8)
//   @metadata      JSON object of the caller's strings plus "created" and "stoke_version"
//
// The graph is the standard ONNX one, before Stoke's load-time fusions (activations and pooling
// fused into the preceding kernel, QDQ patterns fused into int8 operators): loading runs the same
// passes again, so a file written by an older build gets a newer build's optimizations, and the
// file never holds Stoke-internal operators. Dynamically quantized models are the exception that
// proves the rule: their operator has no static ONNX form, so the file stores their weights as int8
// with per-channel scales (a quarter of the size) and `"quantization": "dynamic"`, and loading
// dequantizes them and quantizes the model again (the same int8 weights; the recomputed scales can
// differ from the saved ones in the last bit).

extension Model {
    /// The `format` value of a graph model file's `stoke_model` attribute.
    public static let graphFileFormat = "stoke-graph-model"
    /// The newest graph model file version this build writes and reads.
    public static let graphFileVersion = 1

    /// Saves this model as an HDF5 graph model file, atomically (a temporary file renamed into place,
    /// so a partial file never appears at `path`).
    ///
    /// - Parameters:
    ///   - metadata: free-form strings kept with the model (e.g. dataset, accuracy); `created` and
    ///     `stoke_version` are added.
    /// - Throws: `EngineError.modelFile` naming the file and what cannot be written (an attribute
    ///   kind the format has no form for, an I/O error).
    public func save(to path: String, metadata: [String: String]) throws(EngineError) {
        let (graph, quantization, dynamicWeights) = try savedGraph(path: path)
        var writer = GraphFileWriter(path: path)
        var nodes: [GraphFileNode] = []
        for node in graph.nodes {
            var attributes: [String: GraphFileAttribute] = [:]
            for (name, value) in node.attributes {
                attributes[name] = try writer.attribute(value, field: "node '\(node.name)' attribute \(name)", hint: "\(node.name).\(name)")
            }
            nodes.append(GraphFileNode(name: node.name, op: node.opType, domain: node.domain.isEmpty ? nil : node.domain,
                                       inputs: node.inputs, outputs: node.outputs, attributes: attributes.isEmpty ? nil : attributes))
        }
        var tensors: [GraphFileTensor] = []
        for name in graph.initializers.keys.sorted() {
            guard let tensor = graph.initializers[name] else { continue }
            if let quantized = dynamicWeights[name] {
                tensors.append(writer.quantized(quantized, name: name))
            } else {
                tensors.append(writer.tensor(tensor, name: name))
            }
        }
        let record = GraphFileRecord(format: Self.graphFileFormat, version: Self.graphFileVersion, opset: Int(opset), name: graph.name,
                                     inputs: graph.inputs.map(GraphFileValue.init), outputs: graph.outputs.map(GraphFileValue.init),
                                     nodes: nodes, tensors: tensors, quantization: quantization,
                                     weight_range: quantization == "none" ? nil : (weightRange ?? .s8).rawValue)
        var fullMetadata = metadata
        fullMetadata["created"] = fullMetadata["created"] ?? ISO8601DateFormatter().string(from: Date())
        fullMetadata["stoke_version"] = StokeVersion.string
        let attributes = ["stoke_model": SequentialModel.json(record), "metadata": SequentialModel.json(fullMetadata)]
        do {
            try ArrayFile.write(writer.arrays, attributes: attributes, to: path, overwrite: true)
        } catch {
            throw .modelFile(path: path, field: "file", detail: error.description)
        }
    }

    /// Loads a graph model file written by `save(to:metadata:)` (not a sequential model file; use
    /// `Model.load(path:)` to open either).
    ///
    /// - Throws: `EngineError.modelFile` naming the file and the field at fault: not HDF5, not this
    ///   format or a newer version, a missing or ill-typed field, a dataset missing, of another dtype
    ///   or shape than recorded, or not referenced.
    public static func loadGraphFile(path: String, options: OptimizationOptions = .init()) throws(EngineError)
        -> (model: Model, metadata: [String: String])
    {
        let contents: (arrays: [NamedArray], attributes: [String: String])
        do {
            contents = try ArrayFile.read(path)
        } catch {
            throw .modelFile(path: path, field: "file", detail: error.description)
        }
        return try loadGraphFile(path: path, contents: contents, options: options)
    }

    static func loadGraphFile(path: String, contents: (arrays: [NamedArray], attributes: [String: String]),
                              options: OptimizationOptions) throws(EngineError) -> (model: Model, metadata: [String: String]) {
        func fail(_ field: String, _ detail: String) -> EngineError { .modelFile(path: path, field: field, detail: detail) }
        guard let text = contents.attributes["stoke_model"] else {
            throw fail("stoke_model", "root attribute missing: not a Stoke model file (attributes: \(contents.attributes.keys.sorted()))")
        }
        let header = try SequentialModel.decodeJSON(GraphFileHeader.self, text, attribute: "stoke_model", path: path)
        guard header.format == graphFileFormat else {
            throw fail("stoke_model.format", "is \(header.format.map { "'\($0)'" } ?? "missing"), expected '\(graphFileFormat)'")
        }
        guard let version = header.version, (1...graphFileVersion).contains(version) else {
            throw fail("stoke_model.version", "\(header.version.map(String.init) ?? "missing") is not a version this build reads (1...\(graphFileVersion))")
        }
        let record = try SequentialModel.decodeJSON(GraphFileRecord.self, text, attribute: "stoke_model", path: path)
        var reader = GraphFileReader(path: path, arrays: contents.arrays)
        var initializers: [String: Tensor] = [:]
        for (index, entry) in record.tensors.enumerated() {
            let field = "stoke_model.tensors[\(index)]"
            guard initializers[entry.name] == nil else { throw fail("\(field).name", "'\(entry.name)' is given twice") }
            initializers[entry.name] = try reader.tensor(entry, field: field)
        }
        var nodes: [Node] = []
        for (index, entry) in record.nodes.enumerated() {
            var attributes: [String: AttributeValue] = [:]
            for (name, value) in entry.attributes ?? [:] {
                attributes[name] = try reader.attribute(value, field: "stoke_model.nodes[\(index)].attributes.\(name)")
            }
            nodes.append(Node(name: entry.name, opType: entry.op, domain: entry.domain ?? "", inputs: entry.inputs,
                              outputs: entry.outputs, attributes: attributes))
        }
        if let extra = reader.unused.sorted().first {
            throw fail("dataset \(extra)", "is not referenced by stoke_model.tensors or a node attribute")
        }
        var inputs: [ValueInfo] = [], outputs: [ValueInfo] = []
        for (index, value) in record.inputs.enumerated() { inputs.append(try value.info(field: "stoke_model.inputs[\(index)]", path: path)) }
        for (index, value) in record.outputs.enumerated() { outputs.append(try value.info(field: "stoke_model.outputs[\(index)]", path: path)) }
        guard !inputs.isEmpty else { throw fail("stoke_model.inputs", "is empty") }
        guard !outputs.isEmpty else { throw fail("stoke_model.outputs", "is empty") }
        guard record.opset > 0 else { throw fail("stoke_model.opset", "\(record.opset) is not a positive opset version") }
        let graph = Graph(name: record.name ?? "", nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs)
        let quantization = record.quantization ?? "none"
        guard ["none", "dynamic", "static"].contains(quantization) else {
            throw fail("stoke_model.quantization", "'\(quantization)' is not none, dynamic or static")
        }
        guard let range = WeightRange(rawValue: record.weight_range ?? WeightRange.s8.rawValue) else {
            throw fail("stoke_model.weight_range", "'\(record.weight_range ?? "")' is not s7 or s8")
        }
        var model: Model
        do throws(EngineError) {
            try Model.rejectInternalOperators(graph)
            model = try Model(graph: graph, opset: Int64(record.opset), options: options)
            if quantization == "dynamic" { model = try model.quantizedDynamic(weightRange: range) }
            if quantization == "static" { model.weightRange = range }
        } catch {
            throw fail("stoke_model.nodes", error.description)
        }
        var metadata: [String: String] = [:]
        if let text = contents.attributes["metadata"] {
            metadata = try SequentialModel.decodeJSON([String: String].self, text, attribute: "metadata", path: path)
        }
        return (model, metadata)
    }

    /// What a graph model file holds for this model: the standard graph, the quantization kind, and
    /// the int8 form of the weights of dynamically quantized nodes (keyed by initializer name).
    private func savedGraph(path: String) throws(EngineError) -> (Graph, String, [String: DynamicWeights]) {
        var graph = standardGraph
        var dynamic: [String: DynamicWeights] = [:]
        for index in graph.nodes.indices where graph.nodes[index].opType == dynamicQuantizedLinear {
            var node = graph.nodes[index]
            guard case let .string(original)? = node.attributes.removeValue(forKey: "stoke.original_op") else {
                throw .modelFile(path: path, field: "node '\(node.name)'", detail: "dynamically quantized node without its original operator")
            }
            let range: WeightRange
            if case let .string(name)? = node.attributes.removeValue(forKey: WeightRange.attribute) { range = WeightRange(rawValue: name) ?? .s8 } else { range = .s8 }
            node.opType = original
            graph.nodes[index] = node
            let weightName = node.inputs[1]
            guard let weights = graph.initializers[weightName], weights.elementType == .float32, weights.shape.count == 2 else {
                throw .modelFile(path: path, field: "node '\(node.name)'", detail: "dynamically quantized weights '\(weightName)' are not a constant float matrix")
            }
            let transB: Bool
            if original == "Gemm", case let .int(value)? = node.attributes["transB"] { transB = value != 0 } else { transB = false }
            dynamic[weightName] = DynamicWeights(weights, channelAxis: transB ? 0 : 1, range: range)
        }
        let quantization = !dynamic.isEmpty ? "dynamic"
            : graph.nodes.contains(where: { $0.opType == "QuantizeLinear" || $0.opType == "DequantizeLinear" }) ? "static" : "none"
        return (ONNXExport.unfused(graph), quantization, dynamic)
    }

    /// The graph before Stoke's load-time fusions that produce internal attributes; what files and
    /// ONNX export start from.
    var standardGraph: Graph { sourceGraph }
}

extension Model {
    /// Standard ONNX bytes of a dynamically quantized model, each INT8 node written the way
    /// onnxruntime's `quantize_dynamic` writes it: DynamicQuantizeLinear(x) → MatMulInteger(x_u8,
    /// W_s8, x_zero_point) → Cast(float) → Mul(x_scale · w_scale) [→ Add(bias)] [→ Relu], with the
    /// weights as s8 per output channel (the values Stoke's operator computes with). onnxruntime runs
    /// the result; Stoke itself does not load DynamicQuantizeLinear/MatMulInteger.
    ///
    /// - Throws: `EngineError.invalidModel` when the model has no dynamically quantized node or one
    ///   whose weights are not a constant float matrix.
    public func dynamicQuantizedONNXBytes() throws(EngineError) -> [UInt8] {
        var graph = ONNXExport.unfused(standardGraph)
        var rewritten: [Node] = []
        var converted = 0
        for node in graph.nodes {
            guard node.opType == dynamicQuantizedLinear else {
                rewritten.append(node)
                continue
            }
            guard case let .string(original)? = node.attributes["stoke.original_op"], node.inputs.count >= 2,
                  let weights = graph.initializers[node.inputs[1]], weights.elementType == .float32, weights.shape.count == 2 else {
                throw .invalidModel("dynamically quantized node '\(node.name)' has no constant float weight matrix to export")
            }
            var transB = false
            if original == "Gemm", case let .int(value)? = node.attributes["transB"] { transB = value != 0 }
            let range: WeightRange
            if case let .string(name)? = node.attributes[WeightRange.attribute] { range = WeightRange(rawValue: name) ?? .s8 } else { range = .s8 }
            let quantized = DynamicWeights(weights, channelAxis: transB ? 0 : 1, range: range)
            // MatMulInteger takes B as [K, N]: a transposed Gemm weight is transposed back once, here.
            let (k, n) = transB ? (weights.shape[1], weights.shape[0]) : (weights.shape[0], weights.shape[1])
            var values = quantized.values
            if transB { values = (0..<(k * n)).map { quantized.values[($0 % n) * k + $0 / n] } }
            let prefix = node.name.isEmpty ? "dynamic\(converted)" : node.name
            let (weightName, scaleName) = ("\(prefix)_weight_quantized", "\(prefix)_weight_scale")
            graph.initializers[weightName] = Tensor(shape: [k, n], int8s: values)
            graph.initializers[scaleName] = Tensor(shape: [n], floats: quantized.scales)
            let (xq, xs, xz, acc, accF, scale) = ("\(prefix)_input_quantized", "\(prefix)_input_scale", "\(prefix)_input_zero_point",
                                                  "\(prefix)_accumulator", "\(prefix)_accumulator_float", "\(prefix)_scale")
            rewritten.append(Node(name: "\(prefix)_quantize_input", opType: "DynamicQuantizeLinear", inputs: [node.inputs[0]], outputs: [xq, xs, xz]))
            rewritten.append(Node(name: "\(prefix)_matmul_integer", opType: "MatMulInteger", inputs: [xq, weightName, xz], outputs: [acc]))
            rewritten.append(Node(name: "\(prefix)_cast", opType: "Cast", inputs: [acc], outputs: [accF], attributes: ["to": .int(1)]))
            rewritten.append(Node(name: "\(prefix)_scales", opType: "Mul", inputs: [xs, scaleName], outputs: [scale]))
            var stages: [(op: String, input: String?)] = [("Mul", scale)]
            if original == "Gemm", node.inputs.count > 2, !node.inputs[2].isEmpty { stages.append(("Add", node.inputs[2])) }
            // `unfused` has already split a fused ReLU into its own node after this one.
            var current = accF
            for (index, stage) in stages.enumerated() {
                let output = index == stages.count - 1 ? node.outputs[0] : "\(prefix)_\(stage.op.lowercased())\(index)"
                rewritten.append(Node(name: "\(prefix)_\(stage.op.lowercased())\(index)", opType: stage.op,
                                      inputs: [current] + (stage.input.map { [$0] } ?? []), outputs: [output]))
                current = output
            }
            converted += 1
        }
        guard converted > 0 else { throw .invalidModel("the model has no dynamically quantized node (use onnxBytes() for FP32 and QDQ models)") }
        graph.nodes = rewritten
        let used = Set(graph.nodes.flatMap(\.inputs))
        graph.initializers = graph.initializers.filter { used.contains($0.key) }
        // DynamicQuantizeLinear needs opset 11.
        return ONNXExport.serialize(graph: graph, opset: max(opset, 11))
    }
}

/// Weights of a dynamically quantized node as stored: symmetric s8 per output channel, the scale of
/// each channel being its largest magnitude / 127, as the dynamic operator computes it.
struct DynamicWeights {
    var shape: [Int]
    var values: [Int8]
    var scales: [Float]
    var axis: Int

    init(_ weights: Tensor, channelAxis: Int, range: WeightRange) {
        let limit = Float(range.largest)
        let source = weights.floats
        let (rows, columns) = (weights.shape[0], weights.shape[1])
        let channels = weights.shape[channelAxis]
        func index(_ channel: Int, _ other: Int) -> Int { channelAxis == 1 ? other * columns + channel : channel * columns + other }
        let others = channelAxis == 1 ? rows : columns
        var scales = [Float](repeating: 1, count: channels)
        var values = [Int8](repeating: 0, count: source.count)
        for channel in 0..<channels {
            var largest: Float = 0
            for other in 0..<others { largest = max(largest, abs(source[index(channel, other)])) }
            let scale = largest > 0 ? largest / limit : 1
            scales[channel] = scale
            for other in 0..<others {
                let q = (source[index(channel, other)] / scale).rounded(.toNearestOrEven)
                values[index(channel, other)] = Int8(max(-limit, min(limit, q)))
            }
        }
        self.shape = weights.shape
        self.values = values
        self.scales = scales
        self.axis = channelAxis
    }
}

// MARK: - Writing and reading tensors

private struct GraphFileWriter {
    let path: String
    var arrays: [NamedArray] = []
    private var used = Set<String>()

    init(path: String) { self.path = path }

    /// A dataset name for `hint`: the hint itself when HDF5 and ArrayFile take it, else a numbered one.
    private mutating func datasetName(_ hint: String) -> String {
        var name = hint
        if name.isEmpty || name.contains("/") || name == "." || used.contains(name) { name = "tensor_\(arrays.count)" }
        while used.contains(name) { name += "_" }
        used.insert(name)
        return name
    }

    mutating func tensor(_ tensor: Tensor, name: String) -> GraphFileTensor {
        let dataset = datasetName(name)
        let dtype = tensor.elementType.storeType
        arrays.append(NamedArray(name: dataset, dtype: dtype, shape: tensor.shape,
                                 bytes: tensor.storage.array(of: UInt8.self, count: tensor.count * tensor.elementType.byteCount)))
        return GraphFileTensor(name: name, dataset: dataset, dtype: dtype.rawValue, shape: tensor.shape, dequantize: nil)
    }

    mutating func quantized(_ weights: DynamicWeights, name: String) -> GraphFileTensor {
        let dataset = datasetName(name)
        arrays.append(NamedArray(name: dataset, dtype: .i8, shape: weights.shape, values: weights.values))
        let scales = datasetName(name + ".scale")
        arrays.append(NamedArray(name: scales, dtype: .f32, shape: [weights.scales.count], values: weights.scales))
        return GraphFileTensor(name: name, dataset: dataset, dtype: DType.i8.rawValue, shape: weights.shape,
                               dequantize: GraphFileDequantize(scale: scales, axis: weights.axis))
    }

    mutating func attribute(_ value: AttributeValue, field: String, hint: String) throws(EngineError) -> GraphFileAttribute {
        switch value {
        case let .float(f): return GraphFileAttribute(type: "float", f: Double(f))
        case let .int(i): return GraphFileAttribute(type: "int", i: i)
        case let .string(s): return GraphFileAttribute(type: "string", s: s)
        case let .floats(f): return GraphFileAttribute(type: "floats", floats: f.map(Double.init))
        case let .ints(i): return GraphFileAttribute(type: "ints", ints: i)
        case let .strings(s): return GraphFileAttribute(type: "strings", strings: s)
        case let .tensor(t): return GraphFileAttribute(type: "tensor", tensors: [tensor(t, name: hint)])
        case let .tensors(ts):
            var entries: [GraphFileTensor] = []
            for (index, t) in ts.enumerated() { entries.append(tensor(t, name: "\(hint).\(index)")) }
            return GraphFileAttribute(type: "tensors", tensors: entries)
        case .graph, .unsupported:
            throw .modelFile(path: path, field: field, detail: "a subgraph or unknown attribute kind has no form in a graph model file")
        }
    }
}

private struct GraphFileReader {
    let path: String
    var arrays: [String: NamedArray] = [:]
    var unused = Set<String>()

    init(path: String, arrays: [NamedArray]) {
        self.path = path
        for array in arrays { self.arrays[array.name] = array }
        unused = Set(self.arrays.keys)
    }

    private mutating func array(_ name: String, field: String) throws(EngineError) -> NamedArray {
        guard let array = arrays[name] else { throw .modelFile(path: path, field: "dataset \(name)", detail: "missing (named by \(field))") }
        unused.remove(name)
        return array
    }

    mutating func tensor(_ entry: GraphFileTensor, field: String) throws(EngineError) -> Tensor {
        func fail(_ detail: String) -> EngineError { .modelFile(path: path, field: "dataset \(entry.dataset)", detail: detail) }
        guard let dtype = DType(rawValue: entry.dtype), let elementType = ElementType(storeType: dtype) else {
            throw .modelFile(path: path, field: "\(field).dtype", detail: "'\(entry.dtype)' is not f32, i64, i8 or u8")
        }
        guard entry.shape.allSatisfy({ $0 >= 0 }), elementCount(entry.shape) <= maximumElementCount else {
            throw .modelFile(path: path, field: "\(field).shape", detail: "\(entry.shape) is not a valid shape")
        }
        let array = try self.array(entry.dataset, field: field)
        guard array.dtype == dtype else { throw fail("is \(array.dtype.rawValue), \(field) records \(dtype.rawValue)") }
        guard array.shape == entry.shape else { throw fail("has shape \(array.shape), \(field) records \(entry.shape)") }
        if let dequantize = entry.dequantize {
            guard dtype == .i8, entry.shape.indices.contains(dequantize.axis) else {
                throw .modelFile(path: path, field: "\(field).dequantize", detail: "needs i8 values and an axis of shape \(entry.shape)")
            }
            let scaleArray = try self.array(dequantize.scale, field: "\(field).dequantize.scale")
            guard scaleArray.dtype == .f32, scaleArray.shape == [entry.shape[dequantize.axis]] else {
                throw .modelFile(path: path, field: "dataset \(dequantize.scale)",
                                 detail: "is \(scaleArray.dtype.rawValue) \(scaleArray.shape), expected f32 [\(entry.shape[dequantize.axis])]")
            }
            let scales: [Float], values: [Int8]
            do throws(StoreError) {
                (scales, values) = (try scaleArray.values(as: Float.self), try array.values(as: Int8.self))
            } catch {
                throw fail(error.description)
            }
            // Per-axis: the channel of element `i` is (i / inner) % channels.
            let inner = entry.shape[(dequantize.axis + 1)...].reduce(1, *), channels = entry.shape[dequantize.axis]
            var floats = [Float](repeating: 0, count: values.count)
            for index in values.indices { floats[index] = Float(values[index]) * scales[(index / inner) % channels] }
            return Tensor(shape: entry.shape, floats: floats)
        }
        let tensor = Tensor(zeros: elementType, shape: entry.shape)
        tensor.storage.copy(from: array.bytes)
        return tensor
    }

    mutating func attribute(_ value: GraphFileAttribute, field: String) throws(EngineError) -> AttributeValue {
        func missing(_ key: String) -> EngineError { .modelFile(path: path, field: "\(field).\(key)", detail: "missing for type '\(value.type)'") }
        func float(_ double: Double) -> Float { Float(double) }
        switch value.type {
        case "float": guard let f = value.f else { throw missing("f") }; return .float(Float(f))
        case "int": guard let i = value.i else { throw missing("i") }; return .int(i)
        case "string": guard let s = value.s else { throw missing("s") }; return .string(s)
        case "floats": guard let f = value.floats else { throw missing("floats") }; return .floats(f.map(float))
        case "ints": guard let i = value.ints else { throw missing("ints") }; return .ints(i)
        case "strings": guard let s = value.strings else { throw missing("strings") }; return .strings(s)
        case "tensor", "tensors":
            guard let entries = value.tensors, value.type == "tensors" || entries.count == 1 else { throw missing("tensors") }
            var tensors: [Tensor] = []
            for (index, entry) in entries.enumerated() { tensors.append(try tensor(entry, field: "\(field).tensors[\(index)]")) }
            return value.type == "tensor" ? .tensor(tensors[0]) : .tensors(tensors)
        default:
            throw .modelFile(path: path, field: "\(field).type", detail: "'\(value.type)' is not float, int, string, floats, ints, strings, tensor or tensors")
        }
    }
}

extension ElementType {
    /// The StokeStore dtype of this element type's datasets.
    var storeType: DType {
        switch self {
        case .float32: .f32
        case .int64: .i64
        case .uint8: .u8
        case .int8: .i8
        }
    }

    init?(storeType: DType) {
        switch storeType {
        case .f32: self = .float32
        case .i64: self = .int64
        case .u8: self = .uint8
        case .i8: self = .int8
        default: return nil
        }
    }
}

// MARK: - JSON records

private struct GraphFileHeader: Decodable {
    var format: String?
    var version: Int?
}

private struct GraphFileRecord: Codable {
    var format: String
    var version: Int
    var opset: Int
    var name: String?
    var inputs: [GraphFileValue]
    var outputs: [GraphFileValue]
    var nodes: [GraphFileNode]
    var tensors: [GraphFileTensor]
    var quantization: String?
    var weight_range: String?
}

/// A graph input or output; `shape` entries are an extent, a symbolic name, or null (unknown).
private struct GraphFileValue: Codable {
    var name: String
    var elem_type: Int
    var shape: [GraphFileDimension]?

    init(_ info: ValueInfo) {
        name = info.name
        elem_type = info.onnxElementType
        shape = info.shape?.map(GraphFileDimension.init)
    }

    func info(field: String, path: String) throws(EngineError) -> ValueInfo {
        guard !name.isEmpty else { throw .modelFile(path: path, field: "\(field).name", detail: "is empty") }
        return ValueInfo(name: name, onnxElementType: elem_type, shape: shape?.map(\.dimension))
    }
}

private struct GraphFileDimension: Codable {
    var dimension: Dimension

    init(_ dimension: Dimension) { self.dimension = dimension }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            dimension = .unknown
        } else if let value = try? container.decode(Int.self) {
            dimension = .fixed(value)
        } else {
            dimension = .symbolic(try container.decode(String.self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch dimension {
        case let .fixed(value): try container.encode(value)
        case let .symbolic(name): try container.encode(name)
        case .unknown: try container.encodeNil()
        }
    }
}

private struct GraphFileNode: Codable {
    var name: String
    var op: String
    var domain: String?
    var inputs: [String]
    var outputs: [String]
    var attributes: [String: GraphFileAttribute]?
}

/// One attribute: `type` says which one of the other keys holds the value. Floats are written as
/// JSON doubles, which hold every float exactly.
private struct GraphFileAttribute: Codable {
    var type: String
    var f: Double?
    var i: Int64?
    var s: String?
    var floats: [Double]?
    var ints: [Int64]?
    var strings: [String]?
    var tensors: [GraphFileTensor]?
}

/// Where an initializer's (or attribute tensor's) values are: the dataset, its dtype and shape, and
/// for int8-stored weights the per-channel scales that turn them back into float32.
private struct GraphFileTensor: Codable {
    var name: String
    var dataset: String
    var dtype: String
    var shape: [Int]
    var dequantize: GraphFileDequantize?
}

private struct GraphFileDequantize: Codable {
    /// The f32 dataset of one scale per index of `axis`.
    var scale: String
    var axis: Int
}
