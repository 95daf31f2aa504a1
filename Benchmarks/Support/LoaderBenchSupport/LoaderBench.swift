import Foundation
import StokeLoader
import StokeStore
import StoreBenchSupport

/// Writes an LZ4 store of `BenchData`'s image-like samples, about `mebibytes` MiB raw, generated in
/// batches so memory stays small whatever the size.
public func makeImageStore(path: String, mebibytes: Int, workers: Int = 2) throws -> Int {
    let samples = BenchData.samples(mebibytes: mebibytes)
    var options = StoreWriteOptions()
    options.workers = workers
    options.overwrite = true
    let writer = try StoreWriter(
        path: path, fields: [FieldSpec(name: BenchData.fieldName, dtype: .u8, sampleShape: BenchData.sampleShape)], options: options)
    var written = 0
    var seed: UInt64 = 1
    while written < samples {
        let count = min(1024, samples - written)
        try writer.append(BenchData.fieldName, values: BenchData.imageLike(samples: count, seed: seed))
        written += count
        seed += 1
    }
    try writer.finish()
    return samples
}

/// Consumes batches one at a time across epochs (a new epoch starts when one ends), for measuring the
/// steady state batch by batch.
public final class BatchFeed: @unchecked Sendable {
    // Used from one benchmark thread at a time.
    public let loader: Loader
    private var epoch: Epoch?
    private var running = false
    private var epochNumber = 0

    public init(loader: Loader) { self.loader = loader }

    /// Takes the next batch and returns its sample count.
    public func next() throws -> Int {
        while true {
            if !running {
                epoch = try loader.epoch(epochNumber)
                epochNumber += 1
                running = true
            }
            if let count = try epoch?.next()?.count { return count }
            running = false
        }
    }
}

/// Runs one whole epoch and returns (samples, seconds).
public func runEpoch(_ loader: Loader, number: Int) throws -> (samples: Int, seconds: Double, stats: LoaderStats) {
    let start = now()
    let epoch = try loader.epoch(number)
    var samples = 0
    while let batch = try epoch.next() { samples += batch.count }
    return (samples, now() - start, epoch.stats)
}

/// h5py reading a store in sequential slices of `batch` samples, as a PyTorch-over-h5py loop does at
/// best (no shuffling): a Python child from the project venv times its own loop.
public func h5pySequentialRead(path: String, batch: Int) throws -> (seconds: Double, bytes: Int) {
    let process = Process()
    var python = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { python.deleteLastPathComponent() }
    let executable = ProcessInfo.processInfo.environment["STOKE_BENCH_PYTHON"] ?? python.path + "/.venv/bin/python3"
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = ["-c", """
        import sys, time, h5py, hdf5plugin
        f = h5py.File(sys.argv[1], 'r'); d = f['\(BenchData.fieldName)']; n = d.shape[0]; b = int(sys.argv[2])
        d[0:b]
        t = time.perf_counter(); total = 0
        for i in range(0, n, b):
            total += d[i:i + b].nbytes
        print(time.perf_counter() - t, total)
        """, path, String(batch)]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let parts = String(decoding: data, as: UTF8.self).split(separator: " ")
    guard process.terminationStatus == 0, parts.count == 2, let seconds = Double(parts[0]),
          let bytes = Int(parts[1].trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BenchError("h5py sequential read failed (status \(process.terminationStatus)) with \(executable)")
    }
    return (seconds, bytes)
}
