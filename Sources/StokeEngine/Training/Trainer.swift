import CStokeKernels
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
    /// L2 penalty added to the gradient of Linear and Conv weights (as PyTorch's `weight_decay`;
    /// biases and BatchNorm parameters are not decayed).
    public var weightDecay: Float = 0
    public var schedule: Schedule = .constant
    /// Seeds dropout masks (weights are seeded by the model).
    public var seed: UInt64 = 0
    /// Keep weights that start at exactly zero at zero (fine-tuning a pruned model keeps its masks).
    public var holdZeroWeights = false
    /// Quantization-aware training: Linear and Conv layers see their weights fake-quantized per
    /// output channel (symmetric int8) and their inputs fake-quantized to uint8 (asymmetric, ranges
    /// tracked by an exponential moving average with `rangeMomentum`); gradients pass straight through
    /// the rounding and are zero outside the tracked range (clipped straight-through estimator).
    /// Evaluation (`logits`) then shows the quantized model's accuracy, and `activationRanges()` the
    /// learned ranges for static INT8 conversion.
    public var quantizationAware = false
    /// Weight of each new batch's minimum and maximum in the tracked activation ranges (QAT).
    public var rangeMomentum: Float = 0.01
    /// BatchNorm running statistics: new = (1 − momentum) · old + momentum · batch (PyTorch's 0.1).
    public var batchNormMomentum: Float = 0.1

    public init() {}
}

/// Trains a `SequentialModel` (Linear, Conv2d, ReLU, MaxPool2d, AvgPool2d, BatchNorm, Flatten, Dropout)
/// with softmax cross-entropy or a distillation loss, on batches the caller feeds (a loader's).
/// Linear layers are one GEMM per pass; Conv2d layers are one im2col matrix for the whole batch and one
/// GEMM per pass (col2im for the input gradient), on the GEMM backend and threads of the trainer's
/// `ExecutionContext` (nothing process-wide: a trainer and sessions with other contexts in one process
/// do not affect each other).
/// BatchNorm uses batch statistics in training steps and its running statistics (updated like
/// PyTorch's, unbiased variance) in `logits` and the exported model. Buffers are sized once per batch
/// size. Deterministic: the same model seed, options and batches give the same weights.
public final class Trainer {
    enum Step {
        case linear(group: Int, inFeatures: Int, outFeatures: Int)
        case conv(group: Int, window: stoke_window2d, inChannels: Int, outChannels: Int)
        case relu
        case maxPool(window: stoke_window2d, channels: Int)
        case avgPool(window: stoke_window2d, channels: Int)
        case batchNorm(group: Int, norm: Int, channels: Int, spatial: Int, epsilon: Float)
        case dropout(probability: Float)
        case flatten
    }

    /// Trainable tensors of one layer: Linear/Conv weight and bias, or BatchNorm scale and shift.
    final class ParameterGroup {
        let layer: Int
        let decays: Bool
        /// Output channels: the rows of the weight viewed as [rows, weight.count / rows].
        let rows: Int
        let weight, bias, weightGradient, biasGradient: TrainingBuffer<Float>
        let weightState, biasState, weightState2, biasState2: TrainingBuffer<Float>
        /// 0 where a pruned weight must stay zero (`holdZeroWeights`).
        let keep: TrainingBuffer<Float>?
        /// The weight the passes use under QAT (fake-quantized per row).
        let quantized: TrainingBuffer<Float>?

        init(layer: Int, weight: [Float], bias: [Float], rows: Int, decays: Bool, holdZeros: Bool, quantize: Bool) {
            self.layer = layer
            self.rows = rows
            self.decays = decays
            self.weight = TrainingBuffer(weight)
            self.bias = TrainingBuffer(bias)
            weightGradient = TrainingBuffer(count: weight.count, value: 0)
            biasGradient = TrainingBuffer(count: bias.count, value: 0)
            weightState = TrainingBuffer(count: weight.count, value: 0)
            biasState = TrainingBuffer(count: bias.count, value: 0)
            weightState2 = TrainingBuffer(count: weight.count, value: 0)
            biasState2 = TrainingBuffer(count: bias.count, value: 0)
            keep = holdZeros ? TrainingBuffer(weight.map { $0 == 0 ? 0 : 1 }) : nil
            quantized = quantize ? TrainingBuffer(count: weight.count, value: 0) : nil
        }

        /// The weight the forward and input-gradient passes multiply by.
        var effectiveWeight: UnsafeMutablePointer<Float> { unsafe (quantized ?? weight).pointer }
    }

    /// BatchNorm state besides its scale and shift.
    final class NormState {
        let runningMean, runningVariance, inverseStd: TrainingBuffer<Float>
        init(mean: [Float], variance: [Float]) {
            runningMean = TrainingBuffer(mean)
            runningVariance = TrainingBuffer(variance)
            inverseStd = TrainingBuffer(count: mean.count, value: 1)
        }
    }

