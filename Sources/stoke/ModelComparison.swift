import Foundation
import StokeBench
import StokeEngine

/// What `stoke prune` and `stoke quantize` print for the model before and after: size, work, accuracy
/// and speed, measured the same way for both so the ratio is honest.
struct ModelMetrics {
    /// Parameters (float initializer elements; quantized weights count once each).
    var params: Int
    /// Nonzero parameters.
    var nonzeros: Int
    /// Size of the model file on disk, bytes.
    var bytes: Int
    /// Multiply-accumulates per sample, nil when the input shape is not fully declared.
    var macs: Int?
    /// Top-1 accuracy on the `--eval` store, nil without one.
    var accuracy: Double?
    /// Samples per second: streamed from the `--eval` store when given, else the engine alone on one
    /// zero-filled batch of `batchSize` samples.
    var samplesPerSecond: Double

    /// Measures `model` (stored at `path`, whose size is reported).
    ///
    /// - Parameters:
    ///   - eval: a labeled store to stream through the model for accuracy and samples/s.
    ///   - batchSize: samples per batch for the speed measurement.
    ///   - seconds: how long the engine-alone measurement runs, seconds.
    static func measure(_ model: Model, path: String, eval: String?, batchSize: Int = 256, threads: Int? = nil,
                        seconds: Double = 1.0) throws -> ModelMetrics {
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        let params = model.parameterCount
        let nonzeros = model.nonzeroParameterCount
        let macs = samplewiseMACs(model)
        // A model with a fixed batch size runs only at it.
        let batchSize = model.fixedBatchSize ?? batchSize
        if let eval {
            var options = StreamingInference.Options()
            options.batchSize = batchSize
            options.engineThreads = threads
            options.context = processContext
            let result = try StreamingInference.run(model: model, storePath: eval, options: options)
            return ModelMetrics(params: params, nonzeros: nonzeros, bytes: bytes, macs: macs, accuracy: result.accuracy,
                                samplesPerSecond: result.samplesPerSecond)
        }
        guard let input = model.inputs.first, let dims = input.shape else {
            throw UsageError("the model's input declares no shape: give --eval STORE to measure it")
        }
        var shape = dims.map { dimension -> Int in if case .fixed(let value) = dimension { return value } else { return 1 } }
        if !shape.isEmpty { shape[0] = batchSize }
        let session = Session(model: model, context: processContext.with(threads: threads ?? ProcessInfo.processInfo.activeProcessorCount))
        let batch = Tensor(shape: shape, floats: [Float](repeating: 0, count: shape.reduce(1, *)))
        _ = try session.run([input.name: batch]) { _ in 0 }
        var runs = 0
        let start = ContinuousClock.now
        var elapsed = 0.0
        repeat {
            _ = try session.run([input.name: batch]) { _ in 0 }
            runs += 1
            let duration = start.duration(to: .now)
            elapsed = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        } while elapsed < seconds
        return ModelMetrics(params: params, nonzeros: nonzeros, bytes: bytes, macs: macs, accuracy: nil,
                            samplesPerSecond: Double(runs * shape[0]) / elapsed)
    }

    /// MACs per sample with symbolic dimensions taken as 1; nil when an input declares no shape.
    static func samplewiseMACs(_ model: Model) -> Int? {
        guard model.inputs.allSatisfy({ $0.shape != nil }), let byNode = try? model.macsPerSample() else { return nil }
        return byNode.values.reduce(0, +)
    }

    /// The JSON object under `before` / `after`.
    var json: [String: Any] {
        ["params": params, "nonzeros": nonzeros, "bytes": bytes, "macs": macs ?? NSNull(),
         "accuracy": accuracy ?? NSNull(), "samples_per_s": samplesPerSecond]
    }

    /// Prints the before/after table with the after/before ratio of each row.
    static func printComparison(before: ModelMetrics, after: ModelMetrics, afterLabel: String = "after") {
        func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? String(format: "%.2f×", a / b) : "" }
        func count(_ value: Int) -> String { value.formatted() }
        var rows: [[String]] = [
            ["parameters", count(before.params), count(after.params), ratio(Double(after.params), Double(before.params))],
            ["nonzero", count(before.nonzeros), count(after.nonzeros), ratio(Double(after.nonzeros), Double(before.nonzeros))],
            ["size (bytes)", count(before.bytes), count(after.bytes), ratio(Double(after.bytes), Double(before.bytes))],
        ]
        if let b = before.macs, let a = after.macs { rows.append(["MACs/sample", count(b), count(a), ratio(Double(a), Double(b))]) }
        if let b = before.accuracy, let a = after.accuracy {
            rows.append(["accuracy", String(format: "%.2f%%", b * 100), String(format: "%.2f%%", a * 100), String(format: "%+.2f pp", (a - b) * 100)])
        }
        rows.append(["samples/s", String(format: "%.0f", before.samplesPerSecond), String(format: "%.0f", after.samplesPerSecond),
                     ratio(after.samplesPerSecond, before.samplesPerSecond)])
        printTable(["", "before", afterLabel, "change"], rows)
    }
}
