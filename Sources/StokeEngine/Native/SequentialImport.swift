extension SequentialModel {
    /// How to load an ONNX file for `init(importing:)`: constants folded (Constant nodes become
    /// initializers), and nothing else — no BatchNorm folded into a Conv, no activation or pooling fused
    /// into a kernel — so every PyTorch layer is still its own node.
    public static var importOptions: OptimizationOptions {
        var options = OptimizationOptions.none
        options.foldConstants = true
        return options
    }

    /// Reads a PyTorch-style sequential ONNX graph (`nn.Sequential` exported by `torch.onnx.export`, or
    /// `SequentialModel.onnx()`) as a native model that can be pruned, fine-tuned and saved.
    ///
    /// Recognized, as one chain from the single input to the single output: Gemm (alpha = beta = 1, no
    /// transA), MatMul with a constant weight (followed by an Add of a constant bias, taken as its bias),
    /// Conv (square kernel, equal strides, symmetric pads, group 1, dilation 1), Relu, MaxPool and
    /// AveragePool (square, no padding, no ceil mode), Flatten (axis 1), a Reshape to [batch, features]
    /// with a constant target shape or the Shape → Gather → Unsqueeze → Concat target PyTorch emits for
    /// `x.view(x.size(0), -1)`, BatchNormalization (inference), Dropout and Identity. Load the model with
    /// `importOptions` so BatchNorm is not folded away.
    ///
    /// - Throws: `EngineError.invalidModel` naming the node and operator for anything else (a branch,
    ///   an unknown operator, a weight that is not a constant); `.unsupportedAttribute` naming the node
    ///   for attributes outside the native layers; `.invalidModel` when the input's sample shape is not fixed.
    public init(importing model: Model) throws(EngineError) {
        let graph = model.graph
        guard graph.inputs.count == 1, graph.outputs.count == 1 else {
            throw EngineError.invalidModel("sequential import needs one input and one output; the graph has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))) and \(graph.outputs.count) outputs")
        }
        let input = graph.inputs[0], output = graph.outputs[0].name
        guard let dims = input.shape, dims.count >= 2 else {
            throw EngineError.invalidModel("sequential import: input '\(input.name)' must declare a shape [batch, ...]")
        }
        let sampleShape = try dims.dropFirst().map { dimension throws(EngineError) -> Int in
            guard case let .fixed(extent) = dimension, extent > 0, extent <= maximumElementCount else {
                throw EngineError.invalidModel("sequential import: input '\(input.name)' has shape \(dims); every axis after the batch axis must be fixed")
            }
            return extent
        }
        guard elementCount(sampleShape) <= 1 << 26 else {
            throw EngineError.invalidModel("sequential import: input '\(input.name)' samples of \(dims.dropFirst()) are too large to import")
        }
        var importer = SequentialImporter(graph: graph, opset: model.opset, sampleShape: sampleShape)
        // The declared batch only sizes the sample the flatten check evaluates: a small positive one is
        // kept (a graph may depend on it), anything else is replaced by the default.
        if case let .fixed(batch) = dims[0], (1...64).contains(batch) { importer.batch = batch }
        try importer.run(from: input.name, to: output)
        var imported = try SequentialModel(layers: importer.layers, sampleShape: sampleShape)
        for (name, value) in importer.parameters { try imported.setParameter(name, value) }
        self = imported
    }
}

/// Walks a graph's single chain of nodes and collects the native layers and their parameters.
private struct SequentialImporter {
    let graph: Graph
    let opset: Int64
    var shape: [Int]
    var layers: [Layer] = []
    var parameters: [String: Tensor] = [:]
    /// Batch size used to check that a Reshape keeps the batch axis (the declared one when fixed).
    var batch = 7
    private var used = Set<Int>()
    private let producer: [String: Int]
    private let consumers: [String: [Int]]

