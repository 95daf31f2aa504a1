import CStokeKernels
import StokeStore

/// The operators the engine implements, by ONNX op type (default domain).
enum OperatorRegistry {
    typealias Planner = @Sendable (OpContext) throws(EngineError) -> OpPlan

    static let operators: [String: Planner] = [
        "Relu": ElementwiseOps.unary(STOKE_UNARY_RELU.rawValue32),
        "LeakyRelu": ElementwiseOps.leakyRelu,
        "Sigmoid": ElementwiseOps.unary(STOKE_UNARY_SIGMOID.rawValue32),
        "Tanh": ElementwiseOps.unary(STOKE_UNARY_TANH.rawValue32),
        "Erf": ElementwiseOps.unary(STOKE_UNARY_ERF.rawValue32),
        "Gelu": ElementwiseOps.gelu,
        "Exp": ElementwiseOps.unary(STOKE_UNARY_EXP.rawValue32),
        "Neg": ElementwiseOps.unary(STOKE_UNARY_NEG.rawValue32),
        "Abs": ElementwiseOps.unary(STOKE_UNARY_ABS.rawValue32),
        "Sqrt": ElementwiseOps.unary(STOKE_UNARY_SQRT.rawValue32),
        "Clip": ElementwiseOps.clip,
        "Add": ElementwiseOps.binary(0),
        "Sub": ElementwiseOps.binary(1),
        "Mul": ElementwiseOps.binary(2),
        "Div": ElementwiseOps.binary(3),
        "Pow": ElementwiseOps.binary(6),
        "Max": ElementwiseOps.variadic(4),
        "Min": ElementwiseOps.variadic(5),
        "Sum": ElementwiseOps.variadic(0),
        "Mean": ElementwiseOps.variadic(0, mean: true),
        "LayerNormalization": ElementwiseOps.layerNormalization,
        "Split": ShapeOps.split,
        "Elu": ElementwiseOps.parameterized(STOKE_UNARY_ELU, alpha: ("alpha", 1)),
        "Selu": ElementwiseOps.parameterized(STOKE_UNARY_SELU, alpha: ("alpha", 1.67326319217681884765625),
                                             beta: ("gamma", 1.05070102214813232421875)),
        "HardSigmoid": ElementwiseOps.parameterized(STOKE_UNARY_HARD_SIGMOID, alpha: ("alpha", 0.2), beta: ("beta", 0.5)),
        "HardSwish": ElementwiseOps.parameterized(STOKE_UNARY_HARD_SWISH),
        "Softplus": ElementwiseOps.parameterized(STOKE_UNARY_SOFTPLUS),
        "Softsign": ElementwiseOps.parameterized(STOKE_UNARY_SOFTSIGN),
        "ThresholdedRelu": ElementwiseOps.parameterized(STOKE_UNARY_THRESHOLDED_RELU, alpha: ("alpha", 1)),
        "Floor": ElementwiseOps.parameterized(STOKE_UNARY_FLOOR),
        "Ceil": ElementwiseOps.parameterized(STOKE_UNARY_CEIL),
        "PRelu": ElementwiseOps.prelu,
        "Tile": ShapeOps.tile,
        "ConvTranspose": LinearOps.convTranspose,
        "InstanceNormalization": LinearOps.instanceNormalization,
        "LRN": LinearOps.localResponseNormalization,
        "Equal": ElementwiseOps.compare(0),
        "Less": ElementwiseOps.compare(1),
        "LessOrEqual": ElementwiseOps.compare(2),
        "Greater": ElementwiseOps.compare(3),
        "GreaterOrEqual": ElementwiseOps.compare(4),
        "And": ElementwiseOps.compare(5),
        "Or": ElementwiseOps.compare(6),
        "Xor": ElementwiseOps.compare(7),
        "Not": ElementwiseOps.not,
        "Where": ElementwiseOps.where,
        "Range": ShapeOps.range,
        "Softmax": ElementwiseOps.softmax(log: false),
        "LogSoftmax": ElementwiseOps.softmax(log: true),
        "Gemm": LinearOps.gemm,
        dynamicQuantizedLinear: QuantizedOps.dynamicLinear,
        "MatMul": LinearOps.matMul,
        "Conv": LinearOps.conv,
        "MaxPool": LinearOps.pool(kind: 0),
        "AveragePool": LinearOps.pool(kind: 1),
        "GlobalAveragePool": LinearOps.globalPool(max: false),
        "GlobalMaxPool": LinearOps.globalPool(max: true),
        "BatchNormalization": LinearOps.batchNormalization,
        "ReduceMean": LinearOps.reduce(.mean),
        "ReduceSum": LinearOps.reduce(.sum),
        "ReduceMax": LinearOps.reduce(.max),
        "ReduceMin": LinearOps.reduce(.min),
        "Log": ElementwiseOps.unary(STOKE_UNARY_LOG.rawValue32),
        "Reciprocal": ElementwiseOps.unary(STOKE_UNARY_RECIPROCAL.rawValue32),
        "Cast": ElementwiseOps.cast,
        "CastLike": ElementwiseOps.cast,
        "Identity": ShapeOps.identity,
        "Dropout": ShapeOps.dropout,
        "Flatten": ShapeOps.flatten,
        "Reshape": ShapeOps.reshape,
        "Squeeze": ShapeOps.squeeze,
        "Unsqueeze": ShapeOps.unsqueeze,
        "Transpose": ShapeOps.transpose,
        "Concat": ShapeOps.concat,
        "Shape": ShapeOps.shape,
        "Size": ShapeOps.size,
        "Constant": ShapeOps.constant,
        "ConstantOfShape": ShapeOps.constantOfShape,
        "Gather": ShapeOps.gather,
        "Slice": ShapeOps.slice,
        "Pad": ShapeOps.pad,
        "Expand": ShapeOps.expand,
        "QuantizeLinear": QuantizedOps.quantizeLinear,
        "DequantizeLinear": QuantizedOps.dequantizeLinear,
        quantizedConvOp: QuantizedOps.quantizedConv,
        quantizedGemmOp: QuantizedOps.quantizedGemm,
        quantizedMaxPoolOp: QuantizedOps.quantizedMaxPool,
    ]

