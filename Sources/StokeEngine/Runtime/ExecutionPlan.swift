import StokeStore

/// One executable step of a plan.
struct PlanStep {
    let node: String
    let opType: String
    let kernel: Kernel
    /// Multiply-accumulates one run of this step performs (0 for data movement).
    var macs: Int = 0
}

/// Multiply-accumulates of a planned node, from its input and output shapes.
func multiplyAccumulates(_ node: Node, inputs: [PlanValue?], outputs: [[Int]]) -> Int {
    guard let output = outputs.first else { return 0 }
    let count = elementCount(output)
    // Quantized nodes (dynamic and static INT8) keep the op they replace in `stoke.original_op`.
    var op = node.opType
    if case let .string(original)? = node.attributes["stoke.original_op"] { op = original }
    switch op {
    case "Gemm":
        guard let a = inputs.first??.shape, a.count == 2 else { return 0 }
        var transA = false
        if case let .int(value)? = node.attributes["transA"] { transA = value != 0 }
        return count * (transA ? a[0] : a[1])
    case "MatMul":
        guard let a = inputs.first??.shape, let k = a.last else { return 0 }
        return count * k
    case "Conv":
        guard inputs.count > 1, let w = inputs[1]?.shape, w.count >= 3 else { return 0 }
        // A Conv with a fused 2x2 MaxPool computes 4 outputs per stored one (an odd last row or
        // column, which pooling drops, is not counted).
        let pooled = node.attributes[fusedMaxPoolKey] == nil ? 1 : 4
        return count * pooled * w[1...].reduce(1, *)
    default:
        return 0
    }
}

/// A graph output as planned: where it lives and what it holds.
struct PlannedOutput {
    let name: String
    let slot: Int
    let type: ElementType
    let shape: [Int]
}

/// A graph compiled for one set of input shapes: shapes inferred, shape arithmetic folded,
/// kernels bound to slots, and every intermediate placed in one arena with liveness-based reuse.
///
/// Running it allocates nothing: the caller's input buffers are bound to their slots and the
/// steps run in topological order.
final class ExecutionPlan {
    let steps: [PlanStep]
    let inputSlots: [Int]
    let outputs: [PlannedOutput]
    /// Bytes of the arena holding all intermediates and outputs.
    let arenaBytes: Int
    /// Sum of all intermediate sizes: what the arena would need without reuse.
    let unsharedBytes: Int
    private let table: SlotTable
    private let arena: TensorStorage
    /// Constants referenced by slots, kept alive with the plan.
    private let constants: [Tensor]

    var slots: Slots { table.slots }

    /// Whether this plan was made for shapes and costs only: it has no arena and must not run.
    let shapesOnly: Bool

    /// Plans `graph` (topologically sorted) for inputs of these shapes, in `graph.inputs` order.
    /// `inputConstants[i]`, when set, is the value input i will have: the plan folds it.
    ///
    /// Every output, workspace and the arena are checked against `budget` before they are allocated
    /// (`EngineError.memoryBudget`). With `shapesOnly` nothing activation-sized is allocated at all:
    /// the plan reports shapes, costs and arena size, and must not be executed.
    init(graph: Graph, opset: Int64, inputShapes: [[Int]], inputTypes: [ElementType], inputConstants: [Tensor?],
         budget: MemoryBudget = .current, shapesOnly: Bool = false, context: ExecutionContext = .default) throws(EngineError) {
        var values: [String: PlanValue] = [:]
        var slotOf: [String: Int] = [:]
        var slotCount = 0
        func newSlot() -> Int { defer { slotCount += 1 }; return slotCount }

        for (name, tensor) in graph.initializers { values[name] = PlanValue(tensor) }
        var inputSlots: [Int] = []
        for (index, input) in graph.inputs.enumerated() {
            values[input.name] = PlanValue(type: inputTypes[index], shape: inputShapes[index], constant: inputConstants[index])
            let slot = newSlot()
            slotOf[input.name] = slot
            inputSlots.append(slot)
        }
        var constantsUsed: [(slot: Int, tensor: Tensor)] = []
        func slot(for name: String) -> Int {
            if let slot = slotOf[name] { return slot }
            let slot = newSlot()
            slotOf[name] = slot
            if let constant = values[name]?.constant { constantsUsed.append((slot, constant)) }
            return slot
        }

        // Buffers are indexed by their producing kernel output; aliases point at their root buffer.
        struct Buffer { var bytes: Int; var first: Int; var last: Int; var slot: Int }
        var buffers: [Buffer] = []
        var bufferOf: [String: Int] = [:]
        var steps: [PlanStep] = []

        for node in graph.nodes {
            let planner = try OperatorRegistry.planner(for: node)
            var inputs: [PlanValue?] = []
            for name in node.inputs {
                if name.isEmpty { inputs.append(nil); continue }
                guard let value = values[name] else { throw EngineError.invalidModel("node '\(node.name)' reads '\(name)', which nothing produces") }
                inputs.append(value)
            }
            if inputs.allSatisfy({ $0 == nil || $0?.constant != nil }) {
                // Everything known: run it now (shape arithmetic, folded constants).
                let results = try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs.map { $0?.constant }, budget: budget,
                                                            context: context)
                try Self.bind(results.map(PlanValue.init), to: node, values: &values)
                continue
            }
            let inputSlotIndices = node.inputs.map { $0.isEmpty ? -1 : slot(for: $0) }
            let outputSlotIndices = node.outputs.map { _ in newSlot() }
            let context = OpContext(node: node, opset: opset, inputs: inputs, inputSlots: inputSlotIndices, outputSlots: outputSlotIndices,
                                    budget: budget, shapesOnly: shapesOnly, execution: context)
            let stepIndex = steps.count
            for name in node.inputs where !name.isEmpty {
                if let buffer = bufferOf[name] { buffers[buffer].last = stepIndex }
            }
            switch try planner(context) {
            case let .constants(tensors):
                try Self.bind(tensors.map(PlanValue.init), to: node, values: &values)
                continue
            case let .alias(type, shape):
                let output = node.outputs[0]
                try Self.bind([PlanValue(type: type, shape: shape)], to: node, values: &values)
                slotOf[output] = outputSlotIndices[0]
                if let buffer = bufferOf[node.inputs[0]] { bufferOf[output] = buffer }
                let (from, to) = (inputSlotIndices[0], outputSlotIndices[0])
                steps.append(PlanStep(node: node.name, opType: node.opType, kernel: { s in unsafe s.set(to, s.raw(from)) }))
            case let .kernel(specs, kernel):
                for (index, spec) in specs.enumerated() { try context.checkOutput(spec.0, spec.1, index: index) }
                try Self.bind(specs.map { PlanValue(type: $0.0, shape: $0.1) }, to: node, values: &values)
                for (index, spec) in specs.enumerated() where !node.outputs[index].isEmpty {
                    slotOf[node.outputs[index]] = outputSlotIndices[index]
                    bufferOf[node.outputs[index]] = buffers.count
                    buffers.append(Buffer(bytes: elementCount(spec.1) * spec.0.byteCount, first: stepIndex, last: stepIndex,
                                          slot: outputSlotIndices[index]))
                }
                steps.append(PlanStep(node: node.name, opType: node.opType, kernel: kernel,
                                      macs: multiplyAccumulates(node, inputs: inputs, outputs: specs.map(\.1))))
            }
        }

