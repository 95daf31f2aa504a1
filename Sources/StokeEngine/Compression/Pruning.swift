import StokeStore

/// How unstructured pruning picks the weights it zeroes.
public enum PruningMethod: Sendable, Equatable {
    /// A seeded random `amount` of each layer's weights.
    case random(seed: UInt64)
    /// The smallest-magnitude `amount` of each layer's weights.
    case l1
    /// The smallest-magnitude `amount` of all layers' weights together (layers lose different shares).
    case globalL1
}

extension SequentialModel {
    /// The model with a fraction `amount` (0–1) of its Linear and Conv2d weights set to zero; biases and
    /// BatchNorm stay. Fine-tuning with `TrainingOptions.holdZeroWeights` keeps them at zero.
    public func prunedUnstructured(amount: Double, method: PruningMethod) throws(EngineError) -> SequentialModel {
        guard (0...1).contains(amount) else { throw EngineError.badInput("pruning amount \(amount) is outside 0...1") }
        var model = self
        let names = layers.indices.compactMap { index -> String? in
            switch layers[index] {
            case .linear, .conv2d: return "\(index).weight"
            default: return nil
            }
        }
        switch method {
        case .globalL1:
            let all = names.flatMap { parameters[$0]!.floats.map(abs) }.sorted()
            let cut = Int((Double(all.count) * amount).rounded(.down))
            guard cut > 0 else { return model }
            let threshold = all[cut - 1]
            // Ties at the threshold: prune in order until exactly `cut` weights are zero.
            var remaining = cut
            for name in names {
                var values = parameters[name]!.floats
                for index in values.indices where abs(values[index]) < threshold { values[index] = 0; remaining -= 1 }
                try model.setParameter(name, Tensor(shape: parameters[name]!.shape, floats: values))
            }
            for name in names where remaining > 0 {
                var values = model.parameters[name]!.floats
                for index in values.indices where remaining > 0 && values[index] != 0 && abs(values[index]) == threshold {
                    values[index] = 0
                    remaining -= 1
                }
                try model.setParameter(name, Tensor(shape: parameters[name]!.shape, floats: values))
            }
        case .l1, .random:
            var generator = SplitMix64(seed: { if case let .random(seed) = method { return seed } else { return 0 } }())
            for name in names {
                var values = parameters[name]!.floats
                let cut = Int((Double(values.count) * amount).rounded(.down))
                let order: [Int]
                if case .random = method {
                    var indices = Array(values.indices)
                    for index in stride(from: indices.count - 1, to: 0, by: -1) {
                        indices.swapAt(index, Int(generator.next() % UInt64(index + 1)))
                    }
                    order = indices
                } else {
                    order = values.indices.sorted { (abs(values[$0]), $0) < (abs(values[$1]), $1) }
                }
                for index in order.prefix(cut) { values[index] = 0 }
                try model.setParameter(name, Tensor(shape: parameters[name]!.shape, floats: values))
            }
        }
        return model
    }

    /// `prunedStructured(amount:norm: 2)`: the L2-weakest hidden neurons (and filters) removed. Kept under
    /// its old name, which `stoke demo` uses.
    public func prunedNeurons(amount: Double) throws(EngineError) -> SequentialModel {
        try prunedStructured(amount: amount, norm: 2)
    }

    /// Fraction of Linear/Conv2d weights that are exactly zero.
    public var sparsity: Double {
        let weights = layers.indices.compactMap { index -> [Float]? in
            switch layers[index] {
            case .linear, .conv2d: return parameters["\(index).weight"]?.floats
            default: return nil
            }
        }
        let total = weights.reduce(0) { $0 + $1.count }
        return total == 0 ? 0 : Double(weights.reduce(0) { $0 + $1.filter { $0 == 0 }.count }) / Double(total)
    }
}
