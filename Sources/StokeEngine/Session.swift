import COpenBLAS
import Dispatch
import StokeStore

/// Runs a `Model`. A session owns plans (one per distinct set of input shapes, built on first use)
/// and their arenas, so steady-state runs allocate nothing. Its `ExecutionContext` (threads, GEMM
/// backend, convolution policy) is fixed when it is made and reaches every plan it builds; sessions
/// with different contexts in one process do not affect each other. Not thread-safe: use one session
/// per thread.
public final class Session {
    public let model: Model
    /// How this session's plans run: threads, GEMM backend, convolution policy, kernel set.
    public let context: ExecutionContext
    /// The threads this session's kernels use (`context.threads`).
    public var threads: Int { context.threads }
    /// What each plan's activations, workspaces and folded constants are checked against before they
    /// are allocated (`EngineError.memoryBudget`).
    public let memoryBudget: MemoryBudget
    private var plans: [PlanKey: ExecutionPlan] = [:]
    /// The most recently used plan: steady-state runs with unchanged shapes skip the hash lookup.
    private var lastPlan: (PlanKey, ExecutionPlan)?

    /// Plans are specialized on input shapes and on the values of small integer inputs, which
    /// in exported graphs carry shapes, axes and pads that kernels need at plan time.
    private struct PlanKey: Hashable {
        var shapes: [[Int]]
        var types: [ElementType]
        var integerValues: [[Int64]?]
    }

    /// Integer inputs up to this many elements are treated as plan-time constants.
    static let specializedIntegerInputLimit = 64

    /// - Parameters:
    ///   - context: threads, GEMM backend and convolution policy (default: `ExecutionContext.default`,
    ///     one thread). Nothing process-wide is changed.
    ///   - memoryBudget: the most bytes one plan may allocate (default: the process's budget).
    public init(model: Model, context: ExecutionContext = .default, memoryBudget: MemoryBudget = .current) {
        self.model = model
        self.memoryBudget = memoryBudget
        self.context = context
    }

    /// A session on `ExecutionContext.default` with `threads` threads (the engine's whole thread
    /// budget: Stoke's kernels split work across them and OpenBLAS runs with that many).
    public convenience init(model: Model, threads: Int, memoryBudget: MemoryBudget = .current) {
        self.init(model: model, context: ExecutionContext.default.with(threads: threads), memoryBudget: memoryBudget)
    }

    /// The number of threads OpenBLAS was last set to (process-wide; each OpenBLAS GEMM sets it to
    /// its session's threads while it runs).
    public static var openBLASThreads: Int { Int(copenblas_get_threads()) }