    /// Per-step buffers sized for the batch capacity; the ones a step does not need stay empty.
    final class StepBuffers {
        var activation = TrainingBuffer<Float>(count: 0, value: 0)
        var gradient = TrainingBuffer<Float>(count: 0, value: 0)
        /// Dropout masks (0 or 1/keep), BatchNorm's normalized input, or QAT's quantized input.
        var saved = TrainingBuffer<Float>(count: 0, value: 0)
        /// Conv: the batch's im2col matrix [C·K·K, N·OH·OW] (image n's columns at n·OH·OW).
        var columns = TrainingBuffer<Float>(count: 0, value: 0)
        /// MaxPool: for each output element, the input element it came from.
        var argmax = TrainingBuffer<Int32>(count: 0, value: 0)
    }

    public let options: TrainingOptions
    let layers: [Layer]
    let sampleShape: [Int]
    let steps: [Step]
    let inputWidth: Int
    /// Elements per sample at the input and output of each step.
    let inWidths: [Int], outWidths: [Int]
    var groups: [ParameterGroup]
    var norms: [NormState]
    var buffers: [StepBuffers]
    /// Conv scratch: the column-matrix gradient [C·K·K, N·OH·OW] of the largest conv layer.
    var columnGradient = TrainingBuffer<Float>(count: 0, value: 0)
    /// Conv scratch: outputs or output gradients as [OC, N·OH·OW], the GEMM's layout.
    var channelMajor = TrainingBuffer<Float>(count: 0, value: 0)
    var batchCapacity = 0
    var updates = 0
    var epoch = 0
    var generator: SplitMix64
    /// Test hook: reuse the last dropout masks instead of drawing new ones (finite differences).
    var freezesDropoutMasks = false
    /// QAT: the tracked range of every graph value, [0] the input and [i + 1] the output of layer i.
    var valueRanges: [(low: Float, high: Float)?]

    /// The threads and GEMM backend the trainer's GEMMs use.
    public let context: ExecutionContext

    /// - Parameter context: threads and GEMM backend (default: `ExecutionContext.default`, one thread).
    /// - Throws: `EngineError.badInput` naming the layer when the model's shapes do not chain.
    public init(model: SequentialModel, options: TrainingOptions = TrainingOptions(),
                context: ExecutionContext = .default) throws(EngineError) {
        self.options = options
        self.context = context
        layers = model.layers
        sampleShape = model.sampleShape
        _ = try model.outputSampleShape()
        var steps: [Step] = [], groups: [ParameterGroup] = [], norms: [NormState] = []
        var inWidths: [Int] = [], outWidths: [Int] = []
        var shape = model.sampleShape
        inputWidth = shape.reduce(1, *)
        func parameter(_ index: Int, _ suffix: String) -> [Float] { model.parameters["\(index).\(suffix)"]?.floats ?? [] }
        func window(_ extent: (Int, Int), kernel: Int, stride: Int, padding: Int) -> stoke_window2d {
            stoke_window2d(in_h: Int64(extent.0), in_w: Int64(extent.1), kernel_h: Int64(kernel), kernel_w: Int64(kernel),
                           pad_top: Int64(padding), pad_left: Int64(padding), stride_h: Int64(stride), stride_w: Int64(stride),
                           dilation_h: 1, dilation_w: 1,
                           out_h: Int64((extent.0 + 2 * padding - kernel) / stride + 1), out_w: Int64((extent.1 + 2 * padding - kernel) / stride + 1),
                           pad_bottom: Int64(padding), pad_right: Int64(padding))
        }
        for (index, layer) in model.layers.enumerated() {
            inWidths.append(shape.reduce(1, *))
            switch layer {
            case let .linear(inFeatures, outFeatures, bias):
                steps.append(.linear(group: groups.count, inFeatures: inFeatures, outFeatures: outFeatures))
                groups.append(ParameterGroup(layer: index, weight: parameter(index, "weight"),
                                             bias: bias ? parameter(index, "bias") : [Float](repeating: 0, count: outFeatures),
                                             rows: outFeatures, decays: true, holdZeros: options.holdZeroWeights, quantize: options.quantizationAware))
                shape = [outFeatures]
            case let .conv2d(inChannels, outChannels, kernel, stride, padding, bias):
                let geometry = window((shape[1], shape[2]), kernel: kernel, stride: stride, padding: padding)
                steps.append(.conv(group: groups.count, window: geometry, inChannels: inChannels, outChannels: outChannels))
                groups.append(ParameterGroup(layer: index, weight: parameter(index, "weight"),
                                             bias: bias ? parameter(index, "bias") : [Float](repeating: 0, count: outChannels),
                                             rows: outChannels, decays: true, holdZeros: options.holdZeroWeights, quantize: options.quantizationAware))
                shape = [outChannels, Int(geometry.out_h), Int(geometry.out_w)]
            case .relu:
                steps.append(.relu)
            case let .maxPool2d(kernel, stride), let .avgPool2d(kernel, stride):
                let geometry = window((shape[1], shape[2]), kernel: kernel, stride: stride ?? kernel, padding: 0)
                if case .maxPool2d = layer { steps.append(.maxPool(window: geometry, channels: shape[0])) }
                else { steps.append(.avgPool(window: geometry, channels: shape[0])) }
                shape = [shape[0], Int(geometry.out_h), Int(geometry.out_w)]
            case let .batchNorm(features, epsilon):
                steps.append(.batchNorm(group: groups.count, norm: norms.count, channels: features,
                                        spatial: shape.dropFirst().reduce(1, *), epsilon: epsilon))
                groups.append(ParameterGroup(layer: index, weight: parameter(index, "weight"), bias: parameter(index, "bias"),
                                             rows: features, decays: false, holdZeros: false, quantize: false))
                norms.append(NormState(mean: parameter(index, "running_mean"), variance: parameter(index, "running_var")))
            case .dropout(let probability):
                guard (0..<1).contains(probability) else { throw EngineError.badInput("layer \(index): dropout probability \(probability) is outside [0, 1)") }
                steps.append(.dropout(probability: probability))
            case .flatten:
                steps.append(.flatten)
                shape = [shape.reduce(1, *)]
            }
            outWidths.append(shape.reduce(1, *))
        }
        self.steps = steps
        self.groups = groups
        self.norms = norms
        self.inWidths = inWidths
        self.outWidths = outWidths
        buffers = steps.map { _ in StepBuffers() }
        generator = SplitMix64(seed: options.seed)
        valueRanges = Array(repeating: nil, count: steps.count + 1)
    }

