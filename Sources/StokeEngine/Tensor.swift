/// Element types the engine computes with.
///
/// ONNX integer types narrower than 64 bits (int8/16/32, uint8/16/32, bool) are widened to `int64`
/// when a model loads: in the supported operator set they only carry indices, shapes and masks.
public enum ElementType: Sendable, Equatable, CustomStringConvertible {
    case float32
    case int64

    /// Size of one element in bytes.
    public var byteCount: Int {
        switch self {
        case .float32: return 4
        case .int64: return 8
        }
    }

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .int64: return "int64"
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

    /// The elements as `Float` (int64 elements are converted).
    public var floats: [Float] {
        switch elementType {
        case .float32: return storage.array(of: Float.self, count: count)
        case .int64: return storage.array(of: Int64.self, count: count).map { Float($0) }
        }
    }

    /// The elements as `Int64` (float32 elements are truncated toward zero).
    public var int64s: [Int64] {
        switch elementType {
        case .int64: return storage.array(of: Int64.self, count: count)
        case .float32: return storage.array(of: Float.self, count: count).map { Int64($0) }
        }
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
