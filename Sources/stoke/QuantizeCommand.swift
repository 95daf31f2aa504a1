import ArgumentParser
import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokeStore

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model to INT8: dynamic, or static (QDQ) calibrated on a store, optionally keeping the most sensitive layers FP32.",
        discussion: """
            Examples:
              stoke quantize mlp.h5 -o mlp-int8.h5 --eval test.h5
              stoke quantize cnn.onnx -o cnn-qdq.onnx --mode static --calibrate train.h5 --method percentile --percentile 99.99
              stoke quantize mlp.h5 -o mixed.h5 --mode static --calibrate train.h5 --eval test.h5 --max-accuracy-drop 0.3
              stoke quantize mlp.h5 -o mlp-qat.h5 --qat train.h5 --epochs 1 --eval test.h5
            With --qat the model (a Stoke model file or a sequential ONNX graph) is first fine-tuned on the store with \
            fake quantization (int8 per-channel weights, uint8 inputs of every Linear/Conv, straight-through gradients); \
            the ranges it learned replace calibration.

            An output ending in .onnx is written as standard ONNX (static: QuantizeLinear/DequantizeLinear around FP32 operators; \
            dynamic: DynamicQuantizeLinear + MatMulInteger, as onnxruntime's quantize_dynamic writes, which onnxruntime runs but \
            Stoke does not load), any other name as a Stoke HDF5 graph model file that stoke run, infer and inspect take.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable { case dynamic, `static` }
    enum Method: String, ExpressibleByArgument, CaseIterable { case minmax, percentile, mse }

    @Argument(help: "The model (.onnx or Stoke .h5).") var model: String
    @Option(name: .shortAndLong, help: "The quantized model to write (.onnx: standard ONNX; else a Stoke HDF5 graph model file).") var output: String
    @Option(name: .long, help: "dynamic (activations quantized per batch) or static (calibrated; the default with --calibrate).") var mode: Mode?
    @Option(name: .long, help: "A store of representative inputs for static calibration.") var calibrate: String?
    @Option(name: .long, help: "Samples of the calibration store to observe.") var calibrationSamples = 1024
    @Option(name: .long, help: "Quantization-aware training: fine-tune on this labeled store with fake quantization, then convert to static INT8 with the learned ranges.")
    var qat: String?
    @Option(name: .long, help: "Epochs of quantization-aware training.") var epochs = 1
    @Option(name: .long, help: "Learning rate (Adam) of quantization-aware training.") var lr: Float = 1e-4
    @Option(name: .long, help: "Seed of quantization-aware training's shuffling.") var seed: UInt64 = 0
    @Option(name: .long, help: "Calibration method: minmax, percentile or mse.") var method: Method = .minmax
    @Option(name: .long, help: "Percentile of |x| kept by --method percentile, in (0, 100].") var percentile = 99.99
    @Flag(name: .long, help: "One scale per weight tensor instead of per output channel.") var perTensor = false
    @Option(name: .long, help: "Weight range: s7 ([-63, 63]: exact fast u8 x s8 kernels on CPUs without VNNI; the default) or s8 ([-127, 127]).")
    var weightRange: WeightRange = .s7
    @Option(name: .customLong("keep-fp32"), help: "Comma-separated node names to leave in FP32.") var keepFP32: String?
    @Option(name: .long, help: "Keep the most sensitive layers FP32 until accuracy drops by at most this many percentage points.")
    var maxAccuracyDrop: Double?
    @Option(name: .long, help: "A labeled store: accuracy and samples/s before and after.") var eval: String?
    @Option(name: .long, help: "Engine threads for measurements (default: all cores).") var threads: Int?
    @Flag(name: .long, help: "Print JSON.") var json = false

    var resolvedMode: Mode { mode ?? (calibrate != nil || qat != nil ? .static : .dynamic) }

    mutating func validate() throws {
        guard percentile > 0, percentile <= 100 else { throw UsageError("--percentile must be in (0, 100], got \(percentile)") }
        guard calibrationSamples > 0 else { throw UsageError("--calibration-samples must be positive") }
        if let threads, threads < 1 { throw UsageError("--threads must be at least 1") }
        threads = threads.map { clampedEngineThreads($0) }
        if let maxAccuracyDrop, !(maxAccuracyDrop >= 0) { throw UsageError("--max-accuracy-drop must be a non-negative number of percentage points") }
        try checkOutputPath(output, inputs: [model, calibrate, qat, eval])
        if calibrate == nil {
            for (flag, given) in [("--method", method != .minmax), ("--percentile", percentile != 99.99), ("--calibration-samples", calibrationSamples != 1024)] where given {
                throw UsageError("\(flag) applies to calibration: add --calibrate STORE")
            }
        }
        if qat == nil {
            for (flag, given) in [("--epochs", epochs != 1), ("--lr", lr != 1e-4), ("--seed", seed != 0)] where given {
                throw UsageError("\(flag) applies to quantization-aware training: add --qat STORE")
            }
        }
        switch resolvedMode {
        case .static:
            guard calibrate != nil || qat != nil else {
                throw UsageError("--mode static needs --calibrate STORE (a store of representative inputs to observe activation ranges) or --qat STORE")
            }
            if qat != nil, calibrate != nil { throw UsageError("--qat learns the activation ranges: drop --calibrate") }
            guard epochs > 0, lr > 0, lr.isFinite else { throw UsageError("--epochs and --lr must be positive (and --lr finite)") }
        case .dynamic:
            for (flag, given) in [("--calibrate", calibrate != nil), ("--qat", qat != nil), ("--keep-fp32", keepFP32 != nil), ("--max-accuracy-drop", maxAccuracyDrop != nil),
                                  ("--per-tensor", perTensor)] where given {
                throw UsageError("\(flag) applies to static quantization: add --mode static --calibrate STORE")
            }
        }
    }

    func run() throws {
        try reportingErrors {
            let source = try Model.load(path: model)
            for store in [calibrate, qat, eval].compactMap({ $0 }) { _ = try ModelInputField.find(store: store, model: source) }
            let before = try ModelMetrics.measure(source, path: model, eval: eval, threads: threads)
            var result: [String: Any] = ["mode": resolvedMode.rawValue, "model": output, "weight_range": weightRange.rawValue]
            let quantized: Model
            switch resolvedMode {
            case .dynamic:
                quantized = try source.quantizedDynamic(weightRange: weightRange)
                result["quantized_nodes"] = quantized.quantizedNodeCount
            case .static:
                quantized = try quantizeStatic(source, result: &result)
            }
            if output.hasSuffix(".onnx") {
                let bytes = resolvedMode == .dynamic ? try quantized.dynamicQuantizedONNXBytes() : try quantized.onnxBytes()
                try Data(bytes).write(to: URL(fileURLWithPath: output), options: .atomic)
            } else {
                try quantized.save(to: output, metadata: ["quantized_from": model, "mode": resolvedMode.rawValue])
            }
            let after = try ModelMetrics.measure(quantized, path: output, eval: eval, threads: threads)
            result["before"] = before.json
            result["after"] = after.json
            if json {
                printJSON(result)
                return
            }
            print("\(resolvedMode.rawValue) INT8 quantization of \(model); saved \(output)")
            if let layers = result["layers"] as? [[String: Any]] { MixedPrecisionReport.printLayers(layers) }
            if let policy = result["mixed_precision"] as? [String: Any] {
                let percent = { (key: String) in (policy[key] as? Double).map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
                let kept = (policy["kept_fp32"] as? [String]) ?? []
                print("mixed precision: at most \(maxAccuracyDrop ?? 0) pp below FP32 on \(policy["samples"] as? Int ?? 0) labeled samples: FP32 \(percent("fp32_accuracy")), chosen \(percent("accuracy")); kept FP32: \(kept.isEmpty ? "none" : kept.joined(separator: ", "))")
            }
            ModelMetrics.printComparison(before: before, after: after, afterLabel: "INT8 \(resolvedMode.rawValue)")
        }
    }
}

/// Which field of a store feeds a model: the first field that is not the label (the one streaming
/// inference and calibration feed), checked to hold as many values per sample as the model's input
/// declares, so a wrong store fails here with the fields listed rather than inside the engine.
enum ModelInputField {
    static func find(store path: String, model: Model, labelField: String = "label") throws -> (name: String, sampleShape: [Int]) {
        let store = try Store(path: path)
        guard let input = model.inputs.first else { throw UsageError("the model declares no input") }
        let declared = input.shape.map { Array($0.dropFirst()) } ?? []
        let expected: Int? = declared.allSatisfy({ if case .fixed = $0 { true } else { false } })
            ? declared.reduce(1) { if case .fixed(let value) = $1 { $0 * value } else { $0 } } : nil
        if let field = store.fields.first(where: { $0.name != labelField && !$0.sampleShape.isEmpty }),
           expected.map({ field.sampleShape.reduce(1, *) == $0 }) ?? true {
            return (field.name, field.sampleShape)
        }
        let shape = declared.map(\.description).joined(separator: ", ")
        let listed = store.fields.map { "\($0.name) \($0.sampleShape)" }.joined(separator: ", ")
        throw UsageError("\(path): no field holds the model's input '\(input.name)' of [\(shape)] per sample (fields: \(listed))")
    }
}

extension Quantize {
    var calibrationMethod: CalibrationMethod {
        switch method {
        case .minmax: .minMax
        case .percentile: .percentile(percentile)
        case .mse: .mse
        }
    }

    /// Calibrates on `--calibrate`, applies `--keep-fp32` and, with `--max-accuracy-drop`, the
    /// mixed-precision policy; records the calibration and the per-layer table in `result`.
    func quantizeStatic(_ original: Model, result: inout [String: Any]) throws -> Model {
        var source = original
        let table: CalibrationTable
        let rangesStore: String
        if let qat {
            // Fine-tuned under fake quantization; the FP32 weights it ends with and the ranges it learned
            // are what the INT8 model is made of. Zero weights (a pruned model's) stay zero.
            var training = TrainingOptions()
            training.quantizationAware = true
            training.learningRate = lr
            training.holdZeroWeights = true
            training.seed = seed
            training.schedule = .cosine(epochs: epochs)
            let trainer = try fineTune(try loadSequentialModel(model), store: qat, options: training, epochs: epochs, seed: seed) {
                "quantization-aware training \($0 + 1)/\(epochs)"
            }
            source = try trainer.model().model()
            table = trainer.calibrationTable()
            rangesStore = qat
            result["qat"] = ["store": qat, "epochs": epochs, "lr": Double(lr), "seed": seed]
        } else {
            guard let calibrate else { throw UsageError("--mode static needs --calibrate STORE") }
            table = try CalibrationRun.run(model: source, storePath: calibrate, samples: calibrationSamples, method: calibrationMethod,
                                           context: processContext)
            rangesStore = calibrate
            result["calibration"] = ["store": calibrate, "samples": calibrationSamples, "method": method.rawValue,
                                     "percentile": method == .percentile ? percentile : NSNull(), "per_channel": !perTensor]
        }
        var options = StaticQuantizationOptions()
        options.perChannel = !perTensor
        options.weightRange = weightRange
        let quantizable = source.quantizableNodes
        if let keepFP32 {
            let names = keepFP32.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if let unknown = names.first(where: { !quantizable.contains($0) }) {
                throw UsageError("unknown --keep-fp32 node '\(unknown)'; the quantizable nodes are: \(quantizable.joined(separator: ", "))")
            }
            options.keepFP32 = Set(names)
        }
        let engineThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard let maxAccuracyDrop else {
            let quantized = try source.quantizedStatic(calibration: table, options: options)
            let macs = (try? source.macsPerSample()) ?? [:]
            result["layers"] = quantizable.map { node -> [String: Any] in
                ["node": node, "op": source.graph.nodes.first { $0.name == node }?.opType ?? "?", "macs": macs[node] ?? 0,
                 "error": NSNull(), "accuracy": NSNull(), "precision": options.keepFP32.contains(node) ? "fp32" : "int8"]
            }
            return quantized
        }
        // The error is measured on calibration samples; accuracy on --eval, else on the calibration
        // store when it is labeled.
        let batches = try StoreBatches.load(store: rangesStore, model: source, maxSamples: calibrationSamples)
        let labeledStore = eval ?? rangesStore
        let labeled = labeledStore == rangesStore ? batches : try StoreBatches.load(store: labeledStore, model: source, maxSamples: StoreBatches.evaluationLimit)
        guard labeled.contains(where: { $0.labels != nil }) else {
            throw UsageError("--max-accuracy-drop needs labels: \(labeledStore) has no label field (give a labeled --eval store)")
        }
        let plan = try MixedPrecision.plan(for: source, calibration: table, options: options, batches: batches, labeled: labeled,
                                           maxAccuracyDrop: maxAccuracyDrop / 100,
                                           context: processContext.with(threads: engineThreads))
        result["layers"] = plan.layers.map { layer -> [String: Any] in
            ["node": layer.node, "op": layer.op, "macs": layer.macs, "error": layer.outputError, "accuracy": layer.accuracy ?? NSNull(),
             "precision": layer.keptFP32 ? "fp32" : "int8"]
        }
        result["mixed_precision"] = ["max_accuracy_drop_pp": maxAccuracyDrop, "fp32_accuracy": plan.fp32Accuracy as Any? ?? NSNull(),
                                     "accuracy": plan.accuracy as Any? ?? NSNull(), "samples": labeled.reduce(0) { $0 + ($1.labels?.count ?? 0) },
                                     "kept_fp32": plan.keepFP32.sorted()]
        return plan.model
    }
}

/// Stores read into memory as engine batches (for the per-layer sensitivity runs, which go over
/// the same samples once per layer).
enum StoreBatches {
    /// At most this many samples of an evaluation store are held in memory (10 000 Fashion-MNIST
    /// images are 31 MB as f32).
    static let evaluationLimit = 10_000

    /// Up to `maxSamples` samples of `store` in order, normalized as the store records, as batches of
    /// `batchSize` with their labels when the store has a `label` field (of any integer type). A model
    /// with a fixed batch size gets batches of exactly that size: a short last batch is dropped, or
    /// when it is the only one, filled up by repeating its samples (and labels).
    static func load(store path: String, model: Model, maxSamples: Int, batchSize: Int = 256) throws -> [EvaluationBatch] {
        let fixedBatch = model.fixedBatchSize
        let batchSize = fixedBatch ?? batchSize
        let (field, sampleShape) = try ModelInputField.find(store: path, model: model)
        let store = try Store(path: path)
        let hasLabels = store.fields.contains { $0.name == "label" && $0.sampleShape.isEmpty }
        var options = LoaderOptions()
        options.fields = [field] + (hasLabels ? ["label"] : [])
        options.batchSize = batchSize
        options.order = .sequential
        options.workers = 1
        options.outputTypes[field] = .f32
        let loader = try Loader(store: store, options: options)
        let epoch = try loader.epoch(0)
        let inputName = model.inputs[0].name
        var batches: [EvaluationBatch] = []
        var done = 0
        while done < maxSamples, let batch = try epoch.next() {
            let count = min(batch.count, maxSamples - done)
            let values = try batch.values(field, as: Float.self)
            let width = sampleShape.reduce(1, *)
            var labels = hasLabels ? Array(try StreamingInference.integerLabels(batch, field: "label").prefix(count)) : nil
            var floats = Array(values.prefix(count * width)), rows = count
            if let fixedBatch, count < fixedBatch {
                if !batches.isEmpty { break }
                floats = (0..<fixedBatch).flatMap { row in floats[(row % count) * width..<(row % count + 1) * width] }
                labels = labels.map { values in (0..<fixedBatch).map { values[$0 % count] } }
                rows = fixedBatch
            }
            batches.append(EvaluationBatch(inputs: [inputName: Tensor(shape: [rows] + sampleShape, floats: floats)], labels: labels))
            done += count
        }
        return batches
    }
}

/// The per-layer table of `stoke quantize` (static mode).
enum MixedPrecisionReport {
    static func printLayers(_ layers: [[String: Any]]) {
        let rows = layers.map { layer -> [String] in
            [layer["node"] as? String ?? "", layer["op"] as? String ?? "", (layer["macs"] as? Int ?? 0).formatted(),
             (layer["error"] as? Double).map { String(format: "%.2e", $0) } ?? "-",
             (layer["accuracy"] as? Double).map { String(format: "%.2f%%", $0 * 100) } ?? "-",
             (layer["precision"] as? String ?? "").uppercased()]
        }
        printTable(["node", "op", "MACs/sample", "output error (alone)", "accuracy (alone)", "precision"], rows)
    }
}

extension WeightRange: ExpressibleByArgument {}