    /// The classes the last layer produces.
    public var classes: Int { outWidths.last ?? inputWidth }

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

    typealias Teacher = (logits: UnsafeBufferPointer<Float>, temperature: Float, alpha: Float)

    private func step(input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int, teacher: Teacher?) throws(EngineError) -> Float {
        try unsafe check(input: input, labels: labels, count: count)
        unsafe forward(input, count: count, training: true)
        let last = buffers[steps.count - 1]
        let loss = try unsafe lossAndGradient(logits: last.activation.pointer, labels: labels, count: count, teacher: teacher,
                                              gradient: last.gradient.pointer)
        unsafe backward(input, count: count)
        update()
        return loss
    }

    private func check(input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int) throws(EngineError) {
        guard count > 0, input.count >= count * inputWidth, labels.count >= count else {
            throw EngineError.badInput("training batch: \(input.count) values and \(labels.count) labels for \(count) samples of \(inputWidth)")
        }
        guard !steps.isEmpty else { throw EngineError.badInput("the model has no layers to train") }
        for row in 0..<count where unsafe labels[row] < 0 || labels[row] >= Int64(classes) {
            throw EngineError.badInput("label \(unsafe labels[row]) of sample \(row) is outside the model's \(classes) classes")
        }
    }

    /// The mean loss over `count` rows of logits and, when `gradient` is given, its gradient with
    /// respect to the logits: (1 − alpha) · (softmax(z) − onehot) / count, plus with a teacher
    /// alpha · T · (softmax(z/T) − softmax(t/T)) / count.
    private func lossAndGradient(
        logits: UnsafePointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int, teacher: Teacher?,
        gradient: UnsafeMutablePointer<Float>?
    ) throws(EngineError) -> Float {
        let width = classes
        let hard = unsafe 1 - (teacher?.alpha ?? 0)
        var loss: Float = 0
        var probabilities = [Float](repeating: 0, count: width)
        var soft = [Float](repeating: 0, count: width), target = [Float](repeating: 0, count: width)
        for row in 0..<count {
            let z = unsafe logits + row * width
            let label = Int(unsafe labels[row])
            var largest = -Float.infinity
            for column in 0..<width { largest = max(largest, unsafe z[column]) }
            var total: Float = 0
            for column in 0..<width {
                probabilities[column] = exp(unsafe z[column] - largest)
                total += probabilities[column]
            }
            loss += unsafe hard * (log(total) + largest - z[label])
            if let gradient = unsafe gradient {
                for column in 0..<width {
                    unsafe gradient[row * width + column] = hard * (probabilities[column] / total - (column == label ? 1 : 0)) / Float(count)
                }
            }
            guard let teacher = unsafe teacher else { continue }
            let t = unsafe teacher.temperature, alpha = unsafe teacher.alpha
            unsafe Self.softmax(unsafe teacher.logits.baseAddress! + row * width, width: width, temperature: t, into: &target)
            unsafe Self.softmax(z, width: width, temperature: t, into: &soft)
            for column in 0..<width {
                if target[column] > 0 { loss += alpha * t * t * target[column] * (log(target[column]) - log(max(soft[column], 1e-30))) }
                if let gradient = unsafe gradient { unsafe gradient[row * width + column] += alpha * t * (soft[column] - target[column]) / Float(count) }
            }
        }
        return loss / Float(count)
    }

