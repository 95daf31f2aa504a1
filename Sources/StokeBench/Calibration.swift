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
    ///   - batchSize: samples per batch fed to the FP32 model.
    /// - Returns: the calibration table of `method` over the observed samples.
    public static func run(model: Model, storePath: String, samples: Int, method: CalibrationMethod,
                           batchSize: Int = 256) throws -> CalibrationTable {
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
        var options = LoaderOptions()
        options.fields = [field.name]
        options.batchSize = batchSize
        options.order = .sequential
        options.workers = budget.loader
        options.outputTypes[field.name] = .f32
        let loader = try Loader(store: store, options: options)
        let calibrator = try Calibrator(model: model, method: method)
        let total = min(samples, store.sampleCount)
        let epoch = try loader.epoch(0)
        while calibrator.samplesObserved < total, let batch = try epoch.next() {
            let count = min(batch.count, total - calibrator.samplesObserved)
            let values = try batch.values(field.name, as: Float.self)
            let perSample = field.sampleShape.reduce(1, *)
            try calibrator.observe([input.name: Tensor(shape: [count] + field.sampleShape, floats: Array(values[..<(count * perSample)]))])
        }
        return try calibrator.table()
    }
}
