import COpenBLAS
import StokeStore
import Foundation

/// How a `Trainer` updates weights.
public struct TrainingOptions: Sendable {
    public enum Optimizer: Sendable, Equatable {
        case sgd(momentum: Float)
        case adam(beta1: Float, beta2: Float, epsilon: Float)
    }
    public enum Schedule: Sendable, Equatable {
        case constant
        /// Multiply the rate by `gamma` every `every` epochs.
        case step(every: Int, gamma: Float)
        /// Cosine decay from the rate to 0 over `epochs`.
        case cosine(epochs: Int)
    }

    public var learningRate: Float = 1e-3
    public var optimizer: Optimizer = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
    /// L2 penalty added to the gradient (as PyTorch's `weight_decay`).
    public var weightDecay: Float = 0
    public var schedule: Schedule = .constant
    /// Seeds dropout masks (weights are seeded by the model).
    public var seed: UInt64 = 0
    /// Keep weights that start at exactly zero at zero (fine-tuning a pruned model keeps its masks).
    public var holdZeroWeights = false

    public init() {}
}

/// Trains a `SequentialModel` of Linear, ReLU, Flatten and Dropout layers with softmax cross-entropy,
/// on batches the caller feeds (a loader's). GEMM-based forward and backward passes on the engine's
/// kernels; every buffer is sized once per batch size. Deterministic: the same model seed, options and
/// batches give the same weights.
///
/// Conv2d, pooling and BatchNorm layers are refused at init for now.
public final class Trainer {
    private enum Step {
        case linear(index: Int, inFeatures: Int, outFeatures: Int, bias: Bool)
        case relu
        case dropout(probability: Float)
        case flatten
    }

    public let options: TrainingOptions
    private let layers: [Layer]
    private let sampleShape: [Int]
    private let steps: [Step]
    private let inputWidth: Int
    private var weights: [[Float]]      // per linear layer, [out, in] as PyTorch stores them
    private var biases: [[Float]]
    private var weightState: [[Float]]  // momentum or Adam first moment
    private var biasState: [[Float]]
    private var weightState2: [[Float]]  // Adam second moment
    private var biasState2: [[Float]]
    private var activations: [[Float]] = []
    private var gradients: [[Float]] = []
    private var masks: [[Float]] = []
    private var weightGradients: [[Float]]
    private var biasGradients: [[Float]]
    private var batchCapacity = 0
    private var updates = 0
    private var epoch = 0
    private var generator: SplitMix64
    private var masks01: [[Float]]  // per linear layer: 0 where a pruned weight must stay zero

    /// Sets the threads the trainer's GEMMs use (process-wide, like `Session(threads:)`).
    public static func setThreads(_ threads: Int) {
        copenblas_set_threads(Int32(max(1, threads)))
        EngineThreads.set(threads)
    }

    public init(model: SequentialModel, options: TrainingOptions = TrainingOptions()) throws(EngineError) {
        self.options = options
        layers = model.layers
        sampleShape = model.sampleShape
        var steps: [Step] = []
        var width = model.sampleShape.reduce(1, *)
        inputWidth = width
        var weights: [[Float]] = [], biases: [[Float]] = []
        for (index, layer) in model.layers.enumerated() {
            switch layer {
            case let .linear(inFeatures, outFeatures, bias):
                guard inFeatures == width else {
                    throw EngineError.badInput("layer \(index): linear expects \(inFeatures) features, gets \(width)")
                }
                steps.append(.linear(index: weights.count, inFeatures: inFeatures, outFeatures: outFeatures, bias: bias))
                weights.append(model.parameters["\(index).weight"]!.floats)
                biases.append(bias ? model.parameters["\(index).bias"]!.floats : [Float](repeating: 0, count: outFeatures))
                width = outFeatures
            case .relu: steps.append(.relu)
            case .dropout(let probability): steps.append(.dropout(probability: probability))
            case .flatten: steps.append(.flatten)
            default:
                throw EngineError.badInput("layer \(index): training \(layer) is not supported yet (Linear, ReLU, Flatten, Dropout are)")
            }
        }
        self.steps = steps
        self.weights = weights
        self.biases = biases
        weightState = weights.map { [Float](repeating: 0, count: $0.count) }
        biasState = biases.map { [Float](repeating: 0, count: $0.count) }
        weightState2 = weightState
        biasState2 = biasState
        weightGradients = weightState
        biasGradients = biasState
        generator = SplitMix64(seed: options.seed)
        masks01 = options.holdZeroWeights ? weights.map { $0.map { $0 == 0 ? 0 : 1 } } : []
    }

