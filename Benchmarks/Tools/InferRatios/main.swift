// Issue 9's goal, measured in one run: streaming inference (`stoke infer`: the loader feeding the
// engine from a store) reaches ≥ 0.8× the engine alone on preloaded batches, with data wait below 5%,
// for the Fashion-MNIST MLP (784-512-256-10) in dynamic INT8.
// Usage: infer-ratios [--samples N] [--batch N] [--rounds N] [--fp32]

import Foundation
import StokeBench
import StokeEngine
import StokeLoader
import StokeStore

var samples = 60_000, batch = 256, rounds = 3, int8 = true
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--samples": samples = Int(arguments.next() ?? "") ?? samples
    case "--batch": batch = Int(arguments.next() ?? "") ?? batch
    case "--rounds": rounds = Int(arguments.next() ?? "") ?? rounds
    case "--fp32": int8 = false
    default:
        FileHandle.standardError.write(Data("infer-ratios: unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = start.duration(to: .now)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
}

// A Fashion-MNIST-shaped store (u8 1x28x28 + labels, LZ4, normalization recorded), generated.
let directory = NSTemporaryDirectory() + "stoke-infer-ratios-\(getpid())"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
let path = directory + "/test.h5"
var generator = SplitMix64(seed: 1)
let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "image", dtype: .u8, sampleShape: [1, 28, 28]),
                                                  FieldSpec(name: "label", dtype: .i64, sampleShape: [])])
try writer.setMetadata("normalization", json: #"{"field": "image", "mean": [0.2860], "std": [0.3530]}"#)
for start in stride(from: 0, to: samples, by: 1000) {
    let count = min(1000, samples - start)
    try writer.append("image", values: (0..<(count * 784)).map { index in UInt8(truncatingIfNeeded: (index % 28) * 9 + Int(generator.next() & 15)) })
    try writer.append("label", values: (0..<count).map { _ in Int64(generator.next() % 10) })
}
try writer.finish()

let native = try SequentialModel(
    layers: [.flatten, .linear(inFeatures: 784, outFeatures: 512), .relu, .linear(inFeatures: 512, outFeatures: 256), .relu,
             .linear(inFeatures: 256, outFeatures: 10)], sampleShape: [1, 28, 28], seed: 3)
let model = int8 ? try native.model().quantizedDynamic() : try native.model()
let inputName = model.inputs[0].name, outputName = model.outputs[0].name
let budget = StreamingInference.threadBudget(cores: ProcessInfo.processInfo.activeProcessorCount, loaderWorkers: nil, engineThreads: nil)

// The engine alone: every batch decoded and normalized into memory first, then only inference is timed,
// with the same engine thread count streaming gets.
var preloaded: [[Float]] = []
do {
    var options = LoaderOptions()
    options.fields = ["image"]
    options.order = .sequential
    options.batchSize = batch
    options.outputTypes["image"] = .f32
    let loader = try Loader(store: Store(path: path), options: options)
    let epoch = try loader.epoch(0)
    while let next = try epoch.next() { preloaded.append(try next.values("image", as: Float.self)) }
}
let session = Session(model: model, threads: budget.engine)
var bestAlone = 0.0
for _ in 0..<rounds {
    let start = ContinuousClock.now
    for values in preloaded {
        let count = values.count / 784
        _ = try session.run(["\(inputName)": Tensor(shape: [count, 1, 28, 28], floats: values)]) { outputs in try outputs.withFloats(outputName) { $0.count } }
    }
    bestAlone = max(bestAlone, Double(samples) / seconds(since: start))
}

// Streaming: the store through the loader into the engine, as `stoke infer` runs it.
var bestStreaming = 0.0, waitAtBest = 0.0
for _ in 0..<rounds {
    var options = StreamingInference.Options()
    options.batchSize = batch
    let result = try StreamingInference.run(model: model, storePath: path, options: options)
    if result.samplesPerSecond > bestStreaming {
        bestStreaming = result.samplesPerSecond
        waitAtBest = result.dataWaitFraction
    }
}
var load = [Double](repeating: 0, count: 3)
getloadavg(&load, 3)
print("MLP 784-512-256-10 \(int8 ? "dynamic INT8" : "FP32"), batch \(batch), \(samples) samples, threads: \(budget.loader) loader + \(budget.engine) engine")
print(String(format: "engine alone on preloaded batches: %.0f samples/s (best of %d)", bestAlone, rounds))
print(String(format: "streaming from the store:          %.0f samples/s, data wait %.1f%%", bestStreaming, waitAtBest * 100))
print(String(format: "streaming ratio: %.2f (goal ≥ 0.8), data wait %.1f%% (goal < 5%%); load average %.2f %.2f %.2f",
             bestStreaming / bestAlone, waitAtBest * 100, load[0], load[1], load[2]))
