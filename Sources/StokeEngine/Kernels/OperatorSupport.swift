// Plan-time operator interface. Each operator checks its inputs' shapes, computes its outputs'
// shapes, and returns a kernel closure bound to slot indices, so running a plan allocates nothing.

import StokeStore

/// The run-time table of buffer addresses, one per value slot of a plan.
///
/// Kernels read their inputs and write their outputs through it; the plan sets graph inputs'
/// entries to the caller's buffers before each run.
@safe
struct Slots {
    let base: UnsafeMutablePointer<UnsafeMutableRawPointer>

    func raw(_ slot: Int) -> UnsafeMutableRawPointer { unsafe base[slot] }
    func floats(_ slot: Int) -> UnsafeMutablePointer<Float> { unsafe base[slot].assumingMemoryBound(to: Float.self) }
    func int64s(_ slot: Int) -> UnsafeMutablePointer<Int64> { unsafe base[slot].assumingMemoryBound(to: Int64.self) }
    func set(_ slot: Int, _ pointer: UnsafeMutableRawPointer) { unsafe base[slot] = pointer }
}

/// A bound operator: reads and writes the slots it captured at plan time.
typealias Kernel = (Slots) -> Void

/// What the planner knows about a value for one set of concrete input shapes.
struct PlanValue {
    var type: ElementType
    var shape: [Int]
    /// Set when the value is known before the run (initializers, folded shape arithmetic).
    var constant: Tensor?

    var count: Int { elementCount(shape) }

    init(type: ElementType, shape: [Int], constant: Tensor? = nil) {
        self.type = type
        self.shape = shape
        self.constant = constant
    }

    init(_ tensor: Tensor) {
        self.init(type: tensor.elementType, shape: tensor.shape, constant: tensor)
    }
}

/// An operator's plan for one node.
enum OpPlan {
    /// Run `kernel` each time; it writes outputs of these types and shapes.
    case kernel([(ElementType, [Int])], Kernel)
    /// Output 0 is input 0's bytes with a new shape (Reshape, Flatten, Identity, ...): no copy.
    case alias(ElementType, [Int])
    /// The outputs are known now (Shape of a planned tensor, Constant, ...).
    case constants([Tensor])
}

/// Key of the attribute the fusion pass sets on Gemm/Conv/MatMul to apply an activation in the
/// kernel's epilogue; its value names the activation ("Relu" or "LeakyRelu").
let fusedActivationKey = "stoke.activation"
let fusedAlphaKey = "stoke.alpha"
/// Key of the attribute the pooling fusion sets on a Conv whose only consumer was a 2x2, stride-2,
/// unpadded MaxPool (after any fused activation): the Conv's output is then the pooled tensor.
let fusedMaxPoolKey = "stoke.maxpool2x2"

/// Everything an operator sees while being planned.
struct OpContext {
    let node: Node
    let opset: Int64
    /// nil for omitted optional inputs (empty names).
    let inputs: [PlanValue?]
    let inputSlots: [Int]
    let outputSlots: [Int]
    /// What outputs, workspaces and constants sized by this node are checked against before they are
    /// allocated.
    var budget: MemoryBudget = .current
    /// Planning only for shapes and costs (`inspect`): the plan never runs, so workspaces are not
    /// allocated (`workspaces` returns placeholders) and activations are not checked against the budget.
    var shapesOnly = false
    /// The session's execution context: the threads, GEMM backend and convolution policy the plan
    /// uses (captured at plan time; kernels never read process-wide settings).
    var execution: ExecutionContext = .default

    var name: String { node.name }
    var op: String { node.opType }

    func fail(_ detail: String) -> EngineError { .shapeMismatch(op: op, node: name, detail: detail) }
    func unsupported(_ detail: String) -> EngineError { .unsupportedAttribute(op: op, node: name, detail: detail) }

    func input(_ index: Int) throws(EngineError) -> PlanValue {
        guard index < inputs.count, let value = inputs[index] else { throw fail("missing required input \(index)") }
        return value
    }

    func optionalInput(_ index: Int) -> PlanValue? { index < inputs.count ? inputs[index] : nil }

    /// An input that must be known at plan time (shapes, axes, pads), or nil when omitted.
    func constantInput(_ index: Int, _ what: String) throws(EngineError) -> Tensor? {
        guard let value = optionalInput(index) else { return nil }
        guard let constant = value.constant else {
            throw unsupported("input \(index) (\(what)) computed at run time; it must be a constant or derived from shapes")
        }
        return constant
    }

    func float32Input(_ index: Int) throws(EngineError) -> PlanValue {
        let value = try input(index)
        guard value.type == .float32 else { throw unsupported("element type \(value.type) for input \(index) (float32 only)") }
        return value
    }

    func int(_ key: String, _ fallback: Int) throws(EngineError) -> Int {
        switch node.attributes[key] {
        case nil: return fallback
        case let .int(value)?: return clampedInt(value)
        default: throw unsupported("attribute \(key) is not an int")
        }
    }

    func ints(_ key: String) throws(EngineError) -> [Int]? {
        switch node.attributes[key] {
        case nil: return nil
        case let .ints(values)?: return values.map(clampedInt)
        default: throw unsupported("attribute \(key) is not a list of ints")
        }
    }

    func float(_ key: String, _ fallback: Float) throws(EngineError) -> Float {
        switch node.attributes[key] {
        case nil: return fallback
        case let .float(value)?: return value
        case let .int(value)?: return Float(value)
        default: throw unsupported("attribute \(key) is not a float")
        }
    }

