import StokeStore

/// One layer of a native sequential model. Shapes follow PyTorch: images are [N, C, H, W],
/// features [N, F]; the batch axis N is never part of a layer's configuration.
public enum Layer: Sendable, Equatable {
    /// y = x Wᵀ + b with W of shape [outFeatures, inFeatures] (PyTorch `nn.Linear`).
    case linear(inFeatures: Int, outFeatures: Int, bias: Bool = true)
    /// 2-D convolution with square kernels, W of shape [outChannels, inChannels, k, k].
    case conv2d(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true)
    case relu
    /// Max pooling over kernelSize×kernelSize windows; stride defaults to kernelSize.
    case maxPool2d(kernelSize: Int, stride: Int? = nil)
    /// Average pooling over kernelSize×kernelSize windows; stride defaults to kernelSize.
    case avgPool2d(kernelSize: Int, stride: Int? = nil)
    /// Flattens every axis after the batch axis.
    case flatten
    /// Inference-mode batch normalization over `features` channels (axis 1).
    case batchNorm(features: Int, epsilon: Float = 1e-5)
    /// Dropout: the identity at inference; `probability` is kept for training and export.
    case dropout(probability: Float)
}

/// A sequential model defined in Swift: layers plus named parameters, runnable on the same
/// executor as imported ONNX models and exportable to ONNX.
///
/// Parameter names follow PyTorch's `nn.Sequential` state dict (`"0.weight"`, `"2.running_mean"`),
/// so weights map one-to-one between Stoke and PyTorch.
public struct SequentialModel: Sendable {
    public let layers: [Layer]
    /// Shape of one sample, without the batch axis (e.g. [1, 28, 28] or [784]).
    public let sampleShape: [Int]
    /// Parameters by PyTorch state-dict name.
    public private(set) var parameters: [String: Tensor]