        var outputs: [PlannedOutput] = []
        for output in graph.outputs {
            guard let value = values[output.name] else { throw EngineError.invalidModel("graph output '\(output.name)' is never produced") }
            if let buffer = bufferOf[output.name] { buffers[buffer].last = Int.max }
            outputs.append(PlannedOutput(name: output.name, slot: slot(for: output.name), type: value.type, shape: value.shape))
        }

        // Place buffers: largest first, each at the lowest offset that no buffer alive at the same
        // time overlaps (greedy by size; 64-byte aligned).
        var placed: [(offset: Int, bytes: Int, first: Int, last: Int)] = []
        var offsets = [Int](repeating: 0, count: buffers.count)
        var arenaBytes = 0
        for index in buffers.indices.sorted(by: { buffers[$0].bytes > buffers[$1].bytes }) {
            let buffer = buffers[index]
            let bytes = max(64, (buffer.bytes + 63) / 64 * 64)
            let conflicts = placed.filter { $0.first <= buffer.last && buffer.first <= $0.last }.sorted { $0.offset < $1.offset }
            var offset = 0
            for other in conflicts where offset + bytes > other.offset {
                offset = max(offset, other.offset + other.bytes)
            }
            offsets[index] = offset
            placed.append((offset, bytes, buffer.first, buffer.last))
            arenaBytes = max(arenaBytes, offset + bytes)
        }
        if !shapesOnly {
            let described = inputShapes.map { "\($0)" }.joined(separator: ", ")
            do {
                try budget.check(arenaBytes, for: "the activations of '\(graph.name)' for input shapes \(described)")
            } catch {
                throw .memoryBudget(op: "", node: "", error)
            }
        }
        let table = SlotTable(count: slotCount)
        let arena = TensorStorage(byteCount: shapesOnly ? 0 : arenaBytes)
        for (index, buffer) in buffers.enumerated() where !shapesOnly {
            unsafe table.slots.set(buffer.slot, arena.pointer + offsets[index])
        }
        for (slot, tensor) in constantsUsed { unsafe table.slots.set(slot, tensor.storage.pointer) }

        self.steps = steps
        self.inputSlots = inputSlots
        self.outputs = outputs
        self.arenaBytes = arenaBytes
        self.unsharedBytes = buffers.reduce(0) { $0 + $1.bytes }
        self.table = table
        self.arena = arena
        self.constants = constantsUsed.map(\.tensor)
        self.shapesOnly = shapesOnly
    }

    private static func bind(_ results: [PlanValue], to node: Node, values: inout [String: PlanValue]) throws(EngineError) {
        for (index, name) in node.outputs.enumerated() where !name.isEmpty {
            guard index < results.count else {
                throw EngineError.unsupportedAttribute(op: node.opType, node: node.name, detail: "output \(index) ('\(name)')")
            }
            values[name] = results[index]
        }
    }

    /// Runs every step; graph inputs' slots must already point at the caller's buffers.
    func execute() {
        precondition(!shapesOnly, "a shapes-only plan has no arena and cannot run")
        let slots = table.slots
        for step in steps { step.kernel(slots) }
    }
}
