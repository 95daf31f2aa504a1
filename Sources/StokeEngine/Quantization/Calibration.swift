/// How a calibration table turns the values observed on the calibration data into a clip range.
public enum CalibrationMethod: Sendable, Equatable {
    /// The observed minimum and maximum.
    case minMax
    /// Clip |x| at this percentile (e.g. 99.99) of the observed magnitudes, within the observed range.
    case percentile(Double)
    /// The clip range that minimizes the expected squared quantization error (rounding noise inside
    /// the range, clipping error outside) over the observed magnitudes.
    case mse
}

/// Observed float ranges of the values static quantization puts Q/DQ pairs on.
public struct CalibrationTable: Sendable, Equatable, Codable {
    /// Range per graph value name (inputs of quantizable nodes and their outputs, after a following
    /// ReLU), in the value's own units; every range includes 0.
    public var ranges: [String: ClosedRange<Float>]

    public init(ranges: [String: ClosedRange<Float>]) {
        self.ranges = ranges
    }

    private struct Bounds: Codable {
        var lower: Float
        var upper: Float
    }

    public init(from decoder: any Decoder) throws {
        let bounds = try [String: Bounds](from: decoder)
        var ranges: [String: ClosedRange<Float>] = [:]
        for (name, value) in bounds {
            guard value.lower <= value.upper else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "range of '\(name)' has lower \(value.lower) > upper \(value.upper)"))
            }
            ranges[name] = value.lower...value.upper
        }
        self.ranges = ranges
    }

    public func encode(to encoder: any Encoder) throws {
        try ranges.mapValues { Bounds(lower: $0.lowerBound, upper: $0.upperBound) }.encode(to: encoder)
    }
}

/// Streams of one value's observations: extremes and a histogram of magnitudes whose range
/// doubles (merging bin pairs) whenever a batch exceeds it, so memory stays fixed.
struct RangeObserver {
    static let bins = 2048
    var lower = Float.infinity
    var upper = -Float.infinity
    /// Histogram of |x| over [0, limit): bin i covers [i, i+1) · limit / bins.
    var limit: Float = 0
    var counts: [Double]
    let histogram: Bool

    init(histogram: Bool) {
        self.histogram = histogram
        counts = histogram ? [Double](repeating: 0, count: Self.bins) : []
    }

    mutating func observe(_ values: [Float]) {
        var low = lower, high = upper, magnitude: Float = 0
        for value in values where value.isFinite {
            low = min(low, value)
            high = max(high, value)
            magnitude = max(magnitude, abs(value))
        }
        lower = low
        upper = high
        guard histogram, magnitude > 0 else { return }
        if limit == 0 {
            limit = magnitude * (1 + 1e-6)
        }
        while magnitude >= limit {
            // Double the range: bin pairs merge into the lower half.
            for bin in 0..<(Self.bins / 2) { counts[bin] = counts[2 * bin] + counts[2 * bin + 1] }
            for bin in (Self.bins / 2)..<Self.bins { counts[bin] = 0 }
            limit *= 2
        }
        for value in values where value.isFinite {
            // Dividing by the limit (not multiplying by bins/limit, which overflows to inf for a limit
            // near the smallest floats) keeps the bin finite whatever the data's scale.
            counts[Int(min(Float(Self.bins - 1), abs(value) / limit * Float(Self.bins)))] += 1
        }
    }

    /// The clip range for `method`, including 0.
    func range(_ method: CalibrationMethod) -> ClosedRange<Float> {
        guard lower <= upper else { return 0...0 }
        let observed = min(lower, 0)...max(upper, 0)
        guard histogram, limit > 0 else { return observed }
        let width = limit / Float(Self.bins)
        let total = counts.reduce(0, +)
        func clipped(_ threshold: Float) -> ClosedRange<Float> {
            max(observed.lowerBound, -threshold)...min(observed.upperBound, threshold)
        }
        switch method {
        case .minMax:
            return observed
        case let .percentile(percent):
            let target = total * min(100, max(0, percent)) / 100
            var running: Double = 0
            for bin in 0..<Self.bins {
                running += counts[bin]
                if running >= target { return clipped(Float(bin + 1) * width) }
            }
            return observed
        case .mse:
            var best = observed, bestError = Double.infinity
            for edge in stride(from: 8, through: Self.bins, by: 8) {
                let threshold = Float(edge) * width
                let range = clipped(threshold)
                let step = Double(range.upperBound - range.lowerBound) / 255
                let noise = step * step / 12
                var error: Double = 0
                for bin in 0..<Self.bins where counts[bin] > 0 {
                    let center = (Double(bin) + 0.5) * Double(width)
                    let excess = center - Double(threshold)
                    error += counts[bin] * (excess > 0 ? excess * excess : noise)
                }
                if error < bestError {
                    bestError = error
                    best = range
                }
            }
            return best
        }
    }
}

/// Collects the ranges static quantization needs by running the FP32 model on calibration
/// batches, with the values to observe exposed as extra outputs.
public final class Calibrator {
    public let method: CalibrationMethod
    private let session: Session
    private let names: [String]
    private var observers: [String: RangeObserver]
    /// Samples (axis 0 of the first input) seen so far.
    public private(set) var samplesObserved = 0

    /// - Throws: `EngineError.invalidModel` when the model has nothing to quantize or is already
    ///   quantized.
    /// - Parameter context: how the observing session runs (default: `ExecutionContext.default`).
    public init(model: Model, method: CalibrationMethod = .minMax, context: ExecutionContext = .default) throws(EngineError) {
        if case let .percentile(percent) = method, !(percent > 0 && percent <= 100) {
            throw EngineError.badInput("calibration percentile \(percent) is outside (0, 100]")
        }
        var graph = try model.quantizationBaseGraph()
        let points = StaticQuantizer.points(graph)
        guard !points.isEmpty else { throw EngineError.invalidModel("the model has no Conv/Gemm/MatMul with constant weights to quantize") }
        var names: [String] = []
        for point in points {
            for name in [point.input, point.output] where !names.contains(name) { names.append(name) }
        }
        let declared = Set(graph.outputs.map(\.name))
        for name in names where !declared.contains(name) { graph.outputs.append(ValueInfo(name: name, onnxElementType: 1, shape: nil)) }
        var options = OptimizationOptions()
        options.fuseQDQ = false
        let observed = try Model(graph: graph, opset: model.opset, options: options)
        self.method = method
        self.names = names
        self.session = Session(model: observed, context: context)
        let histogram = method != .minMax
        observers = Dictionary(uniqueKeysWithValues: names.map { ($0, RangeObserver(histogram: histogram)) })
    }

    /// Runs one batch (the model's inputs by name) and folds its values into the ranges.
    public func observe(_ inputs: [String: Tensor]) throws(EngineError) {
        let outputs = try session.run(inputs)
        for name in names {
            guard let tensor = outputs[name] else { throw EngineError.invalidModel("calibration output '\(name)' was not produced") }
            observers[name]?.observe(tensor.floats)
        }
        samplesObserved += session.model.inputs.first.flatMap { inputs[$0.name]?.shape.first } ?? 1
    }

    /// The ranges observed so far under the calibration method.
    public func table() throws(EngineError) -> CalibrationTable {
        guard samplesObserved > 0 else { throw EngineError.badInput("calibration observed no batches; call observe(_:) first") }
        return CalibrationTable(ranges: observers.mapValues { $0.range(method) })
    }
}