    private static func softmax(_ values: UnsafePointer<Float>, width: Int, temperature: Float, into output: inout [Float]) {
        var largest = -Float.infinity
        for column in 0..<width { largest = max(largest, unsafe values[column] / temperature) }
        var total: Float = 0
        for column in 0..<width {
            output[column] = exp(unsafe values[column] / temperature - largest)
            total += output[column]
        }
        for column in 0..<width { output[column] /= total }
    }

    /// Logits for `count` samples (inference: dropout off, BatchNorm on running statistics; under QAT
    /// with the fake quantization the INT8 model will apply).
    public func logits(input: UnsafeBufferPointer<Float>, count: Int) throws(EngineError) -> [Float] {
        guard count > 0, input.count >= count * inputWidth, !steps.isEmpty else {
            throw EngineError.badInput("inference batch: \(input.count) values for \(count) samples of \(inputWidth)")
        }
        unsafe forward(input, count: count, training: false)
        return unsafe Array(UnsafeBufferPointer(start: buffers[steps.count - 1].activation.pointer, count: count * classes))
    }

    /// The trained model: weights, biases and BatchNorm running statistics written back into the
    /// layer spec's parameters (FP32 weights, also under QAT).
    public func model() throws(EngineError) -> SequentialModel {
        var model = try SequentialModel(layers: layers, sampleShape: sampleShape)
        for step in steps {
            switch step {
            case .linear(let g, _, _), .conv(let g, _, _, _), .batchNorm(let g, _, _, _, _):
                let group = groups[g], index = group.layer
                let weightShape = model.parameters["\(index).weight"]!.shape
                try model.setParameter("\(index).weight", Tensor(shape: weightShape, floats: group.weight.array))
                if model.parameters["\(index).bias"] != nil {
                    try model.setParameter("\(index).bias", Tensor(shape: [group.bias.count], floats: group.bias.array))
                }
                if case let .batchNorm(_, n, channels, _, _) = step {
                    try model.setParameter("\(index).running_mean", Tensor(shape: [channels], floats: norms[n].runningMean.array))
                    try model.setParameter("\(index).running_var", Tensor(shape: [channels], floats: norms[n].runningVariance.array))
                }
            default: break
            }
        }
        return model
    }

    // MARK: - Passes

    private func reserve(_ count: Int) {
        guard count > batchCapacity else { return }
        batchCapacity = count
        var largestColumns = 0, largestOutput = 0
        for (position, step) in steps.enumerated() {
            let b = buffers[position]
            b.activation = TrainingBuffer(count: outWidths[position] * count, value: 0)
            b.gradient = TrainingBuffer(count: outWidths[position] * count, value: 0)
            switch step {
            case .dropout: b.saved = TrainingBuffer(count: outWidths[position] * count, value: 1)
            case .batchNorm: b.saved = TrainingBuffer(count: outWidths[position] * count, value: 0)
            case .linear: if options.quantizationAware { b.saved = TrainingBuffer(count: inWidths[position] * count, value: 0) }
            case let .conv(_, window, inChannels, _):
                let perImage = inChannels * Int(window.kernel_h * window.kernel_w * window.out_h * window.out_w)
                b.columns = TrainingBuffer(count: perImage * count, value: 0)
                largestColumns = max(largestColumns, perImage * count)
                largestOutput = max(largestOutput, outWidths[position] * count)
                if options.quantizationAware { b.saved = TrainingBuffer(count: inWidths[position] * count, value: 0) }
            case .maxPool: b.argmax = TrainingBuffer(count: outWidths[position] * count, value: 0)
            default: break
            }
        }
        columnGradient = TrainingBuffer(count: largestColumns, value: 0)
        channelMajor = TrainingBuffer(count: largestOutput, value: 0)
    }

    /// The input of step `position`: the batch for the first step, else the previous step's output.
    private func source(_ position: Int, _ input: UnsafeBufferPointer<Float>) -> UnsafeMutablePointer<Float> {
        position == 0 ? unsafe UnsafeMutablePointer(mutating: input.baseAddress!) : unsafe buffers[position - 1].activation.pointer
    }

