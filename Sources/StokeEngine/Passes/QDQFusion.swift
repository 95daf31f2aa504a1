/// Op types of the fused static-INT8 operators the QDQ pass creates (Stoke-internal: never written
/// to ONNX files; `Model.sourceGraph` keeps the standard QDQ form).
let quantizedConvOp = "StokeQLinearConv"
let quantizedGemmOp = "StokeQLinearGemm"
let quantizedMaxPoolOp = "StokeQMaxPool"
/// Layout attributes `fuseQDQ` sets where a fused Conv's output is read only by operators that take
/// NHWC bytes: the Conv then writes [N, H, W, C] (no transpose), the next Conv's im2row copies whole
/// window rows of channels, MaxPool runs over channel vectors, and a Gemm behind a Flatten reads its
/// weight rows in (h, w, c) order.
let inputNHWCKey = "stoke.input_nhwc"
let outputNHWCKey = "stoke.output_nhwc"
let nhwcPoolKey = "stoke.nhwc"
let nhwcChannelsKey = "stoke.nhwc_channels"

/// Per-tensor uint8 quantization parameters of an activation (scale in real units per step).
struct ActivationQuantization: Equatable {
    var scale: Float
    var zeroPoint: Int32
}

extension GraphPasses {
    /// Turns the QDQ form of a statically quantized model into Stoke's INT8 operators:
    ///
    /// - `DQ(x_u8), DQ(w_s8) [, DQ(b_s32) | b_f32] → Conv/Gemm/MatMul [→ Relu] → Q` becomes one u8-in,
    ///   u8-out operator (s32 accumulation, per-channel requantization, ReLU folded into the clamp);
    /// - `DQ(a) → MaxPool/Flatten/Reshape/Identity… → Q` with Q's parameters equal to DQ's runs the
    ///   data movement on the bytes (max pooling and reshaping commute with a monotone quantizer, so
    ///   this is exact), and `Q(DQ(a))` with equal parameters is `a`.
    ///
    /// Runs before constant folding, which would otherwise dequantize the weights back to float.
    /// Anything that does not match stays as written and runs through the reference Q/DQ kernels.
    static func fuseQDQ(_ graph: inout Graph, opset: Int64) throws(EngineError) {
        guard graph.nodes.contains(where: { $0.opType == "DequantizeLinear" || $0.opType == "QuantizeLinear" }) else { return }
        QDQMatcher.pushQuantizeIntoBytes(&graph)
        QDQMatcher.fuseLinear(&graph, opset: opset)
        try topologicalSort(&graph)
        QDQMatcher.chooseLayouts(&graph)
    }
}

/// Pattern matching for `GraphPasses.fuseQDQ`.
enum QDQMatcher {
    static func isDefault(_ node: Node) -> Bool { node.domain.isEmpty || node.domain == "ai.onnx" }

