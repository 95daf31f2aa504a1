extension SequentialModel {
    /// Ln-norm structured pruning: removes, from every Linear and Conv2d layer whose outputs feed another
    /// Linear or Conv2d, the output neurons or filters whose weights have the smallest Ln norm, together
    /// with everything that only served them (bias entries, the following BatchNorm's features, the
    /// next layer's input columns or channels, through Flatten with its spatial multiplicity). The
    /// result is a smaller dense model, so parameters and MACs really fall. The last Linear/Conv2d layer
    /// keeps all its outputs.
    ///
    /// A removed channel contributes nothing downstream: the pruned model computes exactly what this
    /// model computes with that channel's weights, bias and BatchNorm scale and shift set to zero.
    ///
    /// - Parameters:
    ///   - amount: fraction (0–1) of each prunable layer's channels to remove, rounded down; at least one
    ///     channel always stays.
    ///   - norm: 1 (sum of magnitudes) or 2 (Euclidean) — the norm of each channel's weights.
    ///   - baseline: the model whose widths `amount` refers to (for iterative pruning, the unpruned
    ///     model, so round i of K removes amount·i/K of the original channels in total); default self.
    /// - Throws: `EngineError.badInput` for an amount outside 0...1, a norm other than 1 or 2, a baseline
    ///   with other layers, or, when `amount` > 0, a model with no layer whose outputs can be removed.
    public func prunedStructured(amount: Double, norm: Int = 2, baseline: SequentialModel? = nil) throws(EngineError) -> SequentialModel {
        try keepingChannels(channelsToKeep(amount: amount, norm: norm, baseline: baseline))
    }

    /// The channels `prunedStructured(amount:norm:baseline:)` keeps: layer index → kept output channel
    /// (or neuron) indices, ascending, for the layers that lose at least one. The removed ones are those
    /// with the smallest Ln weight norm, ties broken by the lower index.
    public func channelsToKeep(amount: Double, norm: Int = 2, baseline: SequentialModel? = nil) throws(EngineError) -> [Int: [Int]] {
        guard (0...1).contains(amount) else { throw EngineError.badInput("structured pruning amount \(amount) is outside 0...1") }
        guard norm == 1 || norm == 2 else { throw EngineError.badInput("structured pruning norm \(norm): use 1 or 2") }
        let reference = baseline ?? self
        guard reference.layers.count == layers.count,
              zip(reference.layers, layers).allSatisfy({ Self.sameKind($0, $1) }) else {
            throw EngineError.badInput("the baseline model for structured pruning has other layers than the model being pruned")
        }
        let prunable = prunableLayers
        if amount > 0 && prunable.isEmpty {
            let last = layers.indices.last { Self.outputWidth(layers[$0]) != nil }
            throw EngineError.badInput(last.map { "nothing to prune: layer \($0) (\(layers[$0])) is the model's last Linear/Conv2d layer and keeps its outputs" }
                                       ?? "nothing to prune: the model has no Linear or Conv2d layer")
        }
        var plan: [Int: [Int]] = [:]
        for index in prunable {
            let width = Self.outputWidth(layers[index])!, baseWidth = Self.outputWidth(reference.layers[index])!
            // The epsilon keeps 0.3·10 from rounding down to 2 through binary representation.
            let keep = max(1, baseWidth - Int((Double(baseWidth) * amount + 1e-9).rounded(.down)))
            guard keep < width else { continue }
            let weights = parameters["\(index).weight"]!.floats
            let rowLength = weights.count / width
            let norms = (0..<width).map { row in
                let slice = weights[(row * rowLength)..<((row + 1) * rowLength)]
                return norm == 1 ? slice.reduce(Float(0)) { $0 + abs($1) } : slice.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
            }
            let removed = Set((0..<width).sorted { (norms[$0], $0) < (norms[$1], $1) }.prefix(width - keep))
            plan[index] = (0..<width).filter { !removed.contains($0) }
        }
        return plan
    }

    /// The model with only the given output channels of the given layers, and the matching inputs of
    /// the layers after them (see `prunedStructured`). Layers not in `kept` stay whole.
    ///
    /// - Parameter kept: layer index → output channel indices to keep (ascending, unique, non-empty);
    ///   only Linear/Conv2d layers whose outputs feed another Linear/Conv2d layer may appear.
    /// - Throws: `EngineError.badInput` naming the layer for any other entry.
    public func keepingChannels(_ kept: [Int: [Int]]) throws(EngineError) -> SequentialModel {
        let prunable = Set(prunableLayers)
        for (index, channels) in kept.sorted(by: { $0.key < $1.key }) {
            guard layers.indices.contains(index) else { throw EngineError.badInput("structured pruning: no layer \(index)") }
            guard prunable.contains(index) else {
                throw EngineError.badInput("structured pruning: layer \(index) (\(layers[index])) cannot lose outputs: only a Linear or Conv2d layer whose outputs feed another Linear or Conv2d layer can")
            }
            let width = Self.outputWidth(layers[index])!
            guard !channels.isEmpty, zip(channels, channels.dropFirst()).allSatisfy({ $0 < $1 }), channels.allSatisfy({ (0..<width).contains($0) }) else {
                throw EngineError.badInput("structured pruning: the kept channels of layer \(index) must be ascending, unique, non-empty and below \(width)")
            }
        }
        var newLayers = layers
        var newParameters: [String: Tensor] = [:]
        var shape = sampleShape
        // Indices along the current sample's first axis (channels or features) that survive; nil = all.
        var surviving: [Int]? = nil
        for (index, layer) in layers.enumerated() {
            let inputShape = shape
            shape = try Self.outputShape(of: layer, at: index, input: shape)
            func select(_ suffix: String, rows: [Int]?, columns: [Int]?) {
                let name = "\(index).\(suffix)"
                guard let tensor = parameters[name] else { return }
                let height = tensor.shape[0], width = tensor.shape.count > 1 ? tensor.shape[1] : 1
                let inner = tensor.count / max(height * width, 1)
                let values = tensor.floats
                let rowList = rows ?? Array(0..<height), columnList = columns ?? Array(0..<width)
                var result: [Float] = []
                result.reserveCapacity(rowList.count * columnList.count * inner)
                for row in rowList {
                    for column in columnList {
                        let start = (row * width + column) * inner
                        result.append(contentsOf: values[start..<(start + inner)])
                    }
                }
                var newShape = tensor.shape
                newShape[0] = rowList.count
                if newShape.count > 1 { newShape[1] = columnList.count }
                newParameters[name] = Tensor(shape: newShape, floats: result)
            }
            switch layer {
            case let .linear(inFeatures, outFeatures, bias):
                let rows = kept[index]
                select("weight", rows: rows, columns: surviving)
                select("bias", rows: rows, columns: nil)
                newLayers[index] = .linear(inFeatures: surviving?.count ?? inFeatures, outFeatures: rows?.count ?? outFeatures, bias: bias)
                surviving = rows
            case let .conv2d(inChannels, outChannels, kernelSize, stride, padding, bias):
                let rows = kept[index]
                select("weight", rows: rows, columns: surviving)
                select("bias", rows: rows, columns: nil)
                newLayers[index] = .conv2d(inChannels: surviving?.count ?? inChannels, outChannels: rows?.count ?? outChannels,
                                           kernelSize: kernelSize, stride: stride, padding: padding, bias: bias)
                surviving = rows
            case let .batchNorm(_, epsilon):
                guard let surviving else { continue }
                for suffix in ["weight", "bias", "running_mean", "running_var"] { select(suffix, rows: surviving, columns: nil) }
                newLayers[index] = .batchNorm(features: surviving.count, epsilon: epsilon)
            case .flatten:
                // Channel c of a [C, H, W] sample becomes columns c·H·W ..< (c+1)·H·W.
                guard let channels = surviving, inputShape.count > 1 else { continue }
                let spatial = inputShape.dropFirst().reduce(1, *)
                surviving = channels.flatMap { ($0 * spatial)..<(($0 + 1) * spatial) }
            case .relu, .dropout, .maxPool2d, .avgPool2d:
                continue
            }
        }
        var model = try SequentialModel(layers: newLayers, sampleShape: sampleShape)
        for (name, value) in parameters { try model.setParameter(name, newParameters[name] ?? value) }
        return model
    }

    /// Linear/Conv2d layers whose outputs reach another Linear/Conv2d layer: every one but the last,
    /// since the layers between (ReLU, pooling, Dropout, BatchNorm, Flatten) all keep channels apart.
    var prunableLayers: [Int] {
        let weighted = layers.indices.filter { Self.outputWidth(layers[$0]) != nil }
        return Array(weighted.dropLast())
    }

    /// Output channels (Conv2d) or neurons (Linear); nil for layers without weights.
    static func outputWidth(_ layer: Layer) -> Int? {
        switch layer {
        case let .linear(_, outFeatures, _): outFeatures
        case let .conv2d(_, outChannels, _, _, _, _): outChannels
        default: nil
        }
    }

    /// Whether two layers are the same operation, widths aside.
    static func sameKind(_ a: Layer, _ b: Layer) -> Bool {
        switch (a, b) {
        case (.linear, .linear), (.conv2d, .conv2d), (.relu, .relu), (.maxPool2d, .maxPool2d), (.avgPool2d, .avgPool2d),
             (.flatten, .flatten), (.batchNorm, .batchNorm), (.dropout, .dropout): true
        default: false
        }
    }
}