    private func forward(_ input: UnsafeBufferPointer<Float>, count: Int, training: Bool) {
        reserve(count)
        let quantize = options.quantizationAware
        if quantize && training { unsafe observeRange(value: 0, input.baseAddress!, count: count * inputWidth) }
        for (position, step) in steps.enumerated() {
            let b = buffers[position]
            var x = unsafe source(position, input)
            let y = unsafe b.activation.pointer
            let n = count * outWidths[position], m = count * inWidths[position]
            switch step {
            case let .linear(g, inFeatures, outFeatures):
                let group = groups[g]
                if quantize {
                    unsafe fakeQuantize(value: position, x, into: b.saved.pointer, count: m)
                    unsafe x = b.saved.pointer
                    Self.fakeQuantizeRows(group)
                }
                unsafe LinearOps.sgemm(backend: context.gemmInUse, threads: context.threads, transA: false, transB: true, m: count, n: outFeatures, k: inFeatures, alpha: 1,
                                       a: x, lda: inFeatures, b: group.effectiveWeight, ldb: inFeatures, beta: 0,
                                       y: y, ldy: outFeatures, columnBias: group.bias.pointer)
            case let .conv(g, window, inChannels, outChannels):
                let group = groups[g]
                if quantize {
                    unsafe fakeQuantize(value: position, x, into: b.saved.pointer, count: m)
                    unsafe x = b.saved.pointer
                    Self.fakeQuantizeRows(group)
                }
                // One GEMM for the batch: Y[OC, N·plane] = W · col + bias, then back to [N, OC, plane].
                var geometry = window
                let plane = Int(window.out_h * window.out_w), depth = inChannels * Int(window.kernel_h * window.kernel_w)
                let columns = unsafe b.columns.pointer, wide = count * plane
                for image in 0..<count {
                    unsafe stoke_im2col_ld_f32(x + image * inWidths[position], Int64(inChannels), &geometry, columns + image * plane, Int64(wide))
                }
                unsafe LinearOps.sgemm(backend: context.gemmInUse, threads: context.threads, transA: false, transB: false, m: outChannels, n: wide, k: depth, alpha: 1,
                                       a: group.effectiveWeight, lda: depth, b: columns, ldb: wide, beta: 0,
                                       y: channelMajor.pointer, ldy: wide, rowBias: group.bias.pointer)
                for image in 0..<count {
                    for channel in 0..<outChannels {
                        unsafe (y + (image * outChannels + channel) * plane).update(from: channelMajor.pointer + channel * wide + image * plane, count: plane)
                    }
                }
            case .relu:
                for i in 0..<n { unsafe y[i] = max(0, x[i]) }
            case let .maxPool(window, channels):
                unsafe Self.maxPool(x, y, argmax: b.argmax.pointer, planes: count * channels, window)
            case let .avgPool(window, channels):
                var geometry = window
                unsafe stoke_pool2d_f32(1, x, Int64(count * channels), &geometry, 1, y)
            case let .batchNorm(g, norm, channels, spatial, epsilon):
                unsafe batchNormForward(x, y, group: groups[g], state: norms[norm], normalized: b.saved.pointer,
                                        count: count, channels: channels, spatial: spatial, epsilon: epsilon, training: training)
            case .dropout(let probability):
                let keep = 1 - probability
                let mask = unsafe b.saved.pointer
                if training && !freezesDropoutMasks {
                    for i in 0..<n { unsafe mask[i] = generator.nextFloat() < keep ? 1 / keep : 0 }
                }
                for i in 0..<n { unsafe y[i] = training ? x[i] * mask[i] : x[i] }
            case .flatten:
                unsafe y.update(from: x, count: n)
            }
            if quantize && training { unsafe observeRange(value: position + 1, y, count: n) }
        }
    }