    /// The value → producing node index and value → consumer indices maps of `graph`.
    static func index(_ graph: Graph) -> (producer: [String: Int], consumers: [String: [Int]]) {
        var producer: [String: Int] = [:], consumers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.outputs where !name.isEmpty { producer[name] = index }
            for name in node.inputs where !name.isEmpty { consumers[name, default: []].append(index) }
        }
        return (producer, consumers)
    }

    /// A scalar float constant (shape [] or [1]).
    static func scalar(_ graph: Graph, _ name: String) -> Float? {
        guard let tensor = graph.initializers[name], tensor.elementType == .float32, tensor.count == 1 else { return nil }
        return tensor.floats[0]
    }

    /// Per-tensor uint8 parameters of a Q or DQ node (zero point absent means 0).
    static func activationParameters(_ graph: Graph, _ node: Node) -> ActivationQuantization? {
        guard isDefault(node), node.inputs.count >= 2, let scale = scalar(graph, node.inputs[1]), scale > 0, scale.isFinite else { return nil }
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard let zero = graph.initializers[node.inputs[2]], zero.elementType == .uint8, zero.count == 1 else { return nil }
            return ActivationQuantization(scale: scale, zeroPoint: Int32(zero.uint8s[0]))
        }
        // Without a zero point the type is QuantizeLinear's output_dtype (uint8 by default); a
        // DequantizeLinear's input could be int8, which these byte kernels do not take, so it only
        // fuses when that input is a uint8 constant.
        if node.opType == "DequantizeLinear" {
            guard graph.initializers[node.inputs[0]]?.elementType == .uint8 else { return nil }
        }
        if case let .int(type)? = node.attributes["output_dtype"], type != 2 { return nil }
        return ActivationQuantization(scale: scale, zeroPoint: 0)
    }

    /// Data movement that commutes with a per-tensor quantizer and runs on uint8 bytes.
    static func movesBytes(_ node: Node, _ graph: Graph) -> Bool {
        guard isDefault(node), node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy(\.isEmpty) else { return false }
        switch node.opType {
        case "Flatten", "Identity": return true
        case "Reshape", "Squeeze", "Unsqueeze":
            return node.inputs.count < 2 || node.inputs[1].isEmpty || graph.initializers[node.inputs[1]] != nil
        case "MaxPool":
            guard node.inputs.count == 1 else { return false }
            if case let .ints(dilations)? = node.attributes["dilations"], dilations.contains(where: { $0 != 1 }) { return false }
            return true
        default: return false
        }
    }

    /// `Q(move(…move(DQ(a))))` with Q's parameters equal to DQ's → `move(…move(a))` on bytes.
    static func pushQuantizeIntoBytes(_ graph: inout Graph) {
        var changed = true
        while changed {
            changed = false
            let (producer, consumers) = index(graph)
            let outputs = Set(graph.outputs.map(\.name))
            for (qIndex, q) in graph.nodes.enumerated() where q.opType == "QuantizeLinear" {
                guard let parameters = activationParameters(graph, q), let input = q.inputs.first else { continue }
                var chain: [Int] = []
                var current = input
                while let index = producer[current], movesBytes(graph.nodes[index], graph),
                      consumers[current]?.count == 1, !outputs.contains(current) {
                    chain.append(index)
                    current = graph.nodes[index].inputs[0]
                }
                guard let dqIndex = producer[current], graph.nodes[dqIndex].opType == "DequantizeLinear",
                      activationParameters(graph, graph.nodes[dqIndex]) == parameters else { continue }
                let bytes = graph.nodes[dqIndex].inputs[0]
                if let last = chain.last, let first = chain.first {
                    graph.nodes[last].inputs[0] = bytes
                    graph.nodes[first].outputs[0] = q.outputs[0]
                    for index in chain where graph.nodes[index].opType == "MaxPool" { graph.nodes[index].opType = quantizedMaxPoolOp }
                } else {
                    // Q(DQ(a)) = a: readers of Q's output read a instead.
                    guard !outputs.contains(q.outputs[0]) else { continue }
                    for index in consumers[q.outputs[0]] ?? [] {
                        graph.nodes[index].inputs = graph.nodes[index].inputs.map { $0 == q.outputs[0] ? bytes : $0 }
                    }
                }
                graph.nodes.remove(at: qIndex)
                changed = true
                break
            }
        }
    }

    /// The fused operator's pieces read from a DQ on the weights.
    struct Weights {
        var name: String
        var tensor: Tensor
        /// One scale (per tensor) or one per output channel.
        var scales: [Float]
    }

    /// Weights as `DQ(int8 initializer, scale[, int8 zeros])`, quantized along `channelAxis` (of a
    /// tensor of `rank`) or per tensor.
    static func weights(_ graph: Graph, _ node: Node, rank: Int, channelAxis: Int, channels: (Tensor) -> Int) -> Weights? {
        guard isDefault(node), node.opType == "DequantizeLinear", node.inputs.count >= 2,
              let tensor = graph.initializers[node.inputs[0]], tensor.elementType == .int8, tensor.shape.count == rank,
              let scaleTensor = graph.initializers[node.inputs[1]], scaleTensor.elementType == .float32 else { return nil }
        let scales = scaleTensor.floats
        guard scales.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard let zero = graph.initializers[node.inputs[2]], zero.elementType == .int8, zero.int8s.allSatisfy({ $0 == 0 }) else { return nil }
        }
        if scales.count != 1 {
            var axis: Int64 = 1
            if case let .int(value)? = node.attributes["axis"] { axis = value }
            let normalized = axis < 0 ? Int(axis) + rank : Int(axis)
            guard normalized == channelAxis, scales.count == channels(tensor) else { return nil }
        }
        return Weights(name: node.inputs[0], tensor: tensor, scales: scales)
    }

    /// A bias as a float constant or as `DQ(int32 constant, scale)`, dequantized to `count` floats.
    static func bias(_ graph: Graph, _ name: String, producer: [String: Int], count: Int) -> [Float]? {
        if let tensor = graph.initializers[name] {
            // [N] or [1, N]: a [N, 1] column would broadcast along rows instead.
            guard tensor.elementType == .float32, tensor.count == count, tensor.shape.last == count || tensor.shape.isEmpty else { return nil }
            return tensor.floats
        }
        guard let index = producer[name] else { return nil }
        let node = graph.nodes[index]
        guard isDefault(node), node.opType == "DequantizeLinear", node.inputs.count >= 2,
              let values = graph.initializers[node.inputs[0]], values.elementType == .int64, values.count == count,
              let scaleTensor = graph.initializers[node.inputs[1]], scaleTensor.elementType == .float32,
              scaleTensor.count == 1 || scaleTensor.count == count else { return nil }
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            guard let zero = graph.initializers[node.inputs[2]], zero.elementType == .int64, zero.int64s.allSatisfy({ $0 == 0 }) else { return nil }
        }
        let scales = scaleTensor.floats
        return values.int64s.enumerated().map { Float($0.element) * scales[scaleTensor.count == 1 ? 0 : $0.offset] }
    }

    static func fuseLinear(_ graph: inout Graph, opset: Int64) {
        var removed = Set<Int>()
        var replacements: [Int: Node] = [:]
        let (producer, consumers) = index(graph)
        let outputs = Set(graph.outputs.map(\.name))
        func attribute(_ node: Node, _ key: String) -> Int64? {
            if case let .int(value)? = node.attributes[key] { return value }
            return nil
        }
        for (index, node) in graph.nodes.enumerated() where isDefault(node) && ["Conv", "Gemm", "MatMul"].contains(node.opType) {
            guard node.inputs.count >= 2, node.outputs.count == 1,
                  let dxIndex = producer[node.inputs[0]], graph.nodes[dxIndex].opType == "DequantizeLinear",
                  let x = activationParameters(graph, graph.nodes[dxIndex]),
                  let dwIndex = producer[node.inputs[1]] else { continue }
            // The weight layout decides the output-channel axis.
            let weights: Weights?
            let channels: Int
            switch node.opType {
            case "Conv":
                guard (attribute(node, "group") ?? 1) == 1 else { continue }
                weights = Self.weights(graph, graph.nodes[dwIndex], rank: 4, channelAxis: 0, channels: { $0.shape[0] })
                channels = weights?.tensor.shape[0] ?? 0
            case "Gemm":
                guard (attribute(node, "transA") ?? 0) == 0 else { continue }
                if case let .float(alpha)? = node.attributes["alpha"], alpha != 1 { continue }
                if case let .float(beta)? = node.attributes["beta"], beta != 1 { continue }
                let transB = (attribute(node, "transB") ?? 0) != 0
                weights = Self.weights(graph, graph.nodes[dwIndex], rank: 2, channelAxis: transB ? 0 : 1,
                                       channels: { $0.shape[transB ? 0 : 1] })
                channels = weights.map { $0.tensor.shape[transB ? 0 : 1] } ?? 0
            default:
                guard node.inputs.count == 2 else { continue }
                weights = Self.weights(graph, graph.nodes[dwIndex], rank: 2, channelAxis: 1, channels: { $0.shape[1] })
                channels = weights?.tensor.shape[1] ?? 0
            }
            guard let weights else { continue }
            var biasValues: [Float]? = nil
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let values = bias(graph, node.inputs[2], producer: producer, count: channels) else { continue }
                biasValues = values
            }
            // Output: [Relu →] Q, each the only reader of what it reads.
            var value = node.outputs[0]
            var relu: Int? = nil
            guard !outputs.contains(value), let readers = consumers[value], readers.count == 1 else { continue }
            var next = readers[0]
            if graph.nodes[next].opType == "Relu", isDefault(graph.nodes[next]) {
                relu = next
                value = graph.nodes[next].outputs[0]
                guard !outputs.contains(value), let after = consumers[value], after.count == 1 else { continue }
                next = after[0]
            }
            let q = graph.nodes[next]
            guard q.opType == "QuantizeLinear", let y = activationParameters(graph, q) else { continue }

            var fused = node
            fused.opType = node.opType == "Conv" ? quantizedConvOp : quantizedGemmOp
            fused.inputs = [graph.nodes[dxIndex].inputs[0], weights.name]
            fused.outputs = [q.outputs[0]]
            fused.attributes["stoke.original_op"] = .string(node.opType)
            fused.attributes["stoke.x_scale"] = .float(x.scale)
            fused.attributes["stoke.x_zero_point"] = .int(Int64(x.zeroPoint))
            fused.attributes["stoke.w_scales"] = .floats(weights.scales)
            fused.attributes["stoke.y_scale"] = .float(y.scale)
            fused.attributes["stoke.y_zero_point"] = .int(Int64(y.zeroPoint))
            fused.attributes["stoke.relu"] = .int(relu == nil ? 0 : 1)
            if let biasValues { fused.attributes["stoke.bias"] = .floats(biasValues) }
            replacements[index] = fused
            removed.insert(next)
            if let relu { removed.insert(relu) }
        }
        for (index, node) in replacements { graph.nodes[index] = node }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Marks fused Convs whose every reader takes NHWC bytes (fused Convs, u8 MaxPools whose readers
    /// do too, Flatten into fused Gemms) to write NHWC, and those readers to expect it.
    static func chooseLayouts(_ graph: inout Graph) {
        let outputs = Set(graph.outputs.map(\.name))
        // Readers nothing needs (the DQ a fused MaxPool bypassed, before dead-node removal) don't count.
        var needed = outputs
        var live = Set<Int>()
        for (index, node) in graph.nodes.enumerated().reversed() where node.outputs.contains(where: needed.contains) {
            live.insert(index)
            needed.formUnion(node.inputs)
        }
        let consumers = index(graph).consumers.mapValues { $0.filter(live.contains) }
        func readersTakeNHWC(_ value: String) -> Bool {
            guard !outputs.contains(value), let readers = consumers[value], !readers.isEmpty else { return false }
            return readers.allSatisfy { index in
                let node = graph.nodes[index]
                guard node.inputs.first == value, !node.inputs.dropFirst().contains(value) else { return false }
                switch node.opType {
                case quantizedConvOp: return true
                case quantizedMaxPoolOp: return readersTakeNHWC(node.outputs[0])
                case "Flatten":
                    if case let .int(axis)? = node.attributes["axis"], axis != 1 { return false }
                    guard !outputs.contains(node.outputs[0]), let after = consumers[node.outputs[0]], !after.isEmpty else { return false }
                    return after.allSatisfy { graph.nodes[$0].opType == quantizedGemmOp && graph.nodes[$0].inputs.first == node.outputs[0] }
                default: return false
                }
            }
        }
        func mark(_ value: String, channels: Int) {
            for index in consumers[value] ?? [] {
                switch graph.nodes[index].opType {
                case quantizedConvOp: graph.nodes[index].attributes[inputNHWCKey] = .int(1)
                case quantizedMaxPoolOp:
                    graph.nodes[index].attributes[nhwcPoolKey] = .int(1)
                    mark(graph.nodes[index].outputs[0], channels: channels)
                default:
                    for gemm in consumers[graph.nodes[index].outputs[0]] ?? [] {
                        graph.nodes[gemm].attributes[nhwcChannelsKey] = .int(Int64(channels))
                    }
                }
            }
        }
        for index in graph.nodes.indices where graph.nodes[index].opType == quantizedConvOp {
            guard let weights = graph.initializers[graph.nodes[index].inputs[1]], weights.shape.count == 4,
                  readersTakeNHWC(graph.nodes[index].outputs[0]) else { continue }
            graph.nodes[index].attributes[outputNHWCKey] = .int(1)
            mark(graph.nodes[index].outputs[0], channels: weights.shape[0])
        }
    }
}
