// The ratios issue 4 sets goals for, measured in one run on a generated store of image-like u8 samples
// (≥ 1 GB by default), page cache warm:
//   loader (chunk-shuffle, batch 256) ÷ decode ceiling (all chunks decoded on all cores, no batching) ≥ 0.9
//   loader ÷ h5py sequential slices of the same store ≥ 2
// Usage: loader-ratios [--mib N] [--workers N] [--batch N] [--epochs N] [--keep]

import Foundation
import LoaderBenchSupport
import StokeBench
import StokeLoader
import StokeStore
import StoreBenchSupport

var mebibytes = 1100, workers = ProcessInfo.processInfo.activeProcessorCount, batch = 256, epochs = 2, keep = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--mib": mebibytes = Int(arguments.next() ?? "") ?? mebibytes
    case "--workers": workers = Int(arguments.next() ?? "") ?? workers
    case "--batch": batch = Int(arguments.next() ?? "") ?? batch
    case "--epochs": epochs = Int(arguments.next() ?? "") ?? epochs
    case "--keep": keep = true
    default:
        FileHandle.standardError.write(Data("loader-ratios: unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

let scratch = try ScratchDirectory()
defer { if !keep { scratch.remove() } }
let path = scratch.file("loader.h5")
let start = now()
let samples = try makeImageStore(path: path, mebibytes: mebibytes, workers: workers)
let fileBytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
print(String(format: "store: %d samples of 3x96x96 u8 = %.2f GB raw, %.2f GB stored (written in %.1f s)",
             samples, Double(samples * BenchData.sampleBytes) / 1e9, Double(fileBytes) / 1e9, now() - start))
_ = try Ceilings.storage(path: path, samples: samples)  // page cache warm

let store = try Store(path: path)
var options = LoaderOptions()
options.batchSize = batch
options.workers = workers
options.order = .chunkShuffle(window: 4)
let loader = try Loader(store: store, options: options)
_ = try runEpoch(loader, number: 0)  // warm-up: maps and buffers faulted in

var bestCeiling = 0.0, bestLoader = 0.0
var lastStats = LoaderStats()
for epoch in 1...epochs {
    let ceiling = try Ceilings.decode(store: store, fields: [BenchData.fieldName], workers: workers)
    let run = try runEpoch(loader, number: epoch)
    let loaderRate = Double(run.samples * BenchData.sampleBytes) / run.seconds
    bestCeiling = max(bestCeiling, ceiling.bytesPerSecond)
    bestLoader = max(bestLoader, loaderRate)
    lastStats = run.stats
    print(String(format: "epoch %d: decode ceiling %.0f MB/s, loader %.0f MB/s (%.0f samples/s), ratio %.2f",
                 epoch, ceiling.bytesPerSecond / 1e6, loaderRate / 1e6, Double(run.samples) / run.seconds, loaderRate / ceiling.bytesPerSecond))
}
print(String(format: "loader stages (worker-seconds): decode %.3f, gather %.3f, read %.3f; consumer wait %.3f s; chunk decodes %d, re-decodes %d",
             lastStats.decodeSeconds, lastStats.gatherSeconds, lastStats.readSeconds, lastStats.waitSeconds, lastStats.chunkDecodes, lastStats.redecodes))
let h5py = try h5pySequentialRead(path: path, batch: batch)
let h5pyRate = Double(h5py.bytes) / h5py.seconds
print(String(format: "h5py + hdf5plugin sequential slices of %d: %.0f MB/s", batch, h5pyRate / 1e6))
print(String(format: "loader ratio vs decode ceiling: %.2f (best %.0f / %.0f MB/s) — goal ≥ 0.9", bestLoader / bestCeiling, bestLoader / 1e6, bestCeiling / 1e6))
print(String(format: "loader ratio vs h5py sequential: %.2f× — goal ≥ 2×", bestLoader / h5pyRate))
print(String(format: "pinned buffers: %@", loader.pinning.pinned ? "yes (\(loader.pinning.lockedBytes) bytes locked)" : "no: \(loader.pinning.reason)"))
var load = [Double](repeating: 0, count: 3)
getloadavg(&load, 3)
print(String(format: "load average %.2f %.2f %.2f", load[0], load[1], load[2]))