    /// Creates the model with PyTorch's default initialization (uniform ±1/√fan_in for weights
    /// and biases; BatchNorm scale 1, shift 0, running mean 0, running variance 1), seeded so the
    /// same seed gives the same weights.
    ///
    /// - Throws: `EngineError.invalidModel` if a layer does not fit the shape it receives.
    public init(layers: [Layer], sampleShape: [Int], seed: UInt64 = 0) throws(EngineError) {
        self.layers = layers
        self.sampleShape = sampleShape
        self.parameters = [:]
        // Shapes first, then sizes, then weights: a model (or a model file) whose layers do not fit or
        // whose parameters would not fit in memory is refused before anything is allocated.
        guard sampleShape.allSatisfy({ $0 > 0 }), elementCount(sampleShape) <= maximumElementCount else {
            throw EngineError.invalidModel("sample shape \(sampleShape) is empty or too large")
        }
        _ = try outputSampleShape()
        for (index, layer) in layers.enumerated() {
            let shape: [Int]
            switch layer {
            case let .linear(inFeatures, outFeatures, _): shape = [outFeatures, inFeatures]
            case let .conv2d(inChannels, outChannels, kernelSize, _, _, _): shape = [outChannels, inChannels, kernelSize, kernelSize]
            default: continue
            }
            guard shape.allSatisfy({ $0 > 0 }), elementCount(shape) <= maximumElementCount else {
                throw EngineError.invalidModel("layer \(index) (\(layer)): \(shape) weights are empty or too large")
            }
        }
        var generator = SplitMix64(seed: seed)
        var parameters: [String: Tensor] = [:]
        func uniform(_ shape: [Int], bound: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<elementCount(shape)).map { _ in generator.nextFloat() * 2 * bound - bound })
        }
        for (index, layer) in layers.enumerated() {
            switch layer {
            case let .linear(inFeatures, outFeatures, bias):
                let bound = 1 / Float(inFeatures).squareRoot()
                parameters["\(index).weight"] = uniform([outFeatures, inFeatures], bound: bound)
                if bias { parameters["\(index).bias"] = uniform([outFeatures], bound: bound) }
            case let .conv2d(inChannels, outChannels, kernelSize, _, _, bias):
                let bound = 1 / Float(elementCount([inChannels, kernelSize, kernelSize])).squareRoot()
                parameters["\(index).weight"] = uniform([outChannels, inChannels, kernelSize, kernelSize], bound: bound)
                if bias { parameters["\(index).bias"] = uniform([outChannels], bound: bound) }
            case let .batchNorm(features, _):
                parameters["\(index).weight"] = Tensor(shape: [features], floats: [Float](repeating: 1, count: features))
                parameters["\(index).bias"] = Tensor(shape: [features], floats: [Float](repeating: 0, count: features))
                parameters["\(index).running_mean"] = Tensor(shape: [features], floats: [Float](repeating: 0, count: features))
                parameters["\(index).running_var"] = Tensor(shape: [features], floats: [Float](repeating: 1, count: features))
            default: break
            }
        }
        self.parameters = parameters
    }

    /// Replaces a parameter (e.g. with trained or PyTorch weights); the shape must match.
    public mutating func setParameter(_ name: String, _ value: Tensor) throws(EngineError) {
        guard let current = parameters[name] else { throw EngineError.badInput("no parameter named '\(name)'") }
        guard current.shape == value.shape, value.elementType == .float32 else {
            throw EngineError.badInput("parameter '\(name)' has shape \(current.shape), got \(value.shape) \(value.elementType)")
        }
        parameters[name] = value
    }

    /// Shape of one output sample; checks every layer against the shape it receives.
    public func outputSampleShape() throws(EngineError) -> [Int] {
        var shape = sampleShape
        for (index, layer) in layers.enumerated() { shape = try Self.outputShape(of: layer, at: index, input: shape) }
        return shape
    }

    /// The sample shape `layer` (at position `index`) produces from `input`, as `outputSampleShape`
    /// computes it for the whole model.
    ///
    /// - Throws: `EngineError.invalidModel` naming the layer when it does not fit `input`.
    static func outputShape(of layer: Layer, at index: Int, input shape: [Int]) throws(EngineError) -> [Int] {
        func fail(_ detail: String) -> EngineError { .invalidModel("layer \(index) (\(layer)): \(detail); input shape \(shape)") }
        func pooled(_ extent: Int, _ kernel: Int, _ stride: Int, _ padding: Int) throws(EngineError) -> Int {
            // Bounded first, so a hostile padding or extent cannot overflow the arithmetic below.
            guard kernel > 0, stride > 0, padding >= 0, padding < 1 << 31, extent < 1 << 31, kernel < 1 << 31,
                  extent + 2 * padding >= kernel else { throw fail("window does not fit") }
            return (extent + 2 * padding - kernel) / stride + 1
        }
        switch layer {
        case let .linear(inFeatures, outFeatures, _):
            guard shape == [inFeatures] else { throw fail("expects [\(inFeatures)] features") }
            return [outFeatures]
        case let .conv2d(inChannels, outChannels, kernel, stride, padding, _):
            guard shape.count == 3, shape[0] == inChannels else { throw fail("expects [\(inChannels), H, W]") }
            return [outChannels, try pooled(shape[1], kernel, stride, padding), try pooled(shape[2], kernel, stride, padding)]
        case let .maxPool2d(kernel, stride), let .avgPool2d(kernel, stride):
            guard shape.count == 3 else { throw fail("expects [C, H, W]") }
            return [shape[0], try pooled(shape[1], kernel, stride ?? kernel, 0), try pooled(shape[2], kernel, stride ?? kernel, 0)]
        case .flatten:
            let count = elementCount(shape)
            guard count <= maximumElementCount else { throw fail("\(shape) has too many values") }
            return [count]
        case let .batchNorm(features, _):
            guard shape.first == features else { throw fail("expects \(features) channels on axis 1") }
            return shape
        case .relu, .dropout:
            return shape
        }
    }

    /// The model as an ONNX-style graph with input "input" [N, sampleShape...] and output "output".
    public func graph() throws(EngineError) -> Graph {
        let outputShape = try outputSampleShape()
        var nodes: [Node] = []
        var initializers: [String: Tensor] = [:]
        var current = "input"
        for (index, layer) in layers.enumerated() {
            let output = index == layers.count - 1 ? "output" : "layer\(index)"
            let name = "layer\(index)"
            func parameter(_ suffix: String) -> String {
                let key = "\(index).\(suffix)"
                initializers[key] = parameters[key]
                return key
            }
            switch layer {
            case let .linear(_, _, bias):
                nodes.append(Node(name: name, opType: "Gemm", inputs: [current, parameter("weight")] + (bias ? [parameter("bias")] : []),
                                  outputs: [output], attributes: ["transB": .int(1)]))
            case let .conv2d(_, _, kernel, stride, padding, bias):
                let p = Int64(padding), s = Int64(stride), k = Int64(kernel)
                nodes.append(Node(name: name, opType: "Conv", inputs: [current, parameter("weight")] + (bias ? [parameter("bias")] : []),
                                  outputs: [output], attributes: ["kernel_shape": .ints([k, k]), "strides": .ints([s, s]), "pads": .ints([p, p, p, p])]))
            case .relu:
                nodes.append(Node(name: name, opType: "Relu", inputs: [current], outputs: [output]))
            case let .maxPool2d(kernel, stride), let .avgPool2d(kernel, stride):
                let k = Int64(kernel), s = Int64(stride ?? kernel)
                let op = if case .maxPool2d = layer { "MaxPool" } else { "AveragePool" }
                nodes.append(Node(name: name, opType: op, inputs: [current], outputs: [output],
                                  attributes: ["kernel_shape": .ints([k, k]), "strides": .ints([s, s])]))
            case .flatten:
                nodes.append(Node(name: name, opType: "Flatten", inputs: [current], outputs: [output], attributes: ["axis": .int(1)]))
            case let .batchNorm(_, epsilon):
                nodes.append(Node(name: name, opType: "BatchNormalization",
                                  inputs: [current, parameter("weight"), parameter("bias"), parameter("running_mean"), parameter("running_var")],
                                  outputs: [output], attributes: ["epsilon": .float(epsilon)]))
            case let .dropout(probability):
                // Opset 12+ takes the ratio as an input (a scalar constant), not an attribute; without it
                // a round trip through ONNX would come back as the default 0.5.
                let ratio = "\(index).ratio"
                initializers[ratio] = Tensor(shape: [], floats: [probability])
                nodes.append(Node(name: name, opType: "Dropout", inputs: [current, ratio], outputs: [output]))
            }
            current = output
        }
        if layers.isEmpty {
            nodes.append(Node(name: "identity", opType: "Identity", inputs: ["input"], outputs: ["output"]))
        }
        return Graph(name: "stoke_sequential", nodes: nodes, initializers: initializers,
                     inputs: [ValueInfo(name: "input", shape: [.symbolic("batch")] + sampleShape.map { .fixed($0) })],
                     outputs: [ValueInfo(name: "output", shape: [.symbolic("batch")] + outputShape.map { .fixed($0) })])
    }

    /// ONNX opset the native graph is written against.
    public static let opset: Int64 = 17

    /// The model ready to run (optimized like an imported one).
    public func model(options: OptimizationOptions = .init()) throws(EngineError) -> Model {
        try Model(graph: graph(), opset: Self.opset, options: options)
    }

    /// The model as `.onnx` bytes for onnxruntime or PyTorch tooling (unoptimized graph, opset 17).
    public func onnx() throws(EngineError) -> [UInt8] {
        ONNXExport.serialize(graph: try graph(), opset: Self.opset)
    }
}

extension SplitMix64 {
    /// Uniform in [0, 1), from the top 24 bits (exactly representable as Float).
    mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