    /// The plan for these input shapes, building it (shape inference, folding, arena) if new.
    /// With `shapesOnly` the plan is built without allocating activations or workspaces and is not
    /// kept (it cannot run): for shapes, costs and arena sizes.
    private func plan(shapes: [[Int]], types: [ElementType], integerInputs: [Tensor?]? = nil,
                      shapesOnly: Bool = false) throws(EngineError) -> ExecutionPlan {
        let integerInputs = integerInputs ?? [Tensor?](repeating: nil, count: shapes.count)
        let key = PlanKey(shapes: shapes, types: types, integerValues: integerInputs.map { $0?.int64s })
        if let plan = plans[key] {
            lastPlan = (key, plan)
            return plan
        }
        var bound: [String: Int] = [:]
        for (index, input) in model.inputs.enumerated() {
            // Declared element types must match what is fed (narrow ONNX integer types are int64 here).
            if input.onnxElementType != 0 {
                let expected = ElementType(onnxCode: input.onnxElementType)
                guard types[index] == expected else {
                    throw EngineError.badInput("'\(input.name)' is \(types[index]); the model declares \(expected) (ONNX type \(input.onnxElementType))")
                }
            }
            guard let declared = input.shape else { continue }
            let shape = shapes[index]
            guard declared.count == shape.count else {
                throw EngineError.badInput("'\(input.name)' has shape \(shape); the model declares rank \(declared.count) (\(declared))")
            }
            for (axis, dim) in declared.enumerated() {
                switch dim {
                case let .fixed(value) where value != shape[axis]:
                    throw EngineError.badInput("'\(input.name)' axis \(axis) is \(shape[axis]); the model requires \(value)")
                case let .symbolic(name):
                    if let previous = bound[name], previous != shape[axis] {
                        throw EngineError.badInput("'\(input.name)' axis \(axis) binds \(name)=\(shape[axis]), but another input bound \(name)=\(previous)")
                    }
                    bound[name] = shape[axis]
                default: break
                }
            }
        }
        guard shapes.count == model.inputs.count, types.count == model.inputs.count else {
            throw EngineError.badInput("\(shapes.count) input shapes for \(model.inputs.count) inputs")
        }
        // Shapes asked about (costs, memory plans: a model's declared extents) are bounded like tensors,
        // so the planners' shape arithmetic on them cannot overflow.
        for (index, shape) in shapes.enumerated()
        where shape.contains(where: { $0 < 0 || $0 > maximumElementCount }) || elementCount(shape) > maximumElementCount {
            throw EngineError.badInput("'\(model.inputs[index].name)' has shape \(shape): negative or more than \(maximumElementCount) elements")
        }
        let plan = try ExecutionPlan(graph: model.graph, opset: model.opset, inputShapes: shapes, inputTypes: types,
                                     inputConstants: integerInputs, budget: memoryBudget, shapesOnly: shapesOnly,
                                     context: context)
        if shapesOnly { return plan }
        plans[key] = plan
        lastPlan = (key, plan)
        return plan
    }

    /// Arena bytes of the plan for these input shapes, and the bytes it would take without reuse.
    /// Planned for shapes only: nothing of that size is allocated (so it also answers for shapes
    /// whose activations exceed the memory budget).
    public func memoryPlan(inputShapes: [String: [Int]]) throws(EngineError) -> (arenaBytes: Int, unsharedBytes: Int) {
        let shapes = try model.inputs.map { (input) throws(EngineError) -> [Int] in
            guard let shape = inputShapes[input.name] else { throw EngineError.badInput("missing input '\(input.name)'") }
            return shape
        }
        let types = model.inputs.map { $0.onnxElementType == 0 ? ElementType.float32 : ElementType(onnxCode: $0.onnxElementType) }
        let plan = try plan(shapes: shapes, types: types, shapesOnly: true)
        return (plan.arenaBytes, plan.unsharedBytes)
    }

    private func prepared(_ inputs: [String: Tensor], override: (name: String, shape: [Int])? = nil) throws(EngineError) -> ExecutionPlan {
        // Steady state: the same shapes and types as the last run reuse its plan without building
        // a lookup key (no heap allocation on this path).
        if override == nil, let (key, plan) = lastPlan, inputs.count == key.shapes.count,
           key.integerValues.allSatisfy({ $0 == nil }) {
            var same = true
            for (index, input) in model.inputs.enumerated() {
                guard let tensor = inputs[input.name], tensor.shape == key.shapes[index], tensor.elementType == key.types[index],
                      !(tensor.elementType == .int64 && tensor.count <= Self.specializedIntegerInputLimit) else {
                    same = false
                    break
                }
            }
            if same {
                for (index, input) in model.inputs.enumerated() {
                    if let tensor = inputs[input.name] { unsafe plan.slots.set(plan.inputSlots[index], tensor.storage.pointer) }
                }
                return plan
            }
        }
        var shapes: [[Int]] = [], types: [ElementType] = [], integerInputs: [Tensor?] = []
        for input in model.inputs {
            if let override, override.name == input.name {
                shapes.append(override.shape); types.append(.float32); integerInputs.append(nil); continue
            }
            guard let tensor = inputs[input.name] else {
                throw EngineError.badInput("missing input '\(input.name)' (model inputs: \(model.inputs.map(\.name)))")
            }
            shapes.append(tensor.shape); types.append(tensor.elementType)
            let small = tensor.elementType == .int64 && tensor.count <= Self.specializedIntegerInputLimit
            integerInputs.append(small ? tensor : nil)
        }
        let known = Set(model.inputs.map(\.name))
        if let extra = inputs.keys.first(where: { !known.contains($0) }) {
            throw EngineError.badInput("'\(extra)' is not an input of the model (inputs: \(model.inputs.map(\.name)))")
        }
        let plan = try plan(shapes: shapes, types: types, integerInputs: integerInputs)
        for (index, input) in model.inputs.enumerated() {
            if let tensor = inputs[input.name] { unsafe plan.slots.set(plan.inputSlots[index], tensor.storage.pointer) }
        }
        return plan
    }

