import Foundation
import StokeEngine
import StokeLoader
import StokeStore

/// Static-quantization calibration fed by the loader: the first `samples` samples of a store,
/// in store order, normalized the way `stoke infer` feeds the model (the store's recorded
/// normalization, as f32), observed batch by batch.
public enum CalibrationRun {
    /// - Parameters:
    ///   - storePath: a store whose first non-label field is the model's input.
    ///   - samples: how many samples to observe (fewer if the store is smaller).
    ///   - batchSize: samples per batch fed to the FP32 model (a model with a fixed batch size is fed
    ///     at it instead; a short last batch then repeats its own samples, which leaves the observed
    ///     ranges unchanged).
    ///   - context: how the FP32 model runs; its thread count is replaced by the engine's share of the cores.
    /// - Returns: the calibration table of `method` over the observed samples.
    public static func run(model: Model, storePath: String, samples: Int, method: CalibrationMethod,
                           batchSize: Int = 256, context: ExecutionContext = .default) throws -> CalibrationTable {
        guard samples > 0, batchSize > 0 else {
            throw StoreError.invalidArgument("calibration needs a positive sample count and batch size (got \(samples), \(batchSize))")
        }
        let store = try Store(path: storePath)
        let labelField = StreamingInference.Options().labelField
        guard let field = store.fields.first(where: { $0.name != labelField && !$0.sampleShape.isEmpty }) else {
            throw StoreError.invalidArgument("\(storePath): no field to feed the model")
        }
        guard let input = model.inputs.first else { throw StoreError.invalidArgument("the model has no input") }
        let budget = StreamingInference.threadBudget(cores: ProcessInfo.processInfo.activeProcessorCount, loaderWorkers: nil, engineThreads: nil)
        let fixedBatch = model.fixedBatchSize
        var options = LoaderOptions()
        options.fields = [field.name]
        options.batchSize = fixedBatch ?? max(1, min(batchSize, samples))
        options.order = .sequential
        options.workers = budget.loader
        options.outputTypes[field.name] = .f32
        let loader = try Loader(store: store, options: options)
        let calibrator = try Calibrator(model: model, method: method, context: context.with(threads: budget.engine))
        let total = min(samples, store.sampleCount)
        let epoch = try loader.epoch(0)
        var observed = 0
        while observed < total, let batch = try epoch.next() {
            let count = min(batch.count, total - observed)
            let values = try batch.values(field.name, as: Float.self)
            let perSample = field.sampleShape.reduce(1, *)
            var rows = count, fed = Array(values[..<(count * perSample)])
            if let fixedBatch, count < fixedBatch {
                fed = (0..<fixedBatch).flatMap { row in values[(row % count) * perSample..<(row % count + 1) * perSample] }
                rows = fixedBatch
            }
            try calibrator.observe([input.name: Tensor(shape: [rows] + field.sampleShape, floats: fed)])
            observed += count
        }
        return try calibrator.table()
    }
}