    init(graph: Graph, opset: Int64, sampleShape: [Int]) {
        self.graph = graph
        self.opset = opset
        self.shape = sampleShape
        var producer: [String: Int] = [:], consumers: [String: [Int]] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for name in node.outputs where !name.isEmpty { producer[name] = index }
            for name in Set(node.inputs) where !name.isEmpty { consumers[name, default: []].append(index) }
        }
        self.producer = producer
        self.consumers = consumers
    }

    mutating func run(from input: String, to output: String) throws(EngineError) {
        var current = input
        while current != output {
            let users = (consumers[current] ?? []).filter { !used.contains($0) }
            let main = users.filter { graph.nodes[$0].opType != "Shape" }
            guard main.count == 1 else {
                if main.isEmpty { throw EngineError.invalidModel("sequential import: value '\(current)' feeds no node and is not the graph output '\(output)'") }
                let names = main.map { "'\(graph.nodes[$0].name)' (\(graph.nodes[$0].opType))" }.joined(separator: ", ")
                throw EngineError.invalidModel("sequential import: value '\(current)' feeds \(main.count) nodes (\(names)); only a single chain of layers can be imported")
            }
            let index = main[0]
            current = try take(index, current: current)
        }
        for (index, node) in graph.nodes.enumerated() where !used.contains(index) && node.opType != "Constant" {
            throw EngineError.invalidModel("sequential import: node '\(node.name)' (\(node.opType)) is not on the chain from the input to '\(output)'")
        }
    }

    /// Turns node `index` (fed by the chain value `current`) into layers; returns the new chain value.
    private mutating func take(_ index: Int, current: String) throws(EngineError) -> String {
        let node = graph.nodes[index]
        used.insert(index)
        func refuse(_ detail: String) -> EngineError { .invalidModel("sequential import: node '\(node.name)' (\(node.opType)): \(detail)") }
        func attribute(_ detail: String) -> EngineError { .unsupportedAttribute(op: node.opType, node: node.name, detail: detail) }
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { throw refuse("operators outside the default ONNX domain cannot be imported") }
        guard node.inputs.first == current else { throw refuse("takes the chain's value '\(current)' as a weight input, not as its data input") }
        guard let result = node.outputs.first, !result.isEmpty else { throw refuse("has no output") }
        for extra in node.outputs.dropFirst() where !extra.isEmpty && !(consumers[extra] ?? []).isEmpty {
            throw refuse("its optional output '\(extra)' is used; only the first output can be")
        }
        func int(_ name: String, _ fallback: Int64) -> Int64 { if case let .int(value)? = node.attributes[name] { value } else { fallback } }
        func float(_ name: String, _ fallback: Float) -> Float { if case let .float(value)? = node.attributes[name] { value } else { fallback } }
        func ints(_ name: String) -> [Int]? { if case let .ints(values)? = node.attributes[name] { values.map { Int($0) } } else { nil } }
        func weight(_ position: Int) throws(EngineError) -> Tensor? {
            guard position < node.inputs.count, !node.inputs[position].isEmpty else { return nil }
            let name = node.inputs[position]
            guard let tensor = constant(name) else { throw refuse("input \(position) '\(name)' is computed, not a constant weight") }
            guard tensor.elementType == .float32 else { throw refuse("weight '\(name)' is \(tensor.elementType), not float32") }
            return tensor
        }
        // Engine-internal attributes ("stoke.activation", "stoke.maxpool2x2") mean a pass fused other
        // nodes into this one, so the layers are no longer one node each.
        if let fused = node.attributes.keys.sorted().first(where: { $0.hasPrefix("stoke.") }) {
            throw refuse("carries the fused '\(fused)' of a load-time pass; load the model with SequentialModel.importOptions")
        }
        func append(_ layer: Layer, _ named: [String: Tensor] = [:]) throws(EngineError) {
            do {
                shape = try SequentialModel.outputShape(of: layer, at: layers.count, input: shape)
            } catch {
                throw refuse("does not fit its input: \(error)")
            }
            for (suffix, tensor) in named { parameters["\(layers.count).\(suffix)"] = tensor }
            layers.append(layer)
        }
        switch node.opType {
        case "Gemm":
            guard int("transA", 0) == 0, float("alpha", 1) == 1, float("beta", 1) == 1 else {
                throw attribute("alpha/beta/transA (sequential import needs alpha = beta = 1 and transA = 0)")
            }
            guard let b = try weight(1), b.shape.count == 2 else { throw refuse("weight B must be a constant matrix") }
            let matrix = int("transB", 0) == 1 ? b : transposed(b)
            let bias = try weight(2)
            let (layer, named) = try linear(matrix, bias: bias, refuse: refuse)
            try append(layer, named)
            return result
        case "MatMul":
            guard let b = try weight(1), b.shape.count == 2 else { throw refuse("weight must be a constant matrix [in, out]") }
            var bias: Tensor? = nil
            var chainEnd = result
            let users = consumers[result] ?? []
            if users.count == 1, graph.outputs.first?.name != result {
                let add = graph.nodes[users[0]]
                if add.opType == "Add", add.inputs.count == 2, add.outputs.count == 1 {
                    let other = add.inputs[0] == result ? add.inputs[1] : add.inputs[0]
                    if let tensor = constant(other), tensor.elementType == .float32, tensor.count == b.shape[1] || tensor.count == 1 {
                        bias = tensor
                        used.insert(users[0])
                        chainEnd = add.outputs[0]
                    }
                }
            }
            let (layer, named) = try linear(transposed(b), bias: bias, refuse: refuse)
            try append(layer, named)
            return chainEnd
        case "Conv":
            guard let w = try weight(1), w.shape.count == 4, w.shape[2] == w.shape[3] else { throw refuse("weight must be a constant [out, in, k, k] with a square kernel") }
            let kernel = w.shape[2]
            let strides = ints("strides") ?? [1, 1], pads = ints("pads") ?? [0, 0, 0, 0]
            guard int("group", 1) == 1, (ints("dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }) else { throw attribute("group or dilations (sequential import needs group 1, dilation 1)") }
            guard strides.count == 2, strides[0] == strides[1], pads.count == 4, Set(pads).count == 1,
                  (ints("kernel_shape") ?? [kernel, kernel]) == [kernel, kernel] else {
                throw attribute("strides \(strides), pads \(pads) (sequential import needs equal strides and equal pads on every side)")
            }
            try autoPadIsNotSet(node, attribute)
            var named = ["weight": w]
            let bias = try weight(2)
            if let bias {
                guard bias.count == w.shape[0] else { throw refuse("bias has \(bias.count) values for \(w.shape[0]) filters") }
                named["bias"] = Tensor(shape: [w.shape[0]], floats: bias.floats)
            }
            try append(.conv2d(inChannels: w.shape[1], outChannels: w.shape[0], kernelSize: kernel, stride: strides[0], padding: pads[0], bias: bias != nil), named)
            return result
        case "Relu":
            try append(.relu)
            return result
        case "MaxPool", "AveragePool":
            guard let kernel = ints("kernel_shape"), kernel.count == 2, kernel[0] == kernel[1] else { throw attribute("kernel_shape (sequential import needs a square 2-D window)") }
            let strides = ints("strides") ?? [1, 1]
            guard strides.count == 2, strides[0] == strides[1], (ints("pads") ?? [0]).allSatisfy({ $0 == 0 }), int("ceil_mode", 0) == 0,
                  (ints("dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }) else {
                throw attribute("strides, pads, ceil_mode or dilations (sequential import needs equal strides, no padding, floor mode, dilation 1)")
            }
            try autoPadIsNotSet(node, attribute)
            // nil is the native spelling of "stride = window", so round trips compare equal.
            let stride = strides[0] == kernel[0] ? nil : strides[0]
            try append(node.opType == "MaxPool" ? .maxPool2d(kernelSize: kernel[0], stride: stride) : .avgPool2d(kernelSize: kernel[0], stride: stride))
            return result
        case "Flatten":
            let axis = int("axis", 1)
            guard axis == 1 || axis == -Int64(shape.count) else { throw attribute("axis \(axis) (sequential import flattens after the batch axis only)") }
            try append(.flatten)
            return result
        case "Reshape":
            try checkFlattening(node, refuse: refuse)
            try append(.flatten)
            return result
        case "BatchNormalization":
            guard int("training_mode", 0) == 0, int("spatial", 1) == 1 else { throw attribute("training_mode or spatial (inference BatchNorm over channels only)") }
            var named: [String: Tensor] = [:]
            for (position, suffix) in ["weight", "bias", "running_mean", "running_var"].enumerated() {
                guard let tensor = try weight(position + 1) else { throw refuse("input \(position + 1) (\(suffix)) is missing") }
                named[suffix] = Tensor(shape: [tensor.count], floats: tensor.floats)
            }
            try append(.batchNorm(features: named["weight"]!.count, epsilon: float("epsilon", 1e-5)), named)
            return result
        case "Dropout":
            var probability = float("ratio", 0.5)
            if node.inputs.count > 1, !node.inputs[1].isEmpty {
                guard let ratio = constant(node.inputs[1]), ratio.count == 1 else { throw refuse("ratio must be a constant scalar") }
                probability = ratio.floats[0]
            }
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let training = constant(node.inputs[2]), training.count == 1, training.int64s[0] == 0 else {
                    throw refuse("training_mode must be a constant false")
                }
            }
            try append(.dropout(probability: probability))
            return result
        case "Identity":
            return result
        default:
            throw refuse("this operator has no native layer (Gemm, MatMul(+Add), Conv, Relu, MaxPool, AveragePool, Flatten, Reshape, BatchNormalization, Dropout, Identity can be imported)")
        }
    }

    /// A Linear layer with `weight` [out, in] and an optional bias of `out` values (or one, broadcast).
    private func linear(_ weight: Tensor, bias: Tensor?, refuse: (String) -> EngineError) throws(EngineError) -> (Layer, [String: Tensor]) {
        let out = weight.shape[0], inputs = weight.shape[1]
        var named = ["weight": weight]
        if let bias {
            guard bias.count == out || bias.count == 1 else { throw refuse("bias has \(bias.count) values for \(out) outputs") }
            named["bias"] = Tensor(shape: [out], floats: bias.count == out ? bias.floats : [Float](repeating: bias.floats[0], count: out))
        }
        return (.linear(inFeatures: inputs, outFeatures: out, bias: bias != nil), named)
    }

    private func autoPadIsNotSet(_ node: Node, _ attribute: (String) -> EngineError) throws(EngineError) {
        if case let .string(value)? = node.attributes["auto_pad"], value != "NOTSET", !value.isEmpty {
            throw attribute("auto_pad \(value) (sequential import needs explicit pads)")
        }
    }

    /// A Reshape is imported as Flatten when its target is [batch, features]: a constant target, or
    /// one computed from the chain value's Shape by shape operators (evaluated here for a sample batch).
    private mutating func checkFlattening(_ node: Node, refuse: (String) -> EngineError) throws(EngineError) {
        guard node.inputs.count == 2 else { throw refuse("needs a target shape input") }
        var known: [String: Tensor] = [:]
        let source = node.inputs[0]
        let target: Tensor
        if let fixed = constant(node.inputs[1]) {
            target = fixed
        } else {
            // Evaluate the shape subgraph (in graph order, which is topological) with the Shape of the
            // chain value standing for [batch] + sample shape.
            var pending: [Int] = []
            var stack = [node.inputs[1]]
            var seen = Set<Int>()
            while let name = stack.popLast() {
                guard constant(name) == nil else { continue }
                guard let index = producer[name] else { throw refuse("target shape '\(name)' is neither a constant nor computed by a node") }
                guard seen.insert(index).inserted else { continue }
                let producerNode = graph.nodes[index]
                let allowed: Set<String> = ["Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Identity", "Constant"]
                guard allowed.contains(producerNode.opType) else {
                    throw refuse("its target shape comes from node '\(producerNode.name)' (\(producerNode.opType)), not from shape operators")
                }
                if producerNode.opType == "Shape" {
                    guard producerNode.inputs.first == source else {
                        throw refuse("its target shape reads the Shape of '\(producerNode.inputs.first ?? "")', not of its own input '\(source)'")
                    }
                } else {
                    stack.append(contentsOf: producerNode.inputs.filter { !$0.isEmpty })
                }
                pending.append(index)
            }
            let sample = Tensor(shape: [batch] + shape, floats: [Float](repeating: 0, count: elementCount([batch] + shape)))
            for index in pending.sorted() {
                let producerNode = graph.nodes[index]
                let inputs = producerNode.inputs.map { name -> Tensor? in name.isEmpty ? nil : (name == source ? sample : known[name] ?? constant(name)) }
                let outputs = try OperatorRegistry.evaluate(producerNode, opset: opset, inputs: inputs)
                for (name, value) in zip(producerNode.outputs, outputs) { known[name] = value }
                used.insert(index)
            }
            guard let computed = known[node.inputs[1]] else { throw refuse("its target shape could not be evaluated") }
            target = computed
        }
        guard target.elementType == .int64, target.count == 2 else { throw refuse("target shape \(target) is not [batch, features]") }
        let features = elementCount(shape)
        var dims = target.int64s.map(Int.init)
        if dims[0] == 0 { dims[0] = batch }
        if dims[1] == 0 { dims[1] = shape.first ?? 1 }
        if dims[0] == -1, dims[1] > 0 { dims[0] = batch * features / dims[1] }
        if dims[1] == -1, dims[0] > 0 { dims[1] = batch * features / dims[0] }
        guard dims == [batch, features] else {
            throw refuse("reshapes [\(batch), \(shape.map(String.init).joined(separator: ", "))] to \(dims), not to [batch, \(features)]")
        }
    }

    /// The value of a constant: an initializer or a Constant node's tensor.
    private func constant(_ name: String) -> Tensor? {
        if let tensor = graph.initializers[name] { return tensor }
        guard let index = producer[name], graph.nodes[index].opType == "Constant",
              case let .tensor(tensor)? = graph.nodes[index].attributes["value"] else { return nil }
        return tensor
    }

    private func transposed(_ matrix: Tensor) -> Tensor {
        let rows = matrix.shape[0], columns = matrix.shape[1]
        let values = matrix.floats
        var result = [Float](repeating: 0, count: values.count)
        for row in 0..<rows { for column in 0..<columns { result[column * rows + row] = values[row * columns + column] } }
        return Tensor(shape: [columns, rows], floats: result)
    }
}