    /// Runs the model and returns each output as a new tensor, keyed by output name.
    ///
    /// Inputs are read in place (not copied).
    public func run(_ inputs: [String: Tensor]) throws(EngineError) -> [String: Tensor] {
        let plan = try prepared(inputs)
        plan.execute()
        return Dictionary(uniqueKeysWithValues: plan.outputs.map { ($0.name, copyOut($0, plan)) })
    }

    /// Runs the model and lends `body` views of the outputs in the session's arena; the views
    /// are valid only inside `body` (the next run overwrites them).
    public func run<R>(_ inputs: [String: Tensor], _ body: (Outputs) throws -> R) throws -> R {
        let plan = try prepared(inputs)
        plan.execute()
        return try body(Outputs(plan: plan))
    }

    /// Runs the model on a float32 batch that stays in the caller's memory (a loader batch, say):
    /// `data` is bound to input `name` with `shape` and read in place. `others` feeds any further inputs.
    public func run<R>(input name: String, shape: [Int], data: Span<Float>, others: [String: Tensor] = [:],
                       _ body: (Outputs) throws -> R) throws -> R {
        guard data.count == elementCount(shape) else {
            throw EngineError.badInput("'\(name)' has \(data.count) values, shape \(shape) needs \(elementCount(shape))")
        }
        guard let index = model.inputs.firstIndex(where: { $0.name == name }) else {
            throw EngineError.badInput("'\(name)' is not an input of the model (inputs: \(model.inputs.map(\.name)))")
        }
        let plan = try prepared(others, override: (name, shape))
        return try unsafe data.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { throw EngineError.badInput("'\(name)' is empty") }
            // Kernels never write through input slots, so the caller's memory stays unmodified.
            unsafe plan.slots.set(plan.inputSlots[index], UnsafeMutableRawPointer(mutating: base))
            plan.execute()
            return try body(Outputs(plan: plan))
        }
    }

    /// Per-node multiply-accumulates of one run with these input shapes (for `inspect`-style
    /// reports); nodes folded away at plan time do not appear. Planned for shapes only: no
    /// activation or workspace is allocated.
    public func costs(inputShapes: [String: [Int]]) throws(EngineError) -> [NodeCost] {
        let shapes = try model.inputs.map { (input) throws(EngineError) -> [Int] in
            guard let shape = inputShapes[input.name] else { throw EngineError.badInput("missing input '\(input.name)'") }
            return shape
        }
        let types = model.inputs.map { $0.onnxElementType == 0 ? ElementType.float32 : ElementType(onnxCode: $0.onnxElementType) }
        return try plan(shapes: shapes, types: types, shapesOnly: true).steps.map { NodeCost(node: $0.node, opType: $0.opType, macs: $0.macs) }
    }

    /// Runs the model `repeats` times and reports the time each node took, summed over the runs.
    public func profile(_ inputs: [String: Tensor], repeats: Int = 1) throws(EngineError) -> [NodeTiming] {
        let plan = try prepared(inputs)
        var seconds = [Double](repeating: 0, count: plan.steps.count)
        let slots = plan.slots
        for _ in 0..<max(1, repeats) {
            for (index, step) in plan.steps.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                step.kernel(slots)
                seconds[index] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
        }
        return plan.steps.enumerated().map {
            NodeTiming(node: $0.element.node, opType: $0.element.opType, seconds: seconds[$0.offset], macs: $0.element.macs * max(1, repeats))
        }
    }

    private func copyOut(_ output: PlannedOutput, _ plan: ExecutionPlan) -> Tensor {
        let tensor = Tensor(zeros: output.type, shape: output.shape)
        unsafe tensor.storage.pointer.copyMemory(from: plan.slots.raw(output.slot), byteCount: elementCount(output.shape) * output.type.byteCount)
        return tensor
    }

    /// Views of one run's outputs in the session's arena. Memory-safe to keep (it retains the
    /// plan), but the next run with the same input shapes overwrites what it shows.
    public struct Outputs {
        fileprivate let plan: ExecutionPlan

        /// Output names in the model's order.
        public var names: [String] { plan.outputs.map(\.name) }

        /// The shape of output `name`, or nil if the model has no such output.
        public func shape(_ name: String) -> [Int]? { plan.outputs.first { $0.name == name }?.shape }

        /// Lends the float32 elements of output `name` (row-major) without copying.
        public func withFloats<R>(_ name: String, _ body: (Span<Float>) throws -> R) throws -> R {
            guard let output = plan.outputs.first(where: { $0.name == name }) else { throw EngineError.badInput("no output named '\(name)'") }
            guard output.type == .float32 else { throw EngineError.badInput("output '\(name)' is \(output.type), not float32") }
            let buffer = unsafe UnsafeBufferPointer(start: plan.slots.floats(output.slot), count: elementCount(output.shape))
            return try unsafe body(buffer.span)
        }

        /// Lends the int64 elements of output `name` (row-major) without copying.
        public func withInt64s<R>(_ name: String, _ body: (Span<Int64>) throws -> R) throws -> R {
            guard let output = plan.outputs.first(where: { $0.name == name }) else { throw EngineError.badInput("no output named '\(name)'") }
            guard output.type == .int64 else { throw EngineError.badInput("output '\(name)' is \(output.type), not int64") }
            let buffer = unsafe UnsafeBufferPointer(start: plan.slots.int64s(output.slot), count: elementCount(output.shape))
            return try unsafe body(buffer.span)
        }

        /// A copy of output `name` as a tensor.
        public func tensor(_ name: String) throws -> Tensor {
            guard let output = plan.outputs.first(where: { $0.name == name }) else { throw EngineError.badInput("no output named '\(name)'") }
            let tensor = Tensor(zeros: output.type, shape: output.shape)
            unsafe tensor.storage.pointer.copyMemory(from: plan.slots.raw(output.slot), byteCount: elementCount(output.shape) * output.type.byteCount)
            return tensor
        }
    }
}

