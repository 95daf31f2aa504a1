import Foundation

/// Which graph rewrites run when a model loads. All are on by default; turning them off is for
/// tests and for comparing against the unoptimized graph.
public struct OptimizationOptions: Sendable {
    /// Evaluate nodes whose inputs are all constants once, at load time.
    public var foldConstants = true
    /// Fold inference BatchNormalization into a preceding Conv or Gemm's weights and bias.
    public var foldBatchNorm = true
    /// Apply a Relu/LeakyRelu inside the preceding Conv/Gemm/MatMul kernel.
    public var fuseActivations = true
    /// Apply a 2x2, stride-2 MaxPool inside the preceding Conv, image by image while its output is
    /// in cache (after activation fusion, so Conv → Relu → MaxPool becomes one kernel).
    public var fusePooling = true
    /// Remove nodes and initializers that no graph output depends on.
    public var removeDeadNodes = true
    /// Run QDQ patterns (DequantizeLinear → Conv/Gemm/MatMul [→ Relu] → QuantizeLinear, and
    /// MaxPool/Flatten/Reshape between matching Q/DQ pairs) as fused u8 operators
    /// (`GraphPasses.fuseQDQ`), so quantized activations flow between INT8 layers as bytes.
    public var fuseQDQ = true

    public init() {}

    /// No rewrites at all: the graph runs as written.
    public static let none: OptimizationOptions = {
        var options = OptimizationOptions()
        options.foldConstants = false
        options.foldBatchNorm = false
        options.fuseActivations = false
        options.fusePooling = false
        options.removeDeadNodes = false
        options.fuseQDQ = false
        return options
    }()
}

/// A loaded, validated and optimized inference graph. Immutable and `Sendable`: create one
/// `Session` per thread that runs it.
public struct Model: Sendable {
    /// The graph after the load-time passes, nodes in topological order.
    public let graph: Graph
    /// The graph as given, before any load-time pass: standard ONNX that `onnxBytes()` writes
    /// (the executed `graph` may hold Stoke's fused operators).
    public let sourceGraph: Graph
    /// The default-domain ONNX opset the graph's operators follow.
    public let opset: Int64
    /// Inputs a caller feeds, with declared (possibly symbolic) shapes.
    public var inputs: [ValueInfo] { graph.inputs }
    /// Outputs a run produces.
    public var outputs: [ValueInfo] { graph.outputs }

    /// The batch size the first input declares when its leading axis is a fixed number (1 for
    /// `torch.onnx.export`'s default), nil when it is symbolic or undeclared. Every run must feed
    /// exactly this many samples, so measuring, calibrating and streaming use it as their batch size.
    public var fixedBatchSize: Int? {
        guard let first = inputs.first?.shape?.first, case let .fixed(value) = first, value > 0 else { return nil }
        return value
    }

