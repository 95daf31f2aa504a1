/// One dimension of a declared input/output shape.
public enum Dimension: Sendable, Equatable, CustomStringConvertible {
    /// A fixed extent.
    case fixed(Int)
    /// A named symbolic extent such as `"batch"`, bound when the model runs.
    case symbolic(String)
    /// Neither a value nor a name was given.
    case unknown

    public var description: String {
        switch self {
        case let .fixed(value): return String(value)
        case let .symbolic(name): return name
        case .unknown: return "?"
        }
    }
}

/// A declared graph input or output: name, element type and (possibly symbolic) shape.
public struct ValueInfo: Sendable, Equatable {
    public var name: String
    /// The ONNX `TensorProto.DataType` code (1 = float32, 7 = int64), 0 when not declared.
    public var onnxElementType: Int
    /// nil when the model declares no shape at all.
    public var shape: [Dimension]?

    /// - Parameters:
    ///   - onnxElementType: ONNX `TensorProto.DataType` code: 1 = float32, 7 = int64.
    public init(name: String, onnxElementType: Int = 1, shape: [Dimension]?) {
        self.name = name
        self.onnxElementType = onnxElementType
        self.shape = shape
    }
}

/// An attribute value of a node.
public enum AttributeValue: Sendable {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(Tensor)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    case tensors([Tensor])
    /// A subgraph (If/Loop/Scan); kept only so the model reads, no supported operator uses it.
    case graph
    case unsupported(type: Int)
}

/// One operator invocation in a graph.
public struct Node: Sendable {
    public var name: String
    public var opType: String
    /// The operator-set domain; "" and "ai.onnx" are the default domain.
    public var domain: String
    /// Input value names; "" marks an omitted optional input.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: AttributeValue]

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: AttributeValue] = [:]) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

/// A computation graph: nodes in any order, constant initializers, and declared inputs/outputs.
public struct Graph: Sendable {
    public var name: String
    public var nodes: [Node]
    public var initializers: [String: Tensor]
    /// Graph inputs that are not initializers: what a caller must feed.
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]

    public init(name: String, nodes: [Node], initializers: [String: Tensor], inputs: [ValueInfo], outputs: [ValueInfo]) {
        self.name = name
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// The parts of an ONNX `ModelProto` the engine uses.
public struct ONNXModel: Sendable {
    public var irVersion: Int64
    public var producerName: String
    /// Operator-set version per domain ("" is the default ONNX domain).
    public var opsetImports: [String: Int64]
    public var graph: Graph

    /// The default-domain opset version (ONNX rules for ops change with it).
    public var opsetVersion: Int64 { opsetImports[""] ?? opsetImports["ai.onnx"] ?? 1 }
}