    private func backward(_ input: UnsafeBufferPointer<Float>, count: Int) {
        for position in stride(from: steps.count - 1, through: 0, by: -1) {
            let b = buffers[position]
            let x = unsafe source(position, input)
            let dy = unsafe b.gradient.pointer
            // The first step's input gradient is not needed: nothing upstream trains.
            let dx: UnsafeMutablePointer<Float>? = position > 0 ? unsafe buffers[position - 1].gradient.pointer : nil
            let n = count * outWidths[position], m = count * inWidths[position]
            switch steps[position] {
            case let .linear(g, inFeatures, outFeatures):
                let group = groups[g]
                let seen = unsafe options.quantizationAware ? b.saved.pointer : x
                // dW = dYᵀ · X, db = Σ rows of dY, dX = dY · W
                unsafe LinearOps.sgemm(backend: context.gemmInUse, threads: context.threads, transA: true, transB: false, m: outFeatures, n: inFeatures, k: count, alpha: 1,
                                       a: dy, lda: outFeatures, b: seen, ldb: inFeatures, beta: 0, y: group.weightGradient.pointer, ldy: inFeatures)
                group.biasGradient.fill(0)
                for row in 0..<count {
                    for column in 0..<outFeatures { unsafe group.biasGradient.pointer[column] += dy[row * outFeatures + column] }
                }
                if let dx = unsafe dx {
                    unsafe LinearOps.sgemm(backend: context.gemmInUse, threads: context.threads, transA: false, transB: false, m: count, n: inFeatures, k: outFeatures, alpha: 1,
                                           a: dy, lda: outFeatures, b: group.effectiveWeight, ldb: inFeatures, beta: 0, y: dx, ldy: inFeatures)
                    if options.quantizationAware { unsafe clipGradient(value: position, x, dx, count: m) }
                }
            case let .conv(g, window, inChannels, outChannels):
                let group = groups[g]
                let plane = Int(window.out_h * window.out_w), depth = inChannels * Int(window.kernel_h * window.kernel_w)
                let columns = unsafe b.columns.pointer, wide = count * plane
                let dyWide = unsafe channelMajor.pointer
                for image in 0..<count {
                    for channel in 0..<outChannels {
                        unsafe (dyWide + channel * wide + image * plane).update(from: dy + (image * outChannels + channel) * plane, count: plane)
                    }
                }
                // dW = dY · colᵀ, db = row sums of dY, dcol = Wᵀ · dY, dX = col2im(dcol)
                unsafe LinearOps.sgemm(backend: context.gemmInUse, threads: context.threads, transA: false, transB: true, m: outChannels, n: depth, k: wide, alpha: 1,
                                       a: dyWide, lda: wide, b: columns, ldb: wide, beta: 0, y: group.weightGradient.pointer, ldy: depth)
                for channel in 0..<outChannels {
                    var sum: Float = 0
                    for i in 0..<wide { sum += unsafe dyWide[channel * wide + i] }
                    group.biasGradient[channel] = sum
                }
                if let dx = unsafe dx {
                    unsafe LinearOps.sgemm(backend: context.gemmInUse, threads: context.threads, transA: true, transB: false, m: depth, n: wide, k: outChannels, alpha: 1,
                                           a: group.effectiveWeight, lda: depth, b: dyWide, ldb: wide, beta: 0,
                                           y: columnGradient.pointer, ldy: wide)
                    unsafe Self.columnsToImages(columnGradient.pointer, dx, count: count, channels: inChannels, window)
                }
                if let dx = unsafe dx, options.quantizationAware { unsafe clipGradient(value: position, x, dx, count: m) }
            case .relu:
                guard let dx = unsafe dx else { continue }
                for i in 0..<n { unsafe dx[i] = b.activation.pointer[i] > 0 ? dy[i] : 0 }
            case .maxPool:
                guard let dx = unsafe dx else { continue }
                unsafe dx.update(repeating: 0, count: m)
                for i in 0..<n { unsafe dx[Int(b.argmax.pointer[i])] += dy[i] }
            case let .avgPool(window, channels):
                guard let dx = unsafe dx else { continue }
                unsafe Self.avgPoolBackward(dy, dx, planes: count * channels, window)
            case let .batchNorm(g, norm, channels, spatial, _):
                unsafe batchNormBackward(dy, dx, group: groups[g], state: norms[norm], normalized: b.saved.pointer,
                                         count: count, channels: channels, spatial: spatial)
            case .dropout:
                guard let dx = unsafe dx else { continue }
                for i in 0..<n { unsafe dx[i] = dy[i] * b.saved.pointer[i] }
            case .flatten:
                guard let dx = unsafe dx else { continue }
                unsafe dx.update(from: dy, count: n)
            }
        }
    }

    // MARK: - Layer kernels

    /// Max pooling without padding; `argmax` gets the batch-wide index of each output's input (the
    /// first of equal maxima, as PyTorch).
    private static func maxPool(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                                planes: Int, _ g: stoke_window2d) {
        let (inH, inW, outH, outW) = (Int(g.in_h), Int(g.in_w), Int(g.out_h), Int(g.out_w))
        let (kernel, stride) = (Int(g.kernel_h), Int(g.stride_h))
        for plane in 0..<planes {
            let base = plane * inH * inW
            if kernel == 2 && stride == 2 {
                // The common 2×2 window, unrolled: the generic loop below costs a fifth of a CNN step.
                for oh in 0..<outH {
                    for ow in 0..<outW {
                        let a = base + 2 * oh * inW + 2 * ow, c = a + inW
                        var best = a
                        if unsafe x[a + 1] > x[best] { best = a + 1 }
                        if unsafe x[c] > x[best] { best = c }
                        if unsafe x[c + 1] > x[best] { best = c + 1 }
                        let out = (plane * outH + oh) * outW + ow
                        unsafe y[out] = x[best]
                        unsafe argmax[out] = Int32(best)
                    }
                }
                continue
            }
            for oh in 0..<outH {
                for ow in 0..<outW {
                    var best = base + oh * stride * inW + ow * stride
                    for kh in 0..<kernel {
                        for kw in 0..<kernel {
                            let index = base + (oh * stride + kh) * inW + ow * stride + kw
                            if unsafe x[index] > x[best] { best = index }
                        }
                    }
                    let out = (plane * outH + oh) * outW + ow
                    unsafe y[out] = x[best]
                    unsafe argmax[out] = Int32(best)
                }
            }
        }
    }