    /// Loads an ONNX model file (`.onnx`, protobuf ModelProto with embedded weights).
    ///
    /// - Throws: `EngineError.io` if the file cannot be read; `.malformedProtobuf` naming the
    ///   field for corrupt bytes; `.externalDataUnsupported` for models with external weight files;
    ///   `.unsupportedOperator` naming the operator and node.
    public static func load(onnx path: String, options: OptimizationOptions = .init()) throws(EngineError) -> Model {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngineError.io(path: path, detail: "file does not exist or is not readable")
        }
        return try load(onnxBytes: [UInt8](data), options: options)
    }

    /// Loads an ONNX model from the bytes of a serialized ModelProto.
    public static func load(onnxBytes bytes: [UInt8], options: OptimizationOptions = .init()) throws(EngineError) -> Model {
        let model = try ONNXDecoder.decodeModel(bytes)
        try rejectInternalOperators(model.graph)
        return try Model(graph: model.graph, opset: model.opsetVersion, options: options)
    }

    /// Stoke's fused operators (`Stoke…`) and their `stoke.…` attributes are made by its passes from
    /// checked parameters; a file that spells them itself would bypass those checks, so it is refused.
    static func rejectInternalOperators(_ graph: Graph) throws(EngineError) {
        for node in graph.nodes {
            if node.opType.hasPrefix("Stoke") {
                throw EngineError.unsupportedOperator(op: node.opType, domain: node.domain, node: node.name)
            }
            if let key = node.attributes.keys.first(where: { $0.hasPrefix("stoke.") }) {
                throw EngineError.invalidModel("node '\(node.name)' (\(node.opType)): attribute '\(key)' is internal to Stoke")
            }
        }
    }

    /// Builds a model from a graph (native models and tests), validating and optimizing it.
    public init(graph: Graph, opset: Int64, options: OptimizationOptions = .init()) throws(EngineError) {
        for node in graph.nodes where !OperatorRegistry.supports(node) {
            throw EngineError.unsupportedOperator(op: node.opType, domain: node.domain, node: node.name)
        }
        // Every supported operator reads a first input (except Constant) and writes a first output; the
        // passes and planners rely on both, so a node without them is refused here, by name.
        for node in graph.nodes {
            guard let output = node.outputs.first, !output.isEmpty else {
                throw EngineError.invalidModel("node '\(node.name)' (\(node.opType)) has no output")
            }
            if node.opType != "Constant", node.inputs.first?.isEmpty ?? true {
                throw EngineError.invalidModel("node '\(node.name)' (\(node.opType)) has no first input")
            }
        }
        // Every value has one definition (a graph input, an initializer or one node's output), as ONNX
        // requires: a second one would silently replace the first for every later reader.
        var definedBy: [String: String] = [:]
        for input in graph.inputs {
            if definedBy[input.name] != nil { throw EngineError.invalidModel("graph input '\(input.name)' is declared twice") }
            definedBy[input.name] = "graph input '\(input.name)'"
        }
        for name in graph.initializers.keys where definedBy[name] == nil { definedBy[name] = "initializer '\(name)'" }
        for node in graph.nodes {
            for output in node.outputs where !output.isEmpty {
                if let previous = definedBy[output] {
                    throw EngineError.invalidModel("value '\(output)' is defined twice: by \(previous) and by node '\(node.name)' (\(node.opType))")
                }
                definedBy[output] = "node '\(node.name)' (\(node.opType))"
            }
        }
        var listed = Set<String>()
        for output in graph.outputs where !listed.insert(output.name).inserted {
            throw EngineError.invalidModel("graph output '\(output.name)' is listed twice")
        }
        let available = Set(graph.nodes.flatMap(\.outputs) + graph.inputs.map(\.name) + graph.initializers.keys)
        for output in graph.outputs where !available.contains(output.name) {
            throw EngineError.invalidModel("graph output '\(output.name)' is never produced")
        }
        var graph = graph
        sourceGraph = graph
        try GraphPasses.topologicalSort(&graph)
        if options.fuseQDQ { try GraphPasses.fuseQDQ(&graph, opset: opset) }
        if options.foldConstants { try GraphPasses.foldConstants(&graph, opset: opset) }
        if options.foldBatchNorm { GraphPasses.foldBatchNorm(&graph) }
        if options.fuseActivations { GraphPasses.fuseActivations(&graph) }
        if options.fusePooling { GraphPasses.fuseMaxPool(&graph) }
        if options.removeDeadNodes { GraphPasses.removeDeadNodes(&graph) }
        self.graph = graph
        self.opset = opset
    }

    /// Linear nodes running in INT8 after `quantizedDynamic()`; 0 for an FP32 model.
    public internal(set) var quantizedNodeCount = 0

    /// The weight range of a quantized model (nil for an FP32 one); saved in model files as `weight_range`.
    public internal(set) var weightRange: WeightRange?

    /// Number of parameters: elements of float and int8 initializers, plus the biases fused INT8
    /// nodes carry as attributes (a statically quantized model has as many as its FP32 original).
    public var parameterCount: Int {
        parameterValues.reduce(0) { $0 + $1.count }
    }

    /// Parameters that are not zero (after unstructured pruning, fewer than `parameterCount`).
    public var nonzeroParameterCount: Int {
        parameterValues.reduce(0) { total, values in total + values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }
    }

    private var parameterValues: [[Float]] {
        // Scales and zero points of Q/DQ nodes are quantization metadata, and a Dropout's ratio is
        // configuration: neither is a parameter.
        let metadata = Set(graph.nodes.filter { ["QuantizeLinear", "DequantizeLinear", "Dropout"].contains($0.opType) }.flatMap { $0.inputs.dropFirst() })
        let weights = graph.initializers.filter { !metadata.contains($0.key) && ($0.value.elementType == .float32 || $0.value.elementType == .int8) }
            .map(\.value.floats)
        let biases = graph.nodes.compactMap { node -> [Float]? in
            if case let .floats(values)? = node.attributes["stoke.bias"] { return values }
            return nil
        }
        return weights + biases
    }

    /// Operator types and how many nodes use each, sorted by name.
    public var operatorCounts: [(op: String, count: Int)] {
        Dictionary(grouping: graph.nodes, by: \.opType).map { ($0.key, $0.value.count) }.sorted { $0.op < $1.op }
    }
}
