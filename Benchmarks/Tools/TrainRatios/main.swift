// Issue 8's loader goal, measured in one run: training fed by the Loader from a packed Fashion-MNIST
// store runs as fast as the same steps on batches preloaded into memory (ratio ≈ 1), and the loader's
// share of the step time (data wait) is near zero. For the MLP 784-512-256-10 and a small CNN.
// Usage: train-ratios [--store PATH] [--samples N] [--cnn-samples N] [--batch N] [--rounds N] [--workers N] [--threads N]

import Foundation
import StokeEngine
import StokeLoader
import StokePack
import StokeStore

var storePath: String?, samples = 60_000, cnnSamples = 10_000, batch = 128, rounds = 2, workers = 1, threads = 1
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--store": storePath = arguments.next()
    case "--samples": samples = Int(arguments.next() ?? "") ?? samples
    case "--cnn-samples": cnnSamples = Int(arguments.next() ?? "") ?? cnnSamples
    case "--batch": batch = Int(arguments.next() ?? "") ?? batch
    case "--rounds": rounds = Int(arguments.next() ?? "") ?? rounds
    case "--workers": workers = Int(arguments.next() ?? "") ?? workers
    case "--threads": threads = Int(arguments.next() ?? "") ?? threads
    default:
        FileHandle.standardError.write(Data("train-ratios: unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = start.duration(to: .now)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
}

// The training split of Debian's Fashion-MNIST packed with Stoke (u8 1×28×28 + labels, LZ4, the usual
// normalization recorded for the loader), unless --store names one.
let directory = NSTemporaryDirectory() + "stoke-train-ratios-\(getpid())"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
let path: String
if let storePath {
    path = storePath
} else {
    let source = "/usr/share/datasets/fashion-mnist"
    guard FileManager.default.fileExists(atPath: source + "/train-images-idx3-ubyte.gz") else {
        FileHandle.standardError.write(Data("train-ratios: \(source) is missing (apt install dataset-fashion-mnist) and no --store was given\n".utf8))
        exit(1)
    }
    path = directory + "/train.h5"
    let images = try IDXArray(path: source + "/train-images-idx3-ubyte.gz")
    let labelFile = try IDXArray(path: source + "/train-labels-idx1-ubyte.gz")
    let labels = try labelFile.int64Values()
    _ = try ArrayPacker.pack(
        fields: [PackField(name: "image", source: images, sampleShape: [1] + images.sampleShape),
                 PackField(name: "label", source: MemoryArray(path: labelFile.path, dtype: .i64, shape: [labels.count], values: labels))],
        to: path, options: StoreWriteOptions(),
        metadata: [("normalization", #"{"field": "image", "mean": [0.2860], "std": [0.3530], "scale": 0.00392156862745098}"#)])
}
let store = try Store(path: path)
guard let field = store.fields.first(where: { $0.name != "label" && !$0.sampleShape.isEmpty }) else {
    FileHandle.standardError.write(Data("train-ratios: \(path) has no sample field\n".utf8))
    exit(1)
}
let context = ExecutionContext.default.with(threads: threads)

@MainActor func loaderOptions() -> LoaderOptions {
    var options = LoaderOptions()
    options.fields = [field.name, "label"]
    options.batchSize = batch
    options.order = .chunkShuffle(window: 4)
    options.seed = 7
    options.workers = workers
    options.outputTypes[field.name] = .f32
    return options
}

/// One measured pass over the first `samples` training samples of an epoch: from preloaded batches, or streamed from the store.
@MainActor func measure(_ spec: String, samples: Int, streaming: Bool) throws -> (samplesPerSecond: Double, dataWait: Double) {
    let layers = try ArchitectureSpec.layers(spec, sampleShape: field.sampleShape)
    let trainer = try Trainer(model: try SequentialModel(layers: layers, sampleShape: field.sampleShape, seed: 1), context: context)
    let loader = try Loader(store: store, options: loaderOptions())
    var seen = 0
    if streaming {
        let start = ContinuousClock.now
        let epoch = try loader.epoch(0)
        while seen < samples, let next = try epoch.next() {
            let count = next.count
            let labels = try next.values("label", as: Int64.self)
            _ = unsafe try next.withField(field.name) { bytes, _ in
                unsafe try labels.withUnsafeBufferPointer { unsafe try trainer.step(input: bytes.assumingMemoryBound(to: Float.self), labels: $0, count: count) }
            }
            seen += count
        }
        let elapsed = seconds(since: start)
        return (Double(seen) / elapsed, epoch.stats.waitSeconds / elapsed)
    }
    var batches: [([Float], [Int64])] = []
    let epoch = try loader.epoch(0)
    while batches.count * batch < samples, let next = try epoch.next() { batches.append((try next.values(field.name, as: Float.self), try next.values("label", as: Int64.self))) }
    let start = ContinuousClock.now
    for (images, labels) in batches {
        _ = try images.withUnsafeBufferPointer { input in
            try labels.withUnsafeBufferPointer { try trainer.step(input: input, labels: $0, count: labels.count) }
        }
        seen += labels.count
    }
    return (Double(seen) / seconds(since: start), 0)
}

var load = [Double](repeating: 0, count: 3)
print("train-ratios: \(path), batch \(batch), \(workers) loader worker(s) + \(threads) trainer thread(s), \(ProcessInfo.processInfo.activeProcessorCount) cores, GEMM \(context.gemm.rawValue)")
for (name, spec, count) in [("MLP", "mlp:784-512-256-10", samples), ("CNN", "cnn:c16k3p1-relu-mp2-c32k3p1-relu-mp2-fc128-relu-fc10", cnnSamples)] where count > 0 {
    var bestPreloaded = 0.0, bestStreaming = 0.0, waitAtBest = 0.0
    for _ in 0..<rounds {
        bestPreloaded = max(bestPreloaded, try measure(spec, samples: count, streaming: false).samplesPerSecond)
        let streamed = try measure(spec, samples: count, streaming: true)
        if streamed.samplesPerSecond > bestStreaming { (bestStreaming, waitAtBest) = streamed }
    }
    getloadavg(&load, 3)
    print(String(format: "%@ %@, %d samples: preloaded %.0f samples/s, loader-fed %.0f samples/s, ratio %.2f, data wait %.2f%% of the step time (best of %d; load %.2f %.2f %.2f)",
                 name, spec, min(count, store.sampleCount), bestPreloaded, bestStreaming, bestStreaming / bestPreloaded, waitAtBest * 100, rounds,
                 load[0], load[1], load[2]))
}