    /// The adjoint of the batched im2col: dx[n] = Σ of the column-matrix entries [C·K·K, N·OH·OW] that
    /// read each input element (dx is overwritten).
    private static func columnsToImages(_ columns: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int, channels: Int, _ g: stoke_window2d) {
        let (inH, inW, outH, outW) = (Int(g.in_h), Int(g.in_w), Int(g.out_h), Int(g.out_w))
        let (kernel, stride, pad) = (Int(g.kernel_h), Int(g.stride_h), Int(g.pad_top))
        let plane = outH * outW, wide = count * plane
        unsafe dx.update(repeating: 0, count: count * channels * inH * inW)
        for image in 0..<count {
            for channel in 0..<channels {
                let target = unsafe dx + (image * channels + channel) * inH * inW
                for kh in 0..<kernel {
                    for kw in 0..<kernel {
                        let row = unsafe columns + ((channel * kernel + kh) * kernel + kw) * wide + image * plane
                        // Output columns whose input column lies inside the image: [low, high).
                        let base = kw - pad
                        let low = base >= 0 ? 0 : (-base + stride - 1) / stride
                        let high = min(outW, base > inW - 1 ? 0 : (inW - 1 - base) / stride + 1)
                        guard low < high else { continue }
                        for oh in 0..<outH {
                            let ih = oh * stride - pad + kh
                            guard ih >= 0 && ih < inH else { continue }
                            let line = unsafe target + ih * inW + base, source = unsafe row + oh * outW
                            if stride == 1 {
                                for ow in low..<high { unsafe line[ow] += source[ow] }
                            } else {
                                for ow in low..<high { unsafe line[ow * stride] += source[ow] }
                            }
                        }
                    }
                }
            }
        }
    }

    private static func avgPoolBackward(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, planes: Int, _ g: stoke_window2d) {
        let (inH, inW, outH, outW) = (Int(g.in_h), Int(g.in_w), Int(g.out_h), Int(g.out_w))
        let (kernel, stride) = (Int(g.kernel_h), Int(g.stride_h))
        let share = 1 / Float(kernel * kernel)
        unsafe dx.update(repeating: 0, count: planes * inH * inW)
        for plane in 0..<planes {
            for oh in 0..<outH {
                for ow in 0..<outW {
                    let gradient = unsafe dy[(plane * outH + oh) * outW + ow] * share
                    for kh in 0..<kernel {
                        for kw in 0..<kernel { unsafe dx[plane * inH * inW + (oh * stride + kh) * inW + ow * stride + kw] += gradient }
                    }
                }
            }
        }
    }

