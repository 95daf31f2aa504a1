/// Text specifications of the models `stoke train` and `stoke distill` build.
///
/// - `mlp:IN-H1-…-OUT`: Flatten, then Linear layers with ReLU (and optional dropout) between them;
///   IN must equal the sample's element count.
/// - `cnn:TOKEN-TOKEN-…` (tokens separated by `-`, applied in order; input channels come from the
///   sample shape [C, H, W], and a Flatten is inserted before the first `fc`):
///   - `c<OUT>k<K>[s<S>][p<P>]`: Conv2d with OUT channels, K×K kernel, stride S (1), padding P (0),
///     e.g. `c16k3p1`
///   - `relu`; `bn` (BatchNorm over the channels or features); `do<P>` (Dropout, P in [0, 1), e.g. `do0.25`)
///   - `mp<K>[s<S>]` / `ap<K>[s<S>]`: max / average pooling, K×K windows, stride S (K)
///   - `flat` (explicit Flatten); `fc<N>`: Linear with N outputs
///
///   Example: `cnn:c16k3p1-bn-relu-mp2-c32k3p1-relu-mp2-fc128-relu-do0.25-fc10`.
public enum ArchitectureSpec {
    /// The layers of `spec` for samples of `sampleShape`; `dropout` > 0 adds Dropout after each hidden
    /// MLP layer (ignored for `cnn:`, which says where dropout goes).
    ///
    /// - Throws: `EngineError.badInput` naming the bad token, or the layer whose shape does not fit.
    public static func layers(_ spec: String, sampleShape: [Int], dropout: Float = 0) throws(EngineError) -> [Layer] {
        let layers = try parse(spec, sampleShape: sampleShape, dropout: dropout)
        do {
            _ = try SequentialModel(layers: layers, sampleShape: sampleShape).outputSampleShape()
        } catch {
            throw EngineError.badInput("architecture '\(spec)' does not fit samples of shape \(sampleShape): \(error)")
        }
        return layers
    }

    /// Checks the spelling of `spec` without a sample shape (for argument validation).
    public static func validate(_ spec: String) throws(EngineError) {
        if spec.hasPrefix("cnn:") {
            for token in tokens(spec) { _ = try cnnToken(token, spec: spec) }
        } else {
            _ = try mlpSizes(spec)
        }
    }

    private static func tokens(_ spec: String) -> [Substring] {
        spec.dropFirst(4).split(separator: "-", omittingEmptySubsequences: false)
    }

    private static func mlpSizes(_ spec: String) throws(EngineError) -> [Int] {
        guard spec.hasPrefix("mlp:") || spec.hasPrefix("cnn:") else {
            throw EngineError.badInput("architecture '\(spec)': use mlp:IN-H1-…-OUT or cnn:TOKENS (e.g. cnn:c16k3p1-relu-mp2-fc10)")
        }
        var sizes: [Int] = []
        for token in tokens(spec) {
            guard let size = Int(token), size > 0 else {
                throw EngineError.badInput("architecture '\(spec)': '\(token)' is not a positive layer size")
            }
            sizes.append(size)
        }
        guard sizes.count >= 2 else { throw EngineError.badInput("architecture '\(spec)': an MLP needs at least two sizes, e.g. mlp:784-256-10") }
        return sizes
    }

    private enum Token {
        case conv(out: Int, kernel: Int, stride: Int, padding: Int)
        case relu, batchNorm, flatten
        case maxPool(kernel: Int, stride: Int?), avgPool(kernel: Int, stride: Int?)
        case dropout(Float)
        case linear(Int)
    }

    /// Reads `<number>(<letter><number>)*` after a token's prefix, e.g. "16k3p1" → [(nil, 16), ("k", 3), ("p", 1)].
    private static func fields(_ text: Substring) -> [(key: Character?, value: Int)]? {
        var result: [(key: Character?, value: Int)] = []
        var key: Character? = nil, digits = ""
        for character in text {
            if character.isASCII && character.isNumber {
                digits.append(character)
                continue
            }
            guard let value = Int(digits) else { return nil }
            result.append((key, value))
            key = character
            digits = ""
        }
        guard let value = Int(digits) else { return nil }
        result.append((key, value))
        return result
    }

