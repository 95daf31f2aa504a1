/// One batch of model inputs, with the labels of its samples when the store has them.
public struct EvaluationBatch: Sendable {
    public var inputs: [String: Tensor]
    /// One class index per sample of the batch, nil for unlabeled data.
    public var labels: [Int64]?

    public init(inputs: [String: Tensor], labels: [Int64]?) {
        self.inputs = inputs
        self.labels = labels
    }
}

/// How much quantizing one layer alone costs.
public struct LayerSensitivity: Sendable, Equatable {
    /// The Conv/Gemm/MatMul node.
    public var node: String
    public var op: String
    /// Multiply-accumulates per sample (what keeping the layer FP32 costs in speed).
    public var macs: Int
    /// Relative mean squared error of the model's first output with only this layer quantized:
    /// Σ(y_int8 − y_fp32)² / Σ y_fp32² over the calibration batches (dimensionless; 0 = no change).
    public var outputError: Double
    /// Top-1 accuracy (fraction) with only this layer quantized; nil without labeled batches.
    public var accuracy: Double?
    /// Whether the chosen plan leaves the layer in FP32.
    public var keptFP32: Bool
}

/// A mixed-precision choice: which layers stay FP32, and the model that results.
public struct MixedPrecisionPlan: Sendable {
    /// Every quantizable layer in graph order, with its sensitivity and precision.
    public var layers: [LayerSensitivity]
    /// The node names left FP32 (the caller's own plus those the policy added).
    public var keepFP32: Set<String>
    /// Top-1 accuracy (fraction) of the FP32 model and of `model` on the labeled batches.
    public var fp32Accuracy: Double?
    public var accuracy: Double?
    /// The statically quantized model with `keepFP32` left FP32.
    public var model: Model
}

/// Per-layer sensitivity analysis and the policy that keeps the most sensitive layers FP32.
public enum MixedPrecision {
    /// Measures each quantizable layer quantized alone (every other layer FP32) against the FP32 model.
    ///
    /// - Parameters:
    ///   - batches: calibration batches for the output error.
    ///   - labeled: batches with labels for accuracy (may be `batches`); empty: accuracy is nil.
    ///   - context: how the models run (threads, GEMM backend, convolution policy).
    /// - Throws: `EngineError` from quantizing or running the model.
    public static func sensitivity(of model: Model, calibration: CalibrationTable, options: StaticQuantizationOptions = .init(),
                                   batches: [EvaluationBatch], labeled: [EvaluationBatch], context: ExecutionContext = .default) throws(EngineError) -> [LayerSensitivity] {
        let nodes = model.quantizableNodes
        let reference = try outputs(of: model, batches, context: context)
        let macs = try model.macsPerSample()
        var layers: [LayerSensitivity] = []
        for node in nodes {
            var alone = options
            alone.keepFP32 = Set(nodes).subtracting([node])
            let quantized = try model.quantizedStatic(calibration: calibration, options: alone)
            let error = relativeError(try outputs(of: quantized, batches, context: context), reference)
            let op = model.graph.nodes.first { $0.name == node }?.opType ?? "?"
            layers.append(LayerSensitivity(node: node, op: op, macs: macs[node] ?? 0, outputError: error,
                                           accuracy: try accuracy(of: quantized, labeled, context: context),
                                           keptFP32: options.keepFP32.contains(node)))
        }
        return layers
    }