    /// Operators whose planners handle uint8/int8 inputs themselves (data movement and the
    /// quantization operators); every other operator refuses them.
    static let quantizedTypeOperators: Set<String> = [
        "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Size", "Constant",
        "QuantizeLinear", "DequantizeLinear", quantizedConvOp, quantizedGemmOp, quantizedMaxPoolOp,
    ]

    /// Whether the engine can run `node` (checked when a model loads).
    static func supports(_ node: Node) -> Bool {
        (node.domain.isEmpty || node.domain == "ai.onnx") && operators[node.opType] != nil
    }

    static func planner(for node: Node) throws(EngineError) -> Planner {
        guard supports(node), let planner = operators[node.opType] else {
            throw EngineError.unsupportedOperator(op: node.opType, domain: node.domain, node: node.name)
        }
        if quantizedTypeOperators.contains(node.opType) { return planner }
        return QuantizedOps.acceptingNarrowIntegers(planner)
    }

    /// Runs `node` on constant inputs now and returns its outputs (constant folding); what it makes is
    /// checked against `budget` first.
    static func evaluate(_ node: Node, opset: Int64, inputs: [Tensor?], budget: MemoryBudget = .current,
                         context: ExecutionContext = .default) throws(EngineError) -> [Tensor] {
        let planner = try planner(for: node)
        let inputCount = inputs.count
        let context = OpContext(node: node, opset: opset, inputs: inputs.map { $0.map(PlanValue.init) },
                                inputSlots: Array(0..<inputCount),
                                outputSlots: Array(inputCount..<(inputCount + node.outputs.count)), budget: budget,
                                execution: context)
        switch try planner(context) {
        case let .constants(tensors):
            return tensors
        case let .alias(_, shape):
            guard let source = inputs.first ?? nil else { throw context.fail("alias of a missing input") }
            return [source.reshaped(shape)]
        case let .kernel(specs, kernel):
            // Outputs made now are constants: checked together against the budget even when planning shapes.
            for (index, spec) in specs.enumerated() { try context.checkOutput(spec.0, spec.1, index: index, constant: true) }
            var total: Int? = 0
            for spec in specs {
                guard let sum = total, let bytes = MemoryBudget.product([elementCount(spec.1), spec.0.byteCount]) else { total = nil; break }
                let (next, overflow) = sum.addingReportingOverflow(bytes)
                total = overflow ? nil : next
            }
            try context.checkBudget(total, for: "outputs folded at plan time", always: true)
            let outputs = specs.map { Tensor(zeros: $0.0, shape: $0.1) }
            let table = SlotTable(count: inputCount + max(outputs.count, node.outputs.count))
            for (index, tensor) in inputs.enumerated() {
                if let tensor { unsafe table.slots.set(index, tensor.storage.pointer) }
            }
            for (index, tensor) in outputs.enumerated() { unsafe table.slots.set(inputCount + index, tensor.storage.pointer) }
            kernel(table.slots)
            return outputs
        }
    }
}