    /// The classes the last layer produces.
    public var classes: Int {
        if case let .linear(_, _, out, _)? = steps.last(where: { if case .linear = $0 { true } else { false } }) { return out }
        return inputWidth
    }

    /// Sets the epoch the learning-rate schedule uses.
    public func startEpoch(_ number: Int) { epoch = number }

    /// The learning rate in effect now.
    public var currentLearningRate: Float {
        switch options.schedule {
        case .constant: options.learningRate
        case let .step(every, gamma): options.learningRate * pow(gamma, Float(epoch / max(1, every)))
        case let .cosine(epochs): options.learningRate * 0.5 * (1 + cos(Float.pi * Float(min(epoch, epochs)) / Float(max(1, epochs))))
        }
    }

    /// One optimization step on `count` samples (`input` holds `count × sample` floats) with integer
    /// `labels`; returns the mean cross-entropy before the update.
    @discardableResult
    public func step(input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int) throws(EngineError) -> Float {
        try unsafe step(input: input, labels: labels, count: count, teacher: nil)
    }

    /// One knowledge-distillation step (Hinton et al.): the loss is
    /// `alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) · CE(labels)`, with the
    /// teacher's logits for the same samples (`count × classes` floats). Returns the mean loss.
    @discardableResult
    public func distillationStep(
        input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, teacherLogits: UnsafeBufferPointer<Float>, count: Int,
        temperature: Float, alpha: Float
    ) throws(EngineError) -> Float {
        guard teacherLogits.count >= count * classes else {
            throw EngineError.badInput("teacher logits: \(teacherLogits.count) values for \(count) samples of \(classes) classes")
        }
        guard temperature > 0, (0...1).contains(alpha) else { throw EngineError.badInput("temperature must be positive and alpha in [0, 1]") }
        return try unsafe step(input: input, labels: labels, count: count, teacher: (teacherLogits, temperature, alpha))
    }

    private func step(
        input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int,
        teacher: (logits: UnsafeBufferPointer<Float>, temperature: Float, alpha: Float)?
    ) throws(EngineError) -> Float {
        guard count > 0, input.count >= count * inputWidth, labels.count >= count else {
            throw EngineError.badInput("training batch: \(input.count) values and \(labels.count) labels for \(count) samples of \(inputWidth)")
        }
        try unsafe forward(input, count: count, training: true)
        let logits = activations.count - 1
        let width = classes
        let hard = unsafe 1 - (teacher?.alpha ?? 0)
        var loss: Float = 0
        var soft = unsafe [Float](repeating: 0, count: teacher == nil ? 0 : width)
        var target = unsafe [Float](repeating: 0, count: teacher == nil ? 0 : width)
        // Softmax cross-entropy and its gradient, (p − onehot) / count, in place in the last gradient buffer;
        // with a teacher, plus T · (softmax(z/T) − softmax(t/T)) · alpha / count.
        for row in 0..<count {
            let label = Int(unsafe labels[row])
            guard label >= 0 && label < width else {
                throw EngineError.badInput("label \(label) is outside the model's \(width) classes")
            }
            var largest = -Float.infinity
            for column in 0..<width { largest = max(largest, activations[logits][row * width + column]) }
            var total: Float = 0
            for column in 0..<width {
                let e = exp(activations[logits][row * width + column] - largest)
                gradients[logits][row * width + column] = e
                total += e
            }
            loss += hard * (log(total) + largest - activations[logits][row * width + label])
            for column in 0..<width {
                gradients[logits][row * width + column] = hard * (gradients[logits][row * width + column] / total - (column == label ? 1 : 0)) / Float(count)
            }
            guard let teacher = unsafe teacher else { continue }
            let t = unsafe teacher.temperature
            softmax(row: row, width: width, temperature: t, values: { unsafe teacher.logits[$0] }, into: &target)
            softmax(row: row, width: width, temperature: t, values: { activations[logits][$0] }, into: &soft)
            for column in 0..<width {
                if target[column] > 0 { unsafe loss += teacher.alpha * t * t * target[column] * (log(target[column]) - log(max(soft[column], 1e-30))) }
                unsafe gradients[logits][row * width + column] += teacher.alpha * t * (soft[column] - target[column]) / Float(count)
            }
        }
        unsafe backward(input, count: count)
        update()
        return loss / Float(count)
    }

    private func softmax(row: Int, width: Int, temperature: Float, values: (Int) -> Float, into output: inout [Float]) {
        var largest = -Float.infinity
        for column in 0..<width { largest = max(largest, values(row * width + column) / temperature) }
        var total: Float = 0
        for column in 0..<width {
            output[column] = exp(values(row * width + column) / temperature - largest)
            total += output[column]
        }
        for column in 0..<width { output[column] /= total }
    }

