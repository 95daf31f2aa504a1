/// Choices for `Model.quantizedStatic`.
public struct StaticQuantizationOptions: Sendable {
    /// One weight scale per output channel (true) or one per weight tensor (false, `--per-tensor`).
    public var perChannel = true
    /// Names of Conv/Gemm/MatMul nodes left in FP32 (mixed precision); see `Model.quantizableNodes`.
    public var keepFP32: Set<String> = []
    /// The weight range (`.s7` by default: exact and fast u8 x s8 kernels on CPUs without VNNI).
    public var weightRange: WeightRange = .s7

    public init() {}
}

/// Where static quantization puts Q/DQ pairs around one quantizable node.
struct QuantizationPoint {
    /// Index of the node in the base graph.
    var node: Int
    /// Its activation input.
    var input: String
    /// Its output, or the output of the ReLU that is that output's only reader.
    var output: String
}

/// Builds the QDQ graph (the form onnxruntime's `quantize_static` writes).
enum StaticQuantizer {
    static func int(_ node: Node, _ key: String) -> Int64? {
        if case let .int(value)? = node.attributes[key] { return value }
        return nil
    }

    /// Whether `node` is a Conv (2-D, group 1), Gemm (transA 0, alpha = beta = 1) or MatMul whose
    /// weights (and bias) are float constants of the expected ranks.
    static func isQuantizable(_ node: Node, _ graph: Graph) -> Bool {
        guard QDQMatcher.isDefault(node), node.outputs.count == 1, node.inputs.count >= 2,
              graph.initializers[node.inputs[0]] == nil,
              let weights = graph.initializers[node.inputs[1]], weights.elementType == .float32 else { return false }
        let channels: Int
        switch node.opType {
        case "Conv":
            guard weights.shape.count == 4, (int(node, "group") ?? 1) == 1 else { return false }
            channels = weights.shape[0]
        case "Gemm":
            guard weights.shape.count == 2, (int(node, "transA") ?? 0) == 0 else { return false }
            if case let .float(alpha)? = node.attributes["alpha"], alpha != 1 { return false }
            if case let .float(beta)? = node.attributes["beta"], beta != 1 { return false }
            channels = weights.shape[(int(node, "transB") ?? 0) != 0 ? 0 : 1]
        case "MatMul":
            guard weights.shape.count == 2, node.inputs.count == 2 else { return false }
            return true
        default:
            return false
        }
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard let bias = graph.initializers[node.inputs[2]], bias.elementType == .float32, bias.count == channels else { return false }
        }
        return true
    }

    /// The quantizable nodes of a (topologically sorted) graph, in order.
    static func points(_ graph: Graph) -> [QuantizationPoint] {
        let (_, consumers) = QDQMatcher.index(graph)
        let outputs = Set(graph.outputs.map(\.name))
        var points: [QuantizationPoint] = []
        for (index, node) in graph.nodes.enumerated() where isQuantizable(node, graph) {
            var output = node.outputs[0]
            if !outputs.contains(output), let readers = consumers[output], readers.count == 1,
               graph.nodes[readers[0]].opType == "Relu", QDQMatcher.isDefault(graph.nodes[readers[0]]) {
                output = graph.nodes[readers[0]].outputs[0]
            }
            points.append(QuantizationPoint(node: index, input: node.inputs[0], output: output))
        }
        return points
    }

    /// Asymmetric uint8 parameters for a range (widened to hold 0, as onnxruntime does).
    static func activation(_ range: ClosedRange<Float>) -> ActivationQuantization {
        let (low, high) = (min(range.lowerBound, 0), max(range.upperBound, 0))
        guard high > low else { return ActivationQuantization(scale: 1, zeroPoint: 0) }
        let scale = (high - low) / 255
        return ActivationQuantization(scale: scale, zeroPoint: Int32(max(0, min(255, (-low / scale).rounded(.toNearestOrEven)))))
    }

    /// Symmetric int8 weights in [-r, r] (r = `range.largest`) with one scale per slice along `axis` (or one in all).
    static func weights(_ tensor: Tensor, axis: Int, perChannel: Bool, range: WeightRange) -> (values: [Int8], scales: [Float]) {
        let limit = Float(range.largest)
        let values = tensor.floats
        let channels = perChannel ? tensor.shape[axis] : 1
        let inner = tensor.shape[(axis + 1)...].reduce(1, *)
        func channel(_ index: Int) -> Int { perChannel ? (index / inner) % channels : 0 }
        var largest = [Float](repeating: 0, count: channels)
        for (index, value) in values.enumerated() { largest[channel(index)] = max(largest[channel(index)], abs(value)) }
        let scales = largest.map { $0 > 0 ? $0 / limit : 1 }
        let quantized = values.enumerated().map { index, value in
            Int8(max(-limit, min(limit, (value / scales[channel(index)]).rounded(.toNearestOrEven))))
        }
        return (quantized, scales)
    }
}