    /// Batch statistics over N × spatial per channel in training (running statistics updated with the
    /// unbiased variance), running statistics otherwise. Saves the normalized input for the backward pass.
    private func batchNormForward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, group: ParameterGroup, state: NormState,
        normalized: UnsafeMutablePointer<Float>, count: Int, channels: Int, spatial: Int, epsilon: Float, training: Bool
    ) {
        let elements = Float(count * spatial), momentum = options.batchNormMomentum
        for channel in 0..<channels {
            var mean: Float, variance: Float
            if training {
                var sum: Double = 0, squares: Double = 0
                for image in 0..<count {
                    let row = unsafe x + (image * channels + channel) * spatial
                    for s in 0..<spatial { let v = Double(unsafe row[s]); sum += v; squares += v * v }
                }
                let mean64 = sum / Double(elements)
                mean = Float(mean64)
                variance = Float(max(0, squares / Double(elements) - mean64 * mean64))
                let unbiased = elements > 1 ? variance * elements / (elements - 1) : variance
                state.runningMean[channel] = (1 - momentum) * state.runningMean[channel] + momentum * mean
                state.runningVariance[channel] = (1 - momentum) * state.runningVariance[channel] + momentum * unbiased
            } else {
                mean = state.runningMean[channel]
                variance = state.runningVariance[channel]
            }
            let inverse = 1 / (variance + epsilon).squareRoot()
            state.inverseStd[channel] = inverse
            let scale = group.weight[channel], shift = group.bias[channel]
            for image in 0..<count {
                let offset = (image * channels + channel) * spatial
                for s in 0..<spatial {
                    let hat = unsafe (x[offset + s] - mean) * inverse
                    unsafe normalized[offset + s] = hat
                    unsafe y[offset + s] = hat * scale + shift
                }
            }
        }
    }

    /// dγ = Σ dy·x̂, dβ = Σ dy, dx = γ/σ · (dy − dβ/M − x̂·dγ/M) with M = N × spatial.
    private func batchNormBackward(
        _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>?, group: ParameterGroup, state: NormState,
        normalized: UnsafePointer<Float>, count: Int, channels: Int, spatial: Int
    ) {
        let elements = Float(count * spatial)
        for channel in 0..<channels {
            var dGamma: Float = 0, dBeta: Float = 0
            for image in 0..<count {
                let offset = (image * channels + channel) * spatial
                for s in 0..<spatial {
                    dGamma += unsafe dy[offset + s] * normalized[offset + s]
                    dBeta += unsafe dy[offset + s]
                }
            }
            group.weightGradient[channel] = dGamma
            group.biasGradient[channel] = dBeta
            guard let dx = unsafe dx else { continue }
            let factor = group.weight[channel] * state.inverseStd[channel]
            for image in 0..<count {
                let offset = (image * channels + channel) * spatial
                for s in 0..<spatial {
                    unsafe dx[offset + s] = factor * (dy[offset + s] - dBeta / elements - normalized[offset + s] * dGamma / elements)
                }
            }
        }
    }

    private func update() {
        updates += 1
        let rate = currentLearningRate
        for group in groups {
            apply(group.weight, group.weightGradient, group.weightState, group.weightState2, rate: rate, decay: group.decays ? options.weightDecay : 0)
            apply(group.bias, group.biasGradient, group.biasState, group.biasState2, rate: rate, decay: 0)
            if let keep = group.keep { for i in 0..<group.weight.count { group.weight[i] *= keep[i] } }
        }
    }

    private func apply(_ values: TrainingBuffer<Float>, _ grads: TrainingBuffer<Float>, _ first: TrainingBuffer<Float>, _ second: TrainingBuffer<Float>,
                       rate: Float, decay: Float) {
        let (v, g, m1, m2) = unsafe (values.pointer, grads.pointer, first.pointer, second.pointer)
        switch options.optimizer {
        case .sgd(let momentum):
            for i in 0..<values.count {
                let gradient = unsafe g[i] + decay * v[i]
                unsafe m1[i] = momentum * m1[i] + gradient
                unsafe v[i] -= rate * m1[i]
            }
        case let .adam(beta1, beta2, epsilon):
            let correction1 = 1 - pow(beta1, Float(updates)), correction2 = 1 - pow(beta2, Float(updates))
            for i in 0..<values.count {
                let gradient = unsafe g[i] + decay * v[i]
                unsafe m1[i] = beta1 * m1[i] + (1 - beta1) * gradient
                unsafe m2[i] = beta2 * m2[i] + (1 - beta2) * gradient * gradient
                unsafe v[i] -= rate * (m1[i] / correction1) / ((m2[i] / correction2).squareRoot() + epsilon)
            }
        }
    }

    // MARK: - Test hooks

    /// The mean loss of a batch without updating: cross-entropy, or with a teacher the distillation
    /// loss `distillationStep` minimizes. In inference mode unless `training` (batch statistics and
    /// the current dropout masks, for finite-difference checks of those layers).
    public func loss(
        input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int,
        teacher: (logits: UnsafeBufferPointer<Float>, temperature: Float, alpha: Float)? = nil
    ) throws(EngineError) -> Float {
        try unsafe loss(input: input, labels: labels, count: count, teacher: teacher, training: false)
    }

    func loss(input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int, teacher: Teacher?, training: Bool) throws(EngineError) -> Float {
        try unsafe check(input: input, labels: labels, count: count)
        unsafe forward(input, count: count, training: training)
        return try unsafe lossAndGradient(logits: buffers[steps.count - 1].activation.pointer, labels: labels, count: count,
                                          teacher: teacher, gradient: nil)
    }

    /// The analytic gradient of the loss for element `element` of parameter group `group` (Linear,
    /// Conv and BatchNorm layers in order; the weight, or the bias when `bias`) on a batch; leaves the
    /// parameters and optimizer state unchanged.
    func analyticGradient(
        layer group: Int, element: Int, bias: Bool = false, input: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int64>, count: Int,
        teacher: Teacher? = nil
    ) throws(EngineError) -> Float {
        let saved = groups.map { ($0.weight.array, $0.bias.array, $0.weightState.array, $0.biasState.array, $0.weightState2.array, $0.biasState2.array) }
        let savedNorms = norms.map { ($0.runningMean.array, $0.runningVariance.array) }
        let savedUpdates = updates
        _ = try unsafe step(input: input, labels: labels, count: count, teacher: teacher)
        let gradient = bias ? groups[group].biasGradient[element] : groups[group].weightGradient[element]
        for (target, values) in zip(groups, saved) {
            for (buffer, array) in [(target.weight, values.0), (target.bias, values.1), (target.weightState, values.2), (target.biasState, values.3),
                                    (target.weightState2, values.4), (target.biasState2, values.5)] {
                buffer.copy(from: TrainingBuffer(array))
            }
        }
        for (target, values) in zip(norms, savedNorms) {
            target.runningMean.copy(from: TrainingBuffer(values.0))
            target.runningVariance.copy(from: TrainingBuffer(values.1))
        }
        updates = savedUpdates
        return gradient
    }

    /// Nudges one parameter (for finite-difference checks).
    func perturb(layer group: Int, element: Int, bias: Bool = false, by delta: Float) {
        if bias { groups[group].bias[element] += delta } else { groups[group].weight[element] += delta }
    }
}