    /// Logits for `count` samples (inference: dropout off).
    public func logits(input: UnsafeBufferPointer<Float>, count: Int) throws(EngineError) -> [Float] {
        try unsafe forward(input, count: count, training: false)
        return Array(activations[activations.count - 1][0..<(count * classes)])
    }

    /// The trained model (weights written back into the layer spec's parameters).
    public func model() throws(EngineError) -> SequentialModel {
        var model = try SequentialModel(layers: layers, sampleShape: sampleShape)
        var linear = 0
        for (index, layer) in layers.enumerated() {
            guard case let .linear(inFeatures, outFeatures, bias) = layer else { continue }
            try model.setParameter("\(index).weight", Tensor(shape: [outFeatures, inFeatures], floats: weights[linear]))
            if bias { try model.setParameter("\(index).bias", Tensor(shape: [outFeatures], floats: biases[linear])) }
            linear += 1
        }
        return model
    }

    // MARK: - Passes

    private func reserve(_ count: Int) {
        guard count > batchCapacity else { return }
        batchCapacity = count
        var widths: [Int] = []
        var width = inputWidth
        for step in steps {
            if case let .linear(_, _, out, _) = step { width = out }
            widths.append(width)
        }
        activations = widths.map { [Float](repeating: 0, count: $0 * count) }
        gradients = widths.map { [Float](repeating: 0, count: $0 * count) }
        masks = widths.map { [Float](repeating: 1, count: $0 * count) }
    }

    private func forward(_ input: UnsafeBufferPointer<Float>, count: Int, training: Bool) throws(EngineError) {
        reserve(count)
        var width = inputWidth
        for (position, step) in steps.enumerated() {
            let source: UnsafePointer<Float> = position == 0
                ? input.baseAddress!
                : unsafe activations[position - 1].withUnsafeBufferPointer { $0.baseAddress! }
            switch step {
            case let .linear(index, inFeatures, outFeatures, _):
                unsafe weights[index].withUnsafeBufferPointer { w in
                    unsafe biases[index].withUnsafeBufferPointer { b in
                        unsafe activations[position].withUnsafeMutableBufferPointer { y in
                            unsafe LinearOps.sgemm(transA: false, transB: true, m: count, n: outFeatures, k: inFeatures, alpha: 1,
                                                   a: source, lda: inFeatures, b: w.baseAddress!, ldb: inFeatures, beta: 0,
                                                   y: y.baseAddress!, ldy: outFeatures, columnBias: b.baseAddress!)
                        }
                    }
                }
                width = outFeatures
            case .relu:
                for index in 0..<(count * width) { activations[position][index] = max(0, unsafe source[index]) }
            case .dropout(let probability):
                let keep = 1 - probability
                for index in 0..<(count * width) {
                    let kept: Float = training ? (Float(generator.next() >> 40) / Float(1 << 24) < keep ? 1 / keep : 0) : 1
                    masks[position][index] = kept
                    activations[position][index] = unsafe source[index] * kept
                }
            case .flatten:
                for index in 0..<(count * width) { activations[position][index] = unsafe source[index] }
            }
        }
    }

