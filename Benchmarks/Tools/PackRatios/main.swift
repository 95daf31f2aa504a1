// Issue 3's image-pack goal, measured in one run: `stoke pack --from images` (the StokePack API it calls)
// with 1 and 2 workers against a single-process Python script doing the same decode + resize + crop +
// HDF5 write with Pillow, numpy, h5py and hdf5plugin, on a generated folder of JPEGs (page cache warm).
//   Stoke ÷ Python samples/s ≥ 3, and the 1 → 2 worker scaling.
// Usage: pack-ratios [--images N] [--size WxH] [--resize S] [--crop C] [--runs N] [--workers 1,2] [--folder DIR] [--keep]

import Foundation
import PackBenchSupport

var images = 3000, width = 500, height = 375, runs = 3, workerCounts = [1, 2], keep = false, folder: String?
var setup = PackBench.Setup()
var arguments = CommandLine.arguments.dropFirst().makeIterator()
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("pack-ratios: \(message)\n".utf8))
    exit(2)
}
while let argument = arguments.next() {
    switch argument {
    case "--images": images = Int(arguments.next() ?? "") ?? images
    case "--size":
        let parts = (arguments.next() ?? "").split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2 else { fail("--size takes WxH, e.g. 500x375") }
        (width, height) = (parts[0], parts[1])
    case "--resize": setup.resize = Int(arguments.next() ?? "") ?? setup.resize
    case "--crop": setup.crop = Int(arguments.next() ?? "") ?? setup.crop
    case "--runs": runs = max(1, Int(arguments.next() ?? "") ?? runs)
    case "--workers": workerCounts = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
    case "--folder": folder = arguments.next()
    case "--keep": keep = true
    default: fail("unknown argument \(argument)")
    }
}
guard !workerCounts.isEmpty else { fail("--workers takes a list such as 1,2") }

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let scratchPath = (ProcessInfo.processInfo.environment["STOKE_BENCH_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? NSTemporaryDirectory())
    + "/stoke-pack-bench-\(getpid())"
try FileManager.default.createDirectory(atPath: scratchPath, withIntermediateDirectories: true)
defer { if !keep { try? FileManager.default.removeItem(atPath: scratchPath) } }

let root: String
if let folder {
    root = folder
    print("images: \(root) (given)")
} else {
    root = scratchPath + "/images"
    let start = Date()
    let bytes = try PackBench.generate(root: root, count: images, width: width, height: height, classes: 10, scratch: scratchPath)
    print(String(format: "images: %d JPEGs %dx%d (quality 90, 4:2:0), %.1f MB, 10 classes, written by Pillow in %.1f s",
                 images, width, height, Double(bytes) / 1e6, Date().timeIntervalSince(start)))
}
print("recipe: shorter side to \(setup.resize) (bilinear, antialiased), center crop \(setup.crop)x\(setup.crop), u8 CHW; "
      + "LZ4 + Fletcher-32, \(setup.chunkSamples) samples per chunk")
print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage()) before the runs")

var pythonRates: [Double] = [], pythonCPU: [Double] = []
var stokeRates: [Int: [Double]] = [:], stokeCPU: [Int: [Double]] = [:], hashShare: [Int: [Double]] = [:]
var maxDifference: Int?
// Rounds alternate the sides, so slow phases of the shared machine hit every side alike.
for round in 1...runs {
    var line = "run \(round):"
    for workers in workerCounts {
        let run = try PackBench.stokePack(root: root, to: scratchPath + "/stoke-\(workers).h5", setup: setup, workers: workers)
        let rate = Double(run.samples) / run.seconds
        stokeRates[workers, default: []].append(rate)
        stokeCPU[workers, default: []].append(run.cpuSeconds / Double(run.samples))
        hashShare[workers, default: []].append(run.hashSeconds / run.seconds)
        line += String(format: " stoke %dw %.0f samples/s (%.2f s, CPU %.2f ms/sample);", workers, rate, run.seconds, 1000 * run.cpuSeconds / Double(run.samples))
    }
    // The first round also checks that Python and Stoke stored the same values (±1 level: both resize
    // with Pillow's coefficients, Stoke in Float, Pillow in fixed point).
    let compare = round == 1 ? scratchPath + "/stoke-\(workerCounts.last!).h5" : nil
    let python = try PackBench.python(root: root, to: scratchPath + "/python.h5", setup: setup, compareWith: compare, scratch: scratchPath)
    if let difference = python.maxDifference { maxDifference = difference }
    pythonRates.append(Double(python.samples) / python.seconds)
    pythonCPU.append(python.cpuSeconds / Double(python.samples))
    line += String(format: " python %.0f samples/s (%.2f s, CPU %.2f ms/sample); load %@", pythonRates.last!, python.seconds, 1000 * python.cpuSeconds / Double(python.samples), loadAverage())
    print(line)
}

let bestPython = pythonRates.max()!
print(String(format: "python (Pillow + numpy + h5py + hdf5plugin, 1 process): best %.0f samples/s, median %.0f, CPU %.2f ms/sample",
             bestPython, median(pythonRates), 1000 * median(pythonCPU)))
for workers in workerCounts {
    let rates = stokeRates[workers]!
    print(String(format: "stoke %d worker%@: best %.0f samples/s, median %.0f, CPU %.2f ms/sample (listing + hashing %.0f%% of the time); "
                 + "ratio vs python %.2f× best/best, %.2f× median/median (goal ≥ 3×)",
                 workers, workers == 1 ? "" : "s", rates.max()!, median(rates), 1000 * median(stokeCPU[workers]!), 100 * median(hashShare[workers]!),
                 rates.max()! / bestPython, median(rates) / median(pythonRates)))
}
if workerCounts.count > 1 {
    let first = workerCounts.first!, last = workerCounts.last!
    print(String(format: "scaling %d → %d workers: %.2f× best/best, %.2f× median/median",
                 first, last, stokeRates[last]!.max()! / stokeRates[first]!.max()!, median(stokeRates[last]!) / median(stokeRates[first]!)))
}
print("CPU bound: Python CPU / Stoke CPU per sample = \(String(format: "%.2f", median(pythonCPU) / median(stokeCPU[workerCounts.last!]!)))× "
      + "(on idle cores the \(workerCounts.last!)-worker ratio approaches min(cores, workers) × this)")
print("stored values: max |stoke − python| = \(maxDifference.map(String.init) ?? "not compared") level(s); load average now \(loadAverage())")
