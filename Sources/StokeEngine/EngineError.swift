import StokeStore

/// Everything that can go wrong while reading, planning or running a model.
///
/// Each case carries enough context (field path, node name, operator) to fix the model or the call
/// without a debugger.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    /// The protobuf bytes are not a valid encoding of the ONNX message at `field`
    /// (e.g. `ModelProto.graph.node[3].attribute[1].t.raw_data`); `offset` is the byte offset.
    case malformedProtobuf(field: String, offset: Int, reason: String)
    /// The model is well-formed protobuf but violates an ONNX rule the engine depends on.
    case invalidModel(String)
    /// A tensor stores its data in an external file, which this engine does not read.
    case externalDataUnsupported(tensor: String)
    /// A tensor element type the engine does not compute with (e.g. `float16`, `string`).
    case unsupportedElementType(tensor: String, onnxType: Int)
    /// An operator the engine has no kernel for, reported when the model loads.
    case unsupportedOperator(op: String, domain: String, node: String)
    /// An operator is supported, but not with these attributes or input kinds.
    case unsupportedAttribute(op: String, node: String, detail: String)
    /// Input shapes do not fit what the operator requires.
    case shapeMismatch(op: String, node: String, detail: String)
    /// The caller fed inputs that do not match the model's declared inputs.
    case badInput(String)
    /// A file could not be read.
    case io(path: String, detail: String)
    /// A Stoke HDF5 model file could not be written or read: `field` is what is at fault (`file`,
    /// an attribute path such as `stoke_model.layers[2].kernel_size`, or `dataset 0.weight`).
    case modelFile(path: String, field: String, detail: String)
    /// A tensor, workspace or plan sized from the model and its inputs would need more memory than
    /// `MemoryBudget.current` allows; refused before anything is allocated. `node` and `op` name the
    /// node whose output or workspace asked (both empty for a whole plan's activations).
    case memoryBudget(op: String, node: String, MemoryBudgetError)

    public var description: String {
        switch self {
        case let .malformedProtobuf(field, offset, reason):
            return "malformed ONNX protobuf in field \(field) at byte \(offset): \(reason)"
        case let .invalidModel(detail):
            return "invalid model: \(detail)"
        case let .externalDataUnsupported(tensor):
            return "tensor '\(tensor)' keeps its data in an external file; Stoke reads only self-contained .onnx files (re-save with onnx.save_model(model, path, save_as_external_data=False))"
        case let .unsupportedElementType(tensor, onnxType):
            return "tensor '\(tensor)' has ONNX element type \(onnxType), which Stoke does not support (float32 and integer types only)"
        case let .unsupportedOperator(op, domain, node):
            return "unsupported operator \(domain.isEmpty ? "" : domain + ".")\(op) in node '\(node)'"
        case let .unsupportedAttribute(op, node, detail):
            return "\(op) node '\(node)': unsupported \(detail)"
        case let .shapeMismatch(op, node, detail):
            return "\(op) node '\(node)': \(detail)"
        case let .badInput(detail):
            return "bad input: \(detail)"
        case let .io(path, detail):
            return "cannot read \(path): \(detail)"
        case let .modelFile(path, field, detail):
            return "model file \(path): \(field): \(detail)"
        case let .memoryBudget(op, node, budget):
            return node.isEmpty && op.isEmpty ? budget.description : "\(op) node '\(node)': \(budget)"
        }
    }
}