    private func backward(_ input: UnsafeBufferPointer<Float>, count: Int) {
        var widths: [Int] = []
        var width = inputWidth
        for step in steps {
            if case let .linear(_, _, out, _) = step { width = out }
            widths.append(width)
        }
        for position in stride(from: steps.count - 1, through: 0, by: -1) {
            let inputWidthHere = position == 0 ? inputWidth : widths[position - 1]
            switch steps[position] {
            case let .linear(index, inFeatures, outFeatures, _):
                let source: UnsafePointer<Float> = position == 0
                    ? input.baseAddress!
                    : unsafe activations[position - 1].withUnsafeBufferPointer { $0.baseAddress! }
                unsafe gradients[position].withUnsafeBufferPointer { dy in
                    // dW = dYᵀ · X, db = Σ rows of dY, dX = dY · W
                    unsafe weightGradients[index].withUnsafeMutableBufferPointer { dw in
                        unsafe LinearOps.sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: count, alpha: 1,
                                               a: dy.baseAddress!, lda: outFeatures, b: source, ldb: inFeatures, beta: 0,
                                               y: dw.baseAddress!, ldy: inFeatures)
                    }
                    for column in 0..<outFeatures {
                        var sum: Float = 0
                        for row in 0..<count { sum += unsafe dy[row * outFeatures + column] }
                        biasGradients[index][column] = sum
                    }
                    if position > 0 {
                        unsafe weights[index].withUnsafeBufferPointer { w in
                            unsafe gradients[position - 1].withUnsafeMutableBufferPointer { dx in
                                unsafe LinearOps.sgemm(transA: false, transB: false, m: count, n: inFeatures, k: outFeatures, alpha: 1,
                                                       a: dy.baseAddress!, lda: outFeatures, b: w.baseAddress!, ldb: inFeatures, beta: 0,
                                                       y: dx.baseAddress!, ldy: inFeatures)
                            }
                        }
                    }
                }
            case .relu:
                guard position > 0 else { continue }
                for index in 0..<(count * inputWidthHere) {
                    gradients[position - 1][index] = activations[position][index] > 0 ? gradients[position][index] : 0
                }
            case .dropout:
                guard position > 0 else { continue }
                for index in 0..<(count * inputWidthHere) { gradients[position - 1][index] = gradients[position][index] * masks[position][index] }
            case .flatten:
                guard position > 0 else { continue }
                for index in 0..<(count * inputWidthHere) { gradients[position - 1][index] = gradients[position][index] }
            }
        }
    }

    private func update() {
        updates += 1
        let rate = currentLearningRate
        let decay = options.weightDecay
        for index in weights.indices {
            apply(&weights[index], &weightGradients[index], &weightState[index], &weightState2[index], rate: rate, decay: decay)
            apply(&biases[index], &biasGradients[index], &biasState[index], &biasState2[index], rate: rate, decay: 0)
            if !masks01.isEmpty { for i in weights[index].indices { weights[index][i] *= masks01[index][i] } }
        }
    }

    private func apply(_ values: inout [Float], _ grads: inout [Float], _ first: inout [Float], _ second: inout [Float], rate: Float, decay: Float) {
        switch options.optimizer {
        case .sgd(let momentum):
            for i in values.indices {
                let g = grads[i] + decay * values[i]
                first[i] = momentum * first[i] + g
                values[i] -= rate * first[i]
            }
        case let .adam(beta1, beta2, epsilon):
            let correction1 = 1 - pow(beta1, Float(updates)), correction2 = 1 - pow(beta2, Float(updates))
            for i in values.indices {
                let g = grads[i] + decay * values[i]
                first[i] = beta1 * first[i] + (1 - beta1) * g
                second[i] = beta2 * second[i] + (1 - beta2) * g * g
                values[i] -= rate * (first[i] / correction1) / ((second[i] / correction2).squareRoot() + epsilon)
            }
        }
    }

    /// The mean loss of a batch without updating (for gradient checks and evaluation): cross-entropy, or
    /// with a teacher the distillation loss `distillationStep` minimizes.
    public func loss(
        input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int,
        teacher: (logits: UnsafeBufferPointer<Float>, temperature: Float, alpha: Float)? = nil
    ) throws(EngineError) -> Float {
        let logits = try unsafe self.logits(input: input, count: count)
        let width = classes
        let hard = unsafe 1 - (teacher?.alpha ?? 0)
        var total: Float = 0
        var soft = [Float](repeating: 0, count: width), target = [Float](repeating: 0, count: width)
        for row in 0..<count {
            let slice = logits[(row * width)..<((row + 1) * width)]
            let largest = slice.max()!
            total += hard * (log(slice.reduce(0) { $0 + exp($1 - largest) }) + largest - slice[row * width + Int(unsafe labels[row])])
            guard let teacher = unsafe teacher else { continue }
            let t = unsafe teacher.temperature
            softmax(row: row, width: width, temperature: t, values: { unsafe teacher.logits[$0] }, into: &target)
            softmax(row: row, width: width, temperature: t, values: { logits[$0] }, into: &soft)
            for column in 0..<width where target[column] > 0 {
                unsafe total += teacher.alpha * t * t * target[column] * (log(target[column]) - log(max(soft[column], 1e-30)))
            }
        }
        return total / Float(count)
    }

    /// The analytic gradient of the loss for weight `element` of linear layer `layer` on a batch (for
    /// tests against finite differences); leaves the weights unchanged.
    func analyticGradient(
        layer: Int, element: Int, input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int,
        teacher: (logits: UnsafeBufferPointer<Float>, temperature: Float, alpha: Float)? = nil
    ) throws(EngineError) -> Float {
        let saved = (weights, biases, weightState, biasState, weightState2, biasState2, updates)
        _ = try unsafe step(input: input, labels: labels, count: count, teacher: teacher)
        let gradient = weightGradients[layer][element]
        (weights, biases, weightState, biasState, weightState2, biasState2, updates) = saved
        return gradient
    }

    /// Nudges one weight (for finite-difference checks).
    func perturb(layer: Int, element: Int, by delta: Float) { weights[layer][element] += delta }
}
