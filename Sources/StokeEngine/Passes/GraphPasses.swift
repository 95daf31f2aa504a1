/// Graph-to-graph rewrites run when a model loads. Each keeps the graph's outputs identical
/// (up to float rounding for BatchNorm folding).
enum GraphPasses {
    /// Orders nodes so every value is produced before it is read.
    static func topologicalSort(_ graph: inout Graph) throws(EngineError) {
        var available = Set(graph.initializers.keys).union(graph.inputs.map(\.name))
        available.insert("")
        var remaining = graph.nodes
        var sorted: [Node] = []
        sorted.reserveCapacity(remaining.count)
        while !remaining.isEmpty {
            var next: [Node] = []
            let before = sorted.count
            for node in remaining {
                if node.inputs.allSatisfy(available.contains) {
                    sorted.append(node)
                    available.formUnion(node.outputs)
                } else {
                    next.append(node)
                }
            }
            if sorted.count == before {
                let node = next[0]
                let missing = node.inputs.first { !available.contains($0) } ?? "?"
                throw EngineError.invalidModel("node '\(node.name)' (\(node.opType)) reads '\(missing)', which no node, initializer or input provides (or the graph has a cycle)")
            }
            remaining = next
        }
        graph.nodes = sorted
    }

    /// Evaluates nodes whose inputs are all constants and turns their outputs into initializers.
    static func foldConstants(_ graph: inout Graph, opset: Int64) throws(EngineError) {
        var kept: [Node] = []
        for node in graph.nodes {
            let constant = node.inputs.allSatisfy { $0.isEmpty || graph.initializers[$0] != nil }
            guard constant else { kept.append(node); continue }
            let inputs = node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0] }
            let outputs = try OperatorRegistry.evaluate(node, opset: opset, inputs: inputs)
            for (index, name) in node.outputs.enumerated() where !name.isEmpty && index < outputs.count {
                graph.initializers[name] = outputs[index]
            }
        }
        graph.nodes = kept
    }

    /// Consumers of each value, and the set of graph outputs.
    private static func consumers(_ graph: Graph) -> [String: [Int]] {
        var result: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.inputs where !name.isEmpty { result[name, default: []].append(index) }
        }
        return result
    }

    /// Folds an inference BatchNormalization into the Conv or Gemm that feeds it, when that
    /// producer's weights are constants and the BatchNorm is its only consumer.
    static func foldBatchNorm(_ graph: inout Graph) {
        let users = consumers(graph)
        let outputs = Set(graph.outputs.map(\.name))
        var producer: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() { for name in node.outputs { producer[name] = index } }
        var removed = Set<Int>()
        for (bnIndex, bn) in graph.nodes.enumerated() where bn.opType == "BatchNormalization" {
            guard bn.inputs.count == 5, bn.outputs.count == 1 || bn.outputs.dropFirst().allSatisfy(\.isEmpty),
                  let sourceIndex = producer[bn.inputs[0]], !removed.contains(sourceIndex),
                  users[bn.inputs[0]]?.count == 1, !outputs.contains(bn.inputs[0]) else { continue }
            let source = graph.nodes[sourceIndex]
            guard source.opType == "Conv" || source.opType == "Gemm", source.attributes[fusedActivationKey] == nil,
                  let weights = graph.initializers[source.inputs[1]], weights.elementType == .float32 else { continue }
            let parameters = bn.inputs[1...4].compactMap { graph.initializers[$0]?.floats }
            guard parameters.count == 4 else { continue }
            let channels = parameters[0].count
            guard parameters.allSatisfy({ $0.count == channels }) else { continue }
            var epsilon: Float = 1e-5
            if case let .float(value)? = bn.attributes["epsilon"] { epsilon = value }
            let (scale, shift) = LinearOps.foldedAffine(scale: parameters[0], bias: parameters[1], mean: parameters[2],
                                                        variance: parameters[3], epsilon: epsilon)
            var w = weights.floats
            var bias = [Float](repeating: 0, count: channels)
            var node = source
            if source.opType == "Conv" {
                guard weights.shape.first == channels else { continue }
                if source.inputs.count > 2, !source.inputs[2].isEmpty {
                    guard let b = graph.initializers[source.inputs[2]]?.floats, b.count == channels else { continue }
                    bias = b
                }
                let per = w.count / channels
                for m in 0..<channels { for j in 0..<per { w[m * per + j] *= scale[m] } }
            } else {
                // Gemm feeding BatchNorm over [N, C]: channel = output column.
                guard bn.attributes.isEmpty || bn.attributes.keys.allSatisfy({ $0 == "epsilon" || $0 == "momentum" }) else { continue }
                var transB = false, alpha: Float = 1, beta: Float = 1
                if case let .int(v)? = source.attributes["transB"] { transB = v != 0 }
                if case let .float(v)? = source.attributes["alpha"] { alpha = v }
                if case let .float(v)? = source.attributes["beta"] { beta = v }
                guard weights.shape.count == 2, (transB ? weights.shape[0] : weights.shape[1]) == channels else { continue }
                if source.inputs.count > 2, !source.inputs[2].isEmpty {
                    guard let b = graph.initializers[source.inputs[2]], b.count == channels || b.count == 1 else { continue }
                    let values = b.floats
                    bias = (0..<channels).map { beta * values[b.count == 1 ? 0 : $0] }
                }
                let k = weights.shape[transB ? 1 : 0]
                for m in 0..<channels {
                    for j in 0..<k { w[transB ? m * k + j : j * channels + m] *= scale[m] * alpha }
                }
                node.attributes["alpha"] = .float(1)
                node.attributes["beta"] = .float(1)
            }
            for m in 0..<channels { bias[m] = bias[m] * scale[m] + shift[m] }
            let weightName = "\(source.name).bn_folded_weight", biasName = "\(source.name).bn_folded_bias"
            graph.initializers[weightName] = Tensor(shape: weights.shape, floats: w)
            graph.initializers[biasName] = Tensor(shape: [channels], floats: bias)
            node.inputs = [source.inputs[0], weightName, biasName]
            node.outputs = [bn.outputs[0]]
            graph.nodes[sourceIndex] = node
            removed.insert(bnIndex)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Moves a Relu or LeakyRelu that is the only consumer of a Conv/Gemm/MatMul output into that
    /// node's epilogue, saving a pass over memory.
    static func fuseActivations(_ graph: inout Graph) {
        let users = consumers(graph)
        let outputs = Set(graph.outputs.map(\.name))
        var producer: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() { for name in node.outputs { producer[name] = index } }
        var removed = Set<Int>()
        for (actIndex, act) in graph.nodes.enumerated() where act.opType == "Relu" || act.opType == "LeakyRelu" {
            guard act.domain.isEmpty || act.domain == "ai.onnx", let input = act.inputs.first,
                  let sourceIndex = producer[input], !removed.contains(sourceIndex),
                  users[input]?.count == 1, !outputs.contains(input) else { continue }
            var source = graph.nodes[sourceIndex]
            guard ["Conv", "Gemm", "MatMul"].contains(source.opType), source.outputs.count == 1,
                  source.attributes[fusedActivationKey] == nil else { continue }
            source.attributes[fusedActivationKey] = .string(act.opType)
            if act.opType == "LeakyRelu" {
                var alpha: Float = 0.01
                if case let .float(value)? = act.attributes["alpha"] { alpha = value }
                source.attributes[fusedAlphaKey] = .float(alpha)
            }
            source.outputs = act.outputs
            graph.nodes[sourceIndex] = source
            removed.insert(actIndex)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Folds a 2x2, stride-2, unpadded MaxPool into the Conv (group 1) that is its only input's
    /// producer and whose output nothing else reads. The Conv then pools each image's output while
    /// it is still in cache, instead of writing the full-resolution tensor to memory and reading it
    /// back (at batch 256 a 16x28x28 layer is 12.8 MB, well past L2). Runs after fuseActivations,
    /// so Conv → Relu → MaxPool becomes one node.
    static func fuseMaxPool(_ graph: inout Graph) {
        let users = consumers(graph)
        let outputs = Set(graph.outputs.map(\.name))
        var producer: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() { for name in node.outputs { producer[name] = index } }
        var removed = Set<Int>()
        func ints(_ node: Node, _ name: String) -> [Int64]? {
            if case let .ints(values)? = node.attributes[name] { return values }
            return nil
        }
        func int(_ node: Node, _ name: String) -> Int64? {
            if case let .int(value)? = node.attributes[name] { return value }
            return nil
        }
        for (poolIndex, pool) in graph.nodes.enumerated() where pool.opType == "MaxPool" {
            guard pool.domain.isEmpty || pool.domain == "ai.onnx", pool.inputs.count == 1,
                  pool.outputs.count == 1 || pool.outputs.dropFirst().allSatisfy(\.isEmpty),
                  ints(pool, "kernel_shape") == [2, 2], ints(pool, "strides") == [2, 2],
                  (ints(pool, "pads") ?? [0, 0, 0, 0]).allSatisfy({ $0 == 0 }),
                  (ints(pool, "dilations") ?? [1, 1]) == [1, 1], (int(pool, "ceil_mode") ?? 0) == 0,
                  (int(pool, "storage_order") ?? 0) == 0 else { continue }
            if case let .string(autoPad)? = pool.attributes["auto_pad"], autoPad != "NOTSET", autoPad != "VALID" { continue }
            let input = pool.inputs[0]
            guard let sourceIndex = producer[input], !removed.contains(sourceIndex),
                  users[input]?.count == 1, !outputs.contains(input) else { continue }
            var source = graph.nodes[sourceIndex]
            guard source.opType == "Conv", source.domain.isEmpty || source.domain == "ai.onnx", source.outputs.count == 1,
                  (int(source, "group") ?? 1) == 1, source.attributes[fusedMaxPoolKey] == nil else { continue }
            // Only 2-D convolutions: the kernel shape, when given, says so; else the weights' rank.
            if let kernel = ints(source, "kernel_shape"), kernel.count != 2 { continue }
            if ints(source, "kernel_shape") == nil {
                guard source.inputs.count > 1, let weights = graph.initializers[source.inputs[1]], weights.shape.count == 4 else { continue }
            }
            source.attributes[fusedMaxPoolKey] = .int(1)
            source.outputs = [pool.outputs[0]]
            graph.nodes[sourceIndex] = source
            removed.insert(poolIndex)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Drops nodes whose outputs nothing reads and initializers no node reads.
    static func removeDeadNodes(_ graph: inout Graph) {
        var needed = Set(graph.outputs.map(\.name))
        var kept: [Node] = []
        for node in graph.nodes.reversed() where node.outputs.contains(where: needed.contains) {
            kept.append(node)
            needed.formUnion(node.inputs)
        }
        graph.nodes = kept.reversed()
        graph.initializers = graph.initializers.filter { needed.contains($0.key) }
    }
}
