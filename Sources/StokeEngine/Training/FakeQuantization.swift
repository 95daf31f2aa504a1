import Foundation

// Quantization-aware training (`TrainingOptions.quantizationAware`): the forward pass sees what the
// static INT8 model will compute — weights rounded per output channel to symmetric int8, the input of
// every Linear and Conv rounded to uint8 with an asymmetric range — while the FP32 weights keep the
// updates (straight-through estimator). The ranges are the ones static quantization will use.

extension Trainer {
    /// A tracked range widened to contain 0, as uint8 quantization needs (zero must be exact for
    /// padding and ReLU).
    static func quantizationRange(_ range: (low: Float, high: Float)) -> (low: Float, high: Float) {
        (min(range.low, 0), max(range.high, 0))
    }

    /// Folds one batch's minimum and maximum of graph value `value` into its moving range (the first
    /// batch sets it).
    func observeRange(value: Int, _ x: UnsafePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var low = Float.infinity, high = -Float.infinity
        for i in 0..<count {
            low = min(low, unsafe x[i])
            high = max(high, unsafe x[i])
        }
        if let old = valueRanges[value] {
            let momentum = options.rangeMomentum
            valueRanges[value] = (old.low + momentum * (low - old.low), old.high + momentum * (high - old.high))
        } else {
            valueRanges[value] = (low, high)
        }
    }

    /// uint8 asymmetric fake quantization of graph value `value` with its tracked range, rounding half
    /// to even like QuantizeLinear; a value with no range yet passes unchanged.
    func fakeQuantize(value: Int, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        guard let tracked = valueRanges[value] else {
            unsafe y.update(from: x, count: count)
            return
        }
        let range = Self.quantizationRange(tracked)
        let scale = (range.high - range.low) / 255
        guard scale > 0 else {
            unsafe y.update(repeating: 0, count: count)
            return
        }
        let zeroPoint = min(255, max(0, (-range.low / scale).rounded(.toNearestOrEven)))
        for i in 0..<count {
            let q = min(255, max(0, (unsafe x[i] / scale).rounded(.toNearestOrEven) + zeroPoint))
            unsafe y[i] = (q - zeroPoint) * scale
        }
    }

    /// Zeroes the input gradient where the forward pass clipped (clipped straight-through estimator).
    func clipGradient(value: Int, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int) {
        guard let tracked = valueRanges[value] else { return }
        let range = Self.quantizationRange(tracked)
        for i in 0..<count where unsafe x[i] < range.low || x[i] > range.high { unsafe dx[i] = 0 }
    }

    /// Symmetric int8 per-row fake quantization of a group's weight into its `quantized` buffer:
    /// scale = max|w| / 127 per output channel, values rounded half to even and clamped to ±127.
    static func fakeQuantizeRows(_ group: ParameterGroup) {
        guard let quantized = group.quantized else { return }
        let width = group.weight.count / max(group.rows, 1)
        for row in 0..<group.rows {
            let w = unsafe group.weight.pointer + row * width, q = unsafe quantized.pointer + row * width
            var largest: Float = 0
            for i in 0..<width { largest = max(largest, abs(unsafe w[i])) }
            let scale = largest / 127
            for i in 0..<width {
                unsafe q[i] = scale > 0 ? min(127, max(-127, (w[i] / scale).rounded(.toNearestOrEven))) * scale : 0
            }
        }
    }

    /// The activation ranges quantization-aware training learned, keyed by the value names
    /// `SequentialModel.graph()` uses ("input", "layer0", …, "output"); each contains 0. Empty unless
    /// `TrainingOptions.quantizationAware` and at least one training step ran.
    public func activationRanges() -> [String: ClosedRange<Float>] {
        var ranges: [String: ClosedRange<Float>] = [:]
        for (value, tracked) in valueRanges.enumerated() {
            guard let tracked else { continue }
            let range = Self.quantizationRange(tracked)
            let name = value == 0 ? "input" : value == steps.count ? "output" : "layer\(value - 1)"
            ranges[name] = range.low...range.high
        }
        return ranges
    }

    /// The learned activation ranges as the calibration table `Model.quantizedStatic(calibration:)`
    /// takes: convert the trained model with
    /// `try trainer.model().model().quantizedStatic(calibration: trainer.calibrationTable())`.
    /// Its weight and activation rounding are the ones the QAT forward pass simulated.
    public func calibrationTable() -> CalibrationTable { CalibrationTable(ranges: activationRanges()) }
}
