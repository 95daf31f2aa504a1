import Foundation
import StokeEngine
import StokeLoader
import StokeStore

/// A Stoke model file, or an ONNX graph imported layer by layer (BatchNorm kept as a layer), as the
/// native model that training, pruning and quantization-aware training start from.
func loadSequentialModel(_ path: String) throws -> SequentialModel {
    guard FileManager.default.fileExists(atPath: path) else { throw UsageError("\(path): no such model file") }
    if isHDF5(path) { return try SequentialModel.load(path: path) }
    do {
        return try SequentialModel(importing: Model.load(onnx: path, options: SequentialModel.importOptions))
    } catch {
        throw UsageError("\(path): \(error)")
    }
}

/// Trains `model` for `epochs` on a labeled store, fed by the loader (shuffled by `seed`, normalized
/// as the store records), optionally distilling from a teacher's logits on the same batches, and
/// returns the trainer (its model, and after quantization-aware training its learned ranges).
///
/// - Parameters:
///   - batchSize: samples per training step.
///   - label: the progress line's label for an epoch number (0-based).
func fineTune(_ model: SequentialModel, store path: String, options: TrainingOptions, epochs: Int, seed: UInt64, batchSize: Int = 128,
              teacher: (session: Session, input: String, output: String, temperature: Float, alpha: Float)? = nil,
              label: (Int) -> String) throws -> Trainer {
    // Every core: fine-tuning is the command's whole job (prune, quantize --qat, distill), as before the context.
    let trainer = try Trainer(model: model, options: options, context: processContext.with(threads: ProcessInfo.processInfo.activeProcessorCount))
    let store = try Store(path: path)
    let field = try trainingField(of: store, path: path)
    var loaderOptions = LoaderOptions()
    loaderOptions.fields = [field.name, "label"]
    loaderOptions.batchSize = batchSize
    loaderOptions.seed = seed
    loaderOptions.workers = 1
    loaderOptions.outputTypes[field.name] = .f32
    let loader = try Loader(store: store, options: loaderOptions)
    for epochNumber in 0..<epochs {
        trainer.startEpoch(epochNumber)
        let progress = ProgressLine(total: store.sampleCount, label: label(epochNumber))
        _ = try trainEpoch(trainer, epoch: try loader.epoch(epochNumber), field: field.name, progress: progress, teacher: teacher)
        progress.finish()
    }
    return trainer
}

/// Checks a `--eval` store before any training starts: a store (not a model file) with the training
/// field's name and sample shape and a `label` field, so a wrong store fails at once, not after the
/// first epoch.
func checkEvalStore(_ path: String, field: String, sampleShape: [Int]) throws {
    guard isStore(path) else { throw UsageError("--eval \(path) is not a store of samples") }
    let store = try Store(path: path)
    guard let evalField = store.fields.first(where: { $0.name == field }), evalField.sampleShape == sampleShape,
          store.fields.contains(where: { $0.name == "label" && $0.sampleShape.isEmpty }) else {
        let listed = store.fields.map { "\($0.name) \($0.sampleShape)" }.joined(separator: ", ")
        throw UsageError("--eval \(path): needs a field '\(field)' of \(sampleShape) and a 'label' field like the training store (fields: \(listed))")
    }
}

/// The sample field a labeled training store feeds (its first non-label field with a sample shape),
/// refusing a store without one or without a `label` field.
func trainingField(of store: Store, path: String) throws -> Field {
    guard let field = store.fields.first(where: { $0.name != "label" && !$0.sampleShape.isEmpty }),
          store.fields.contains(where: { $0.name == "label" }) else {
        throw UsageError("\(path): needs a sample field and a 'label' field")
    }
    return field
}
