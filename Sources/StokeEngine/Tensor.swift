/// Element types the engine computes with.
///
/// `uint8` and `int8` hold quantized values (QuantizeLinear/DequantizeLinear, the fused INT8
/// operators); the other ONNX integer types narrower than 64 bits (int16/32, uint16/32, bool) are
/// widened to `int64` when a model loads: in the supported operator set they only carry indices,
/// shapes and masks.
public enum ElementType: Sendable, Equatable, CustomStringConvertible {
    case float32
    case int64
    /// Quantized activations (asymmetric, with a zero point).
    case uint8
    /// Quantized weights (symmetric).
    case int8

    /// Size of one element in bytes.
    public var byteCount: Int {
        switch self {
        case .float32: return 4
        case .int64: return 8
        case .uint8, .int8: return 1
        }
    }

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .int64: return "int64"
        case .uint8: return "uint8"
        case .int8: return "int8"
        }
    }

    /// The engine type holding an ONNX `TensorProto.DataType` (1 and 11 float32, 2 uint8, 3 int8,
    /// other integer types int64).
    public init(onnxCode: Int) {
        switch onnxCode {
        case 1, 11: self = .float32
        case 2: self = .uint8
        case 3: self = .int8
        default: self = .int64
        }
    }

    /// The ONNX `TensorProto.DataType` code of this type.
    public var onnxCode: Int {
        switch self {
        case .float32: return 1
        case .uint8: return 2
        case .int8: return 3
        case .int64: return 7
        }
    }
}

/// Number of elements in a tensor of this shape (1 for a scalar, whose shape is `[]`).
/// Saturates at `Int.max` instead of trapping, so shapes computed from a malformed model fail
/// the engine's size checks rather than crash.
@inline(__always)
func elementCount(_ shape: [Int]) -> Int {
    var count = 1
    for extent in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: extent)
        if overflow || extent < 0 { return Int.max }
        count = product
    }
    return count
}

/// The largest tensor the engine will create, in elements (64 GiB of float32).
let maximumElementCount = 1 << 34

/// A dense, row-major (C order), immutable tensor owned by the engine.
///
/// Copies share storage; the storage is written only while a tensor is being created, so sharing
/// is safe across threads.
public struct Tensor: Sendable, CustomStringConvertible {
    /// The element type of every element.
    public let elementType: ElementType
    /// Extent of each axis, outermost first; `[]` is a scalar.
    public let shape: [Int]
    let storage: TensorStorage

    /// Number of elements.
    public var count: Int { elementCount(shape) }

    init(elementType: ElementType, shape: [Int], storage: TensorStorage) {
        self.elementType = elementType
        self.shape = shape
        self.storage = storage
    }

    /// A zero-filled tensor, to be written by the engine before anyone else sees it.
    init(zeros elementType: ElementType, shape: [Int]) {
        self.init(elementType: elementType, shape: shape,
                  storage: TensorStorage(byteCount: elementCount(shape) * elementType.byteCount))
    }

    /// A float32 tensor; `values.count` must equal the product of `shape`.
    public init(shape: [Int], floats values: [Float]) {
        precondition(values.count == elementCount(shape), "\(values.count) values do not fill shape \(shape)")
        self.init(zeros: .float32, shape: shape)
        storage.copy(from: values)
    }

    /// An int64 tensor; `values.count` must equal the product of `shape`.
    public init(shape: [Int], int64s values: [Int64]) {
        precondition(values.count == elementCount(shape), "\(values.count) values do not fill shape \(shape)")
        self.init(zeros: .int64, shape: shape)
        storage.copy(from: values)
    }

    /// A uint8 tensor (quantized activations); `values.count` must equal the product of `shape`.
    public init(shape: [Int], uint8s values: [UInt8]) {
        precondition(values.count == elementCount(shape), "\(values.count) values do not fill shape \(shape)")
        self.init(zeros: .uint8, shape: shape)
        storage.copy(from: values)
    }

    /// An int8 tensor (quantized weights); `values.count` must equal the product of `shape`.
    public init(shape: [Int], int8s values: [Int8]) {
        precondition(values.count == elementCount(shape), "\(values.count) values do not fill shape \(shape)")
        self.init(zeros: .int8, shape: shape)
        storage.copy(from: values)
    }

    /// The elements as `Float` (integer elements are converted; quantized ones are NOT dequantized).
    public var floats: [Float] {
        switch elementType {
        case .float32: return storage.array(of: Float.self, count: count)
        case .int64: return storage.array(of: Int64.self, count: count).map { Float($0) }
        case .uint8: return storage.array(of: UInt8.self, count: count).map { Float($0) }
        case .int8: return storage.array(of: Int8.self, count: count).map { Float($0) }
        }
    }

    /// The elements as `Int64` (float32 elements are truncated toward zero).
    public var int64s: [Int64] {
        switch elementType {
        case .int64: return storage.array(of: Int64.self, count: count)
        case .float32: return storage.array(of: Float.self, count: count).map { Int64($0) }
        case .uint8: return storage.array(of: UInt8.self, count: count).map { Int64($0) }
        case .int8: return storage.array(of: Int8.self, count: count).map { Int64($0) }
        }
    }

    /// The elements as `UInt8` (other types are truncated like `int64s`, then saturated to 0...255).
    public var uint8s: [UInt8] {
        elementType == .uint8 ? storage.array(of: UInt8.self, count: count) : int64s.map { UInt8(clamping: $0) }
    }

    /// The elements as `Int8` (other types are truncated like `int64s`, then saturated to -128...127).
    public var int8s: [Int8] {
        elementType == .int8 ? storage.array(of: Int8.self, count: count) : int64s.map { Int8(clamping: $0) }
    }

    /// The same elements viewed with another shape of equal element count.
    func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(elementCount(newShape) == count)
        return Tensor(elementType: elementType, shape: newShape, storage: storage)
    }

    public var description: String {
        "Tensor<\(elementType)>\(shape)"
    }
}

extension Tensor {
    /// Decodes a serialized ONNX `TensorProto` (the `.pb` files of ONNX test data).
    ///
    /// - Returns: the tensor's name (may be empty) and its values.
    /// - Throws: `EngineError.malformedProtobuf` naming the field, `.unsupportedElementType`,
    ///   or `.externalDataUnsupported`.
    public static func decodeONNX(_ bytes: [UInt8]) throws(EngineError) -> (name: String, tensor: Tensor) {
        var reader = ProtobufReader(bytes: bytes, range: 0..<bytes.count, path: "TensorProto")
        let (name, tensor) = try ONNXDecoder.decodeTensor(&reader)
        return (name, tensor)
    }
}