/// Time spent in one node over a profiling run.
public struct NodeTiming: Sendable {
    public let node: String
    public let opType: String
    /// Wall-clock seconds, summed over the profiled runs.
    public let seconds: Double
    /// Multiply-accumulates performed, summed over the profiled runs (0 for data movement).
    public let macs: Int

    /// Achieved GFLOP/s (2 FLOPs per multiply-accumulate), 0 when the node does no arithmetic.
    public var gigaflopsPerSecond: Double { seconds > 0 ? 2 * Double(macs) / seconds / 1e9 : 0 }
}

extension NodeTiming {
    /// Timings summed per operator type, slowest first: the "which kind of layer is slow" view.
    public static func byOperator(_ timings: [NodeTiming]) -> [NodeTiming] {
        Dictionary(grouping: timings, by: \.opType).map { op, group in
            NodeTiming(node: "\(group.count) node\(group.count == 1 ? "" : "s")", opType: op,
                       seconds: group.reduce(0) { $0 + $1.seconds }, macs: group.reduce(0) { $0 + $1.macs })
        }.sorted { $0.seconds > $1.seconds }
    }
}

/// The planned cost of one node for given input shapes.
public struct NodeCost: Sendable {
    public let node: String
    public let opType: String
    /// Multiply-accumulates per run (GEMM, MatMul and Conv; 0 for other operators).
    public let macs: Int
}