extension Model {
    /// The graph static quantization and calibration work on: the source graph with constants and
    /// BatchNormalization folded (still standard ONNX), no Stoke fusions.
    func quantizationBaseGraph() throws(EngineError) -> Graph {
        var graph = sourceGraph
        if let node = graph.nodes.first(where: { $0.opType == "QuantizeLinear" || $0.opType == "DequantizeLinear" || $0.opType.hasPrefix("Stoke") }) {
            throw EngineError.invalidModel("the model is already quantized (node '\(node.name)' is \(node.opType)); quantize the FP32 model")
        }
        try GraphPasses.topologicalSort(&graph)
        try GraphPasses.foldConstants(&graph, opset: opset)
        GraphPasses.foldBatchNorm(&graph)
        GraphPasses.removeDeadNodes(&graph)
        return graph
    }

    /// Names of the Conv/Gemm/MatMul nodes static quantization converts (for sensitivity analysis
    /// and `StaticQuantizationOptions.keepFP32`), in graph order.
    public var quantizableNodes: [String] {
        guard let graph = try? quantizationBaseGraph() else { return [] }
        return StaticQuantizer.points(graph).map { graph.nodes[$0.node].name }
    }

    /// The statically quantized model in QDQ form: standard ONNX QuantizeLinear/DequantizeLinear
    /// pairs around FP32 Conv/Gemm/MatMul nodes (int8 symmetric weights, per output channel unless
    /// `options.perChannel` is false; int32 biases; uint8 asymmetric activations with the
    /// calibrated ranges), loaded with the QDQ fusion pass so it runs on Stoke's INT8 kernels.
    /// `sourceGraph` of the result is the QDQ graph, which `onnxBytes()` writes.
    ///
    /// - Throws: `EngineError.badInput` when the table lacks a needed range or `keepFP32` names a
    ///   node that does not exist; `.invalidModel` for an already quantized model; per-channel
    ///   weights need opset 13 (per-axis DequantizeLinear).
    public func quantizedStatic(calibration: CalibrationTable, options: StaticQuantizationOptions = .init()) throws(EngineError) -> Model {
        var graph = try quantizationBaseGraph()
        let nodeNames = Set(graph.nodes.map(\.name))
        if let unknown = options.keepFP32.sorted().first(where: { !nodeNames.contains($0) }) {
            throw EngineError.badInput("keepFP32 names '\(unknown)', which is not a node of the model (quantizable: \(quantizableNodes.joined(separator: ", ")))")
        }
        guard opset >= 10 else { throw EngineError.invalidModel("static quantization needs opset 10 or later (QuantizeLinear); the model is opset \(opset)") }
        if options.perChannel && opset < 13 {
            throw EngineError.invalidModel("per-channel weights need opset 13 (per-axis DequantizeLinear); the model is opset \(opset): use per-tensor weights")
        }
        let points = StaticQuantizer.points(graph).filter { !options.keepFP32.contains(graph.nodes[$0.node].name) }
        let (producer, consumers) = QDQMatcher.index(graph)

        var added: [Node] = []
        var quantizedValues: [String: ActivationQuantization] = [:]   // value → parameters of the DQ that now produces it
        var dequantizedInputs: [String: String] = [:]                  // activation → its Q/DQ'd copy
        var quantizedWeights: [String: String] = [:]

        func range(_ name: String, for node: String) throws(EngineError) -> ClosedRange<Float> {
            guard let range = calibration.ranges[name] else {
                throw EngineError.badInput("the calibration table has no range for '\(name)' (used by node '\(node)'); calibrate this model")
            }
            return range
        }
        func addPair(_ value: String, _ parameters: ActivationQuantization, from source: String, to target: String) {
            let scale = "\(value)_scale", zero = "\(value)_zero_point", bytes = "\(value)_quantized"
            graph.initializers[scale] = Tensor(shape: [], floats: [parameters.scale])
            graph.initializers[zero] = Tensor(shape: [], uint8s: [UInt8(parameters.zeroPoint)])
            added.append(Node(name: "\(value)_QuantizeLinear", opType: "QuantizeLinear", inputs: [source, scale, zero], outputs: [bytes]))
            added.append(Node(name: "\(value)_DequantizeLinear", opType: "DequantizeLinear", inputs: [bytes, scale, zero], outputs: [target]))
        }
        /// The parameters a value inherits through data movement from a value already Q/DQ'd.
        func inherited(_ name: String) -> ActivationQuantization? {
            var current = name
            while true {
                if let parameters = quantizedValues[current] { return parameters }
                guard let index = producer[current], QDQMatcher.movesBytes(graph.nodes[index], graph) else { return nil }
                current = graph.nodes[index].inputs[0]
            }
        }

        for point in points {
            let node = graph.nodes[point.node]
            // Output first in graph order is not needed: inputs read values of earlier points, and
            // points are visited in topological order.
            let input: String
            let inputParameters: ActivationQuantization
            if let parameters = quantizedValues[point.input] {
                input = point.input
                inputParameters = parameters
            } else {
                if let parameters = inherited(point.input) {
                    inputParameters = parameters
                } else {
                    inputParameters = StaticQuantizer.activation(try range(point.input, for: node.name))
                }
                input = "\(point.input)_dequantized"
                if dequantizedInputs[point.input] == nil {
                    addPair(point.input, inputParameters, from: point.input, to: input)
                    dequantizedInputs[point.input] = input
                }
            }

            // Weights: int8, symmetric, along the output-channel axis.
            let weightName = node.inputs[1]
            let weightTensor = graph.initializers[weightName]!
            let transB = (StaticQuantizer.int(node, "transB") ?? 0) != 0
            let axis = node.opType == "Conv" || (node.opType == "Gemm" && transB) ? 0 : 1
            let (values, scales) = StaticQuantizer.weights(weightTensor, axis: axis, perChannel: options.perChannel, range: options.weightRange)
            let weightKey = "\(weightName)|\(axis)"
            let dequantizedWeights: String
            if let existing = quantizedWeights[weightKey] {
                dequantizedWeights = existing
            } else {
                dequantizedWeights = "\(weightName)_dequantized"
                let (bytes, scale, zero) = ("\(weightName)_quantized", "\(weightName)_scale", "\(weightName)_zero_point")
                graph.initializers[bytes] = Tensor(shape: weightTensor.shape, int8s: values)
                graph.initializers[scale] = Tensor(shape: options.perChannel ? [scales.count] : [], floats: scales)
                graph.initializers[zero] = Tensor(shape: options.perChannel ? [scales.count] : [], int8s: [Int8](repeating: 0, count: scales.count))
                added.append(Node(name: "\(weightName)_DequantizeLinear", opType: "DequantizeLinear", inputs: [bytes, scale, zero],
                                  outputs: [dequantizedWeights], attributes: options.perChannel ? ["axis": .int(Int64(axis))] : [:]))
                quantizedWeights[weightKey] = dequantizedWeights
            }

            var rewritten = node
            rewritten.inputs[0] = input
            rewritten.inputs[1] = dequantizedWeights
            // Bias: int32 in units of x_scale · w_scale (zero point 0), as onnxruntime writes it.
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                let biasName = node.inputs[2]
                let bias = graph.initializers[biasName]!.floats
                let biasScales = bias.indices.map { inputParameters.scale * scales[scales.count == 1 ? 0 : $0] }
                let quantized = bias.indices.map { Int64(max(-2_147_483_520, min(2_147_483_520, (bias[$0] / biasScales[$0]).rounded(.toNearestOrEven)))) }
                let (bytes, scale, output) = ("\(node.name)_bias_quantized", "\(node.name)_bias_scale", "\(node.name)_bias_dequantized")
                graph.initializers[bytes] = Tensor(shape: [bias.count], int64s: quantized)
                graph.initializers[scale] = Tensor(shape: [bias.count], floats: biasScales)
                added.append(Node(name: "\(node.name)_bias_DequantizeLinear", opType: "DequantizeLinear", inputs: [bytes, scale],
                                  outputs: [output], attributes: ["axis": .int(0)]))
                rewritten.inputs[2] = output
            }
            graph.nodes[point.node] = rewritten

            // Output: the producer writes `<v>_prequantized`; the DQ writes `v` itself, so every reader
            // (graph outputs included) sees the quantized value.
            let outputParameters = StaticQuantizer.activation(try range(point.output, for: node.name))
            let raw = "\(point.output)_prequantized"
            let writer = point.output == node.outputs[0] ? point.node : consumers[node.outputs[0]]![0]
            graph.nodes[writer].outputs[0] = raw
            addPair(point.output, outputParameters, from: raw, to: point.output)
            quantizedValues[point.output] = outputParameters
        }
        graph.nodes += added
        try GraphPasses.topologicalSort(&graph)
        GraphPasses.removeDeadNodes(&graph)
        var model = try Model(graph: graph, opset: opset)
        model.quantizedNodeCount = points.count
        model.weightRange = options.weightRange
        return model
    }

    /// Standard ONNX bytes of this model that onnxruntime runs: the source graph (FP32 or QDQ) with
    /// any fused activation or pooling written as separate nodes and int32 biases of
    /// DequantizeLinear written as int32.
    ///
    /// - Throws: `EngineError.unsupportedOperator` for a Stoke-internal operator (a model from
    ///   `quantizedDynamic()`), which has no standard ONNX form.
    public func onnxBytes() throws(EngineError) -> [UInt8] {
        let graph = sourceGraph
        for node in graph.nodes where node.opType.hasPrefix("Stoke") || node.attributes.keys.contains("stoke.original_op") {
            throw EngineError.unsupportedOperator(op: node.opType, domain: "Stoke-internal; no standard ONNX form, export the FP32 or QDQ model instead",
                                                  node: node.name)
        }
        var int32: Set<String> = []
        for node in graph.nodes where node.opType == "DequantizeLinear" {
            if let tensor = graph.initializers[node.inputs[0]], tensor.elementType == .int64 { int32.insert(node.inputs[0]) }
        }
        return ONNXExport.serialize(graph: graph, opset: opset, int32Initializers: int32)
    }
}