    /// Starts fully quantized (but for `options.keepFP32`) and keeps the most sensitive layer FP32,
    /// one at a time, until top-1 accuracy on `labeled` is at most `maxAccuracyDrop` below FP32's:
    /// the fewest FP32 layers, so the most INT8 speed, for the bound. Sensitivity is the accuracy
    /// with the layer quantized alone (lowest first), ties broken by the output error.
    ///
    /// - Parameters:
    ///   - maxAccuracyDrop: the allowed drop as a fraction (0.003 = 0.3 percentage points).
    /// - Throws: `EngineError.badInput` when `labeled` has no labels; errors of quantizing or running.
    public static func plan(for model: Model, calibration: CalibrationTable, options: StaticQuantizationOptions = .init(),
                            batches: [EvaluationBatch], labeled: [EvaluationBatch], maxAccuracyDrop: Double,
                            context: ExecutionContext = .default) throws(EngineError) -> MixedPrecisionPlan {
        guard let fp32Accuracy = try accuracy(of: model, labeled, context: context) else {
            throw .badInput("an accuracy bound needs labeled batches (a store with a label field)")
        }
        var layers = try sensitivity(of: model, calibration: calibration, options: options, batches: batches, labeled: labeled, context: context)
        let ranking = layers.filter { !options.keepFP32.contains($0.node) }.sorted {
            ($0.accuracy ?? 0, -$0.outputError) < ($1.accuracy ?? 0, -$1.outputError)
        }
        var chosen = options
        var quantized = try model.quantizedStatic(calibration: calibration, options: chosen)
        var current = try accuracy(of: quantized, labeled, context: context) ?? 0
        for layer in ranking where fp32Accuracy - current > maxAccuracyDrop {
            chosen.keepFP32.insert(layer.node)
            quantized = try model.quantizedStatic(calibration: calibration, options: chosen)
            current = try accuracy(of: quantized, labeled, context: context) ?? 0
        }
        for index in layers.indices { layers[index].keptFP32 = chosen.keepFP32.contains(layers[index].node) }
        return MixedPrecisionPlan(layers: layers, keepFP32: chosen.keepFP32, fp32Accuracy: fp32Accuracy, accuracy: current, model: quantized)
    }

    /// The first output of `model` for each batch.
    static func outputs(of model: Model, _ batches: [EvaluationBatch], context: ExecutionContext) throws(EngineError) -> [[Float]] {
        let session = Session(model: model, context: context)
        var result: [[Float]] = []
        for batch in batches {
            guard let output = try session.run(batch.inputs)[model.outputs[0].name] else {
                throw .badInput("the model produced no output '\(model.outputs[0].name)'")
            }
            result.append(output.floats)
        }
        return result
    }

    /// Σ(a − b)² / Σ b² over all batches (0 when b is all zeros and a equals it).
    static func relativeError(_ actual: [[Float]], _ reference: [[Float]]) -> Double {
        var squaredError = 0.0, squaredReference = 0.0
        for (a, b) in zip(actual, reference) {
            for (x, y) in zip(a, b) {
                squaredError += Double(x - y) * Double(x - y)
                squaredReference += Double(y) * Double(y)
            }
        }
        return squaredReference > 0 ? squaredError / squaredReference : squaredError
    }

    /// Top-1 accuracy of the first output's argmax against the labels; nil when no batch has labels.
    ///
    /// - Throws: `EngineError.badInput` for a label outside the model's classes (an accuracy of 0
    ///   against the wrong store would steer the mixed-precision policy silently).
    public static func accuracy(of model: Model, _ batches: [EvaluationBatch], context: ExecutionContext = .default) throws(EngineError) -> Double? {
        let labeled = batches.filter { $0.labels != nil }
        guard !labeled.isEmpty else { return nil }
        let logits = try outputs(of: model, labeled, context: context)
        var correct = 0, total = 0
        for (batch, values) in zip(labeled, logits) {
            guard let labels = batch.labels, !labels.isEmpty else { continue }
            let classes = values.count / labels.count
            guard classes > 0 else { continue }
            for (row, label) in labels.enumerated() {
                guard (0..<Int64(classes)).contains(label) else {
                    throw EngineError.badInput("label \(label) of sample \(total + row) is outside the model's \(classes) classes")
                }
                var best = 0
                for column in 1..<classes where values[row * classes + column] > values[row * classes + best] { best = column }
                if Int64(best) == label { correct += 1 }
            }
            total += labels.count
        }
        return total > 0 ? Double(correct) / Double(total) : nil
    }
}

extension Model {
    /// Multiply-accumulates per sample of each node, symbolic dimensions taken as 1 and a fixed
    /// batch divided out (empty when an input declares no shape).
    ///
    /// - Throws: `EngineError` when the declared shapes do not fit the operators.
    public func macsPerSample() throws(EngineError) -> [String: Int] {
        var shapes: [String: [Int]] = [:]
        for input in inputs {
            guard let dims = input.shape else { return [:] }
            shapes[input.name] = dims.map { dimension in if case .fixed(let value) = dimension { value } else { 1 } }
        }
        var result: [String: Int] = [:]
        let batch = fixedBatchSize ?? 1
        for cost in try Session(model: self).costs(inputShapes: shapes) { result[cost.node, default: 0] += cost.macs / batch }
        return result
    }
}