    private static func cnnToken(_ token: Substring, spec: String) throws(EngineError) -> Token {
        func bad(_ why: String) -> EngineError { .badInput("architecture '\(spec)': token '\(token)' \(why)") }
        switch token {
        case "relu": return .relu
        case "bn": return .batchNorm
        case "flat": return .flatten
        default: break
        }
        if token.hasPrefix("do") {
            guard let p = Float(token.dropFirst(2)), (0..<1).contains(p) else { throw bad("needs a dropout probability in [0, 1), e.g. do0.25") }
            return .dropout(p)
        }
        if token.hasPrefix("fc") {
            guard let n = Int(token.dropFirst(2)), n > 0 else { throw bad("needs a positive output size, e.g. fc128") }
            return .linear(n)
        }
        if token.hasPrefix("mp") || token.hasPrefix("ap") {
            guard let parts = fields(token.dropFirst(2)), parts.first?.key == nil, parts.dropFirst().allSatisfy({ $0.key == "s" }),
                  parts.count <= 2, parts.allSatisfy({ $0.value > 0 }) else {
                throw bad("should read \(token.prefix(2))<K>[s<S>] with positive K and S, e.g. mp2")
            }
            let stride = parts.count == 2 ? parts[1].value : nil
            return token.hasPrefix("mp") ? .maxPool(kernel: parts[0].value, stride: stride) : .avgPool(kernel: parts[0].value, stride: stride)
        }
        if token.hasPrefix("c") {
            guard let parts = fields(token.dropFirst(1)), parts.first?.key == nil, parts[0].value > 0 else {
                throw bad("should read c<OUT>k<K>[s<S>][p<P>], e.g. c16k3p1")
            }
            var kernel: Int?, stride = 1, padding = 0
            for part in parts.dropFirst() {
                switch part.key {
                case "k": kernel = part.value
                case "s": stride = part.value
                case "p": padding = part.value
                default: throw bad("has an unknown field '\(part.key.map(String.init) ?? "")' (use k, s, p)")
                }
            }
            guard let kernel, kernel > 0, stride > 0 else { throw bad("needs a positive kernel k and stride s, e.g. c16k3p1") }
            return .conv(out: parts[0].value, kernel: kernel, stride: stride, padding: padding)
        }
        throw bad("is not one of c<OUT>k<K>[s<S>][p<P>], relu, bn, mp<K>, ap<K>, do<P>, flat, fc<N>")
    }

    private static func parse(_ spec: String, sampleShape: [Int], dropout: Float) throws(EngineError) -> [Layer] {
        guard spec.hasPrefix("cnn:") else {
            let sizes = try mlpSizes(spec)
            let elements = sampleShape.reduce(1, *)
            guard sizes[0] == elements else {
                throw EngineError.badInput("architecture '\(spec)' starts with \(sizes[0]) inputs; samples \(sampleShape) have \(elements) values")
            }
            var layers: [Layer] = [.flatten]
            for index in 0..<(sizes.count - 1) {
                layers.append(.linear(inFeatures: sizes[index], outFeatures: sizes[index + 1]))
                if index < sizes.count - 2 {
                    layers.append(.relu)
                    if dropout > 0 { layers.append(.dropout(probability: dropout)) }
                }
            }
            return layers
        }
        var shape = sampleShape
        var layers: [Layer] = []
        for token in tokens(spec) {
            let parsed = try cnnToken(token, spec: spec)
            func needImage() throws(EngineError) {
                guard shape.count == 3 else {
                    throw EngineError.badInput("architecture '\(spec)': token '\(token)' needs [C, H, W] input, gets \(shape)")
                }
            }
            switch parsed {
            case let .conv(out, kernel, stride, padding):
                try needImage()
                layers.append(.conv2d(inChannels: shape[0], outChannels: out, kernelSize: kernel, stride: stride, padding: padding))
            case .relu: layers.append(.relu)
            case .batchNorm: layers.append(.batchNorm(features: shape.first ?? 0))
            case .flatten: layers.append(.flatten)
            case let .maxPool(kernel, stride):
                try needImage()
                layers.append(.maxPool2d(kernelSize: kernel, stride: stride))
            case let .avgPool(kernel, stride):
                try needImage()
                layers.append(.avgPool2d(kernelSize: kernel, stride: stride))
            case .dropout(let p): layers.append(.dropout(probability: p))
            case .linear(let n):
                if shape.count != 1 {
                    layers.append(.flatten)
                    shape = [shape.reduce(1, *)]
                }
                layers.append(.linear(inFeatures: shape[0], outFeatures: n))
            }
            do {
                shape = try SequentialModel(layers: layers, sampleShape: sampleShape).outputSampleShape()
            } catch {
                throw EngineError.badInput("architecture '\(spec)': token '\(token)' does not fit its input \(shape): \(error)")
            }
        }
        guard !layers.isEmpty else { throw EngineError.badInput("architecture '\(spec)' has no layers") }
        return layers
    }
}
