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

    /// The model with a fraction `amount` of each hidden Linear layer's neurons removed — those whose
    /// incoming weights have the smallest L2 norm — together with the matching inputs of the next
    /// Linear layer: a smaller dense model that runs faster, not just a sparser one. MLPs only
    /// (Linear, ReLU, Dropout, Flatten); the last layer keeps all its outputs.
    public func prunedNeurons(amount: Double) throws(EngineError) -> SequentialModel {
        guard (0..<1).contains(amount) else { throw EngineError.badInput("neuron pruning amount \(amount) must be in [0, 1)") }
        let linearIndices = layers.indices.filter { if case .linear = layers[$0] { true } else { false } }
        for (index, layer) in layers.enumerated() {
            switch layer {
            case .linear, .relu, .dropout, .flatten: continue
            default: throw EngineError.badInput("layer \(index): neuron pruning handles MLPs (Linear, ReLU, Dropout, Flatten), not \(layer)")
            }
        }
        var newLayers = layers
        var newParameters: [String: Tensor] = [:]
        var keptInputs: [Int]? = nil  // inputs of the current layer that survive the previous layer's pruning
        for (position, index) in linearIndices.enumerated() {
            guard case let .linear(inFeatures, outFeatures, bias) = layers[index] else { continue }
            let weights = parameters["\(index).weight"]!.floats  // [out, in]
            let inputs = keptInputs ?? Array(0..<inFeatures)
            var outputs = Array(0..<outFeatures)
            if position < linearIndices.count - 1 {
                let keep = max(1, outFeatures - Int((Double(outFeatures) * amount).rounded(.down)))
                let norms = (0..<outFeatures).map { row in inputs.reduce(Float(0)) { $0 + weights[row * inFeatures + $1] * weights[row * inFeatures + $1] } }
                outputs = (0..<outFeatures).sorted { (norms[$0], $1) > (norms[$1], $0) }.prefix(keep).sorted()
            }
            var newWeights: [Float] = []
            newWeights.reserveCapacity(outputs.count * inputs.count)
            for row in outputs { for column in inputs { newWeights.append(weights[row * inFeatures + column]) } }
            newParameters["\(index).weight"] = Tensor(shape: [outputs.count, inputs.count], floats: newWeights)
            if bias {
                let biases = parameters["\(index).bias"]!.floats
                newParameters["\(index).bias"] = Tensor(shape: [outputs.count], floats: outputs.map { biases[$0] })
            }
            newLayers[index] = .linear(inFeatures: inputs.count, outFeatures: outputs.count, bias: bias)
            keptInputs = outputs
        }
        var model = try SequentialModel(layers: newLayers, sampleShape: sampleShape)
        for (name, value) in newParameters { try model.setParameter(name, value) }
        return model
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