    func string(_ key: String, _ fallback: String) throws(EngineError) -> String {
        switch node.attributes[key] {
        case nil: return fallback
        case let .string(value)?: return value
        default: throw unsupported("attribute \(key) is not a string")
        }
    }

    /// The activation fused into this node's epilogue, as a `stoke_unary_op` code and its alpha.
    func fusedActivation() throws(EngineError) -> (code: Int32, alpha: Float) {
        switch try string(fusedActivationKey, "") {
        case "": return (0, 0)
        case "Relu": return (1, 0)
        case "LeakyRelu": return (2, try float(fusedAlphaKey, 0.01))
        case let other: throw unsupported("fused activation \(other)")
        }
    }

    /// Checks a shape computed from model data before anything of that size is allocated.
    func checkedShape(_ shape: [Int]) throws(EngineError) -> [Int] {
        guard shape.allSatisfy({ $0 >= 0 }), elementCount(shape) <= maximumElementCount else {
            throw fail("shape \(shape) is negative or larger than \(maximumElementCount) elements")
        }
        return shape
    }

    /// Throws `EngineError.memoryBudget` naming this node when `bytes` (nil: the size overflowed) is
    /// above the budget. Skipped while planning shapes only, unless `always` (constants made now).
    func checkBudget(_ bytes: Int?, for what: @autoclosure () -> String, always: Bool = false) throws(EngineError) {
        if shapesOnly && !always { return }
        do {
            try budget.check(bytes ?? -1, for: what())
        } catch {
            throw .memoryBudget(op: op, node: name, error)
        }
    }

    /// Checks an output of `type` and `shape` (element cap and memory budget) before anything of that
    /// size, or derived from it, is allocated. `constant`: the value is made now, even when planning
    /// shapes only.
    func checkOutput(_ type: ElementType, _ shape: [Int], index: Int = 0, constant: Bool = false) throws(EngineError) {
        _ = try checkedShape(shape)
        let label = index < node.outputs.count ? "output '\(node.outputs[index])'" : "output \(index)"
        try checkBudget(MemoryBudget.product([elementCount(shape), type.byteCount]), for: "\(label) \(shape) of \(type)", always: constant)
    }

    /// `count` scratch blocks of the product of `byteFactors` bytes each (one per thread, say), checked
    /// together against the budget with overflow-safe arithmetic; placeholders when planning shapes only.
    func workspaces(_ count: Int, bytes byteFactors: [Int], _ what: String) throws(EngineError) -> [TensorStorage] {
        if shapesOnly { return (0..<count).map { _ in TensorStorage(byteCount: 0) } }
        let each = MemoryBudget.product(byteFactors)
        try checkBudget(MemoryBudget.product([each ?? -1, count]), for: count > 1 ? "\(what) (\(count) threads)" : what)
        return (0..<count).map { _ in TensorStorage(byteCount: each ?? 0) }
    }

    /// One scratch block of the product of `byteFactors` bytes (see `workspaces`).
    func workspace(bytes byteFactors: [Int], _ what: String) throws(EngineError) -> TensorStorage {
        try workspaces(1, bytes: byteFactors, what)[0]
    }

    /// Normalizes a possibly negative axis against `rank`.
    func axis(_ value: Int, rank: Int) throws(EngineError) -> Int {
        let axis = value < 0 ? value + rank : value
        guard axis >= 0, axis < max(rank, 1) else { throw fail("axis \(value) out of range for rank \(rank)") }
        return axis
    }
}

// MARK: - Shape helpers

/// Numpy broadcasting of two shapes, or nil when they are incompatible.
func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if x == y || y == 1 { result[i] = x } else if x == 1 { result[i] = y } else { return nil }
    }
    return result
}

/// Dense row-major strides (in elements) of a shape.
func denseStrides(_ shape: [Int]) -> [Int64] {
    var strides = [Int64](repeating: 1, count: shape.count)
    var running: Int64 = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[axis] = running
        running *= Int64(shape[axis])
    }
    return strides
}

/// Strides that read a dense tensor of `shape` as if it had `target` shape (0 on broadcast axes).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int64] {
    let dense = denseStrides(shape)
    let offset = target.count - shape.count
    return (0..<target.count).map { axis in
        axis < offset || shape[axis - offset] == 1 ? 0 : dense[axis - offset]
    }
}

/// Merges adjacent axes that are contiguous in every operand, so N-d loops run long inner rows.
func coalesce(shape: [Int], strides: [[Int64]]) -> ([Int], [[Int64]]) {
    guard !shape.isEmpty else { return (shape, strides) }
    var outShape = [shape[shape.count - 1]]
    var outStrides = strides.map { [$0[shape.count - 1]] }
    for axis in stride(from: shape.count - 2, through: 0, by: -1) {
        let inner = outShape[0]
        let mergeable = strides.indices.allSatisfy { k in strides[k][axis] == outStrides[k][0] * Int64(inner) }
        if shape[axis] == 1 { continue }
        if mergeable {
            outShape[0] *= shape[axis]
        } else {
            outShape.insert(shape[axis], at: 0)
            for k in strides.indices { outStrides[k].insert(strides[k][axis], at: 0) }
        }
    }
    return (outShape, outStrides)
}

/// Integer values of a constant tensor (shapes, axes, pads), clamped like attributes.
func intValues(_ tensor: Tensor) -> [Int] { tensor.int64s.map(clampedInt) }

/// Clamps model-supplied integers to ±2⁴⁰: far beyond any real extent (so "to the end"
/// sentinels such as INT64_MAX keep their meaning) yet small enough that shape arithmetic on
/// them cannot overflow.
func clampedInt(_ value: Int64) -> Int { Int(max(-(1 << 40), min(1 << 40, value))) }
