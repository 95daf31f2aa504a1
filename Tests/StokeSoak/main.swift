import Foundation
import StokeLoader
import StokeStore

// stoke-soak: long-running reliability checks that a unit test cannot afford to repeat in-process.
//
//   stoke-soak [--epochs N] [--cycles N] [--samples N] [--rss-tolerance-mib M]
//
// 1. Epochs: N epochs (default 100) of the loader over a small LZ4 store, once in random order and once in
//    chunk-shuffle order, 2 workers each. Resident memory (VmRSS, /proc/self/status) is read after the
//    first epoch and after the last; the run fails if it grew by more than the tolerance (default 4 MiB).
// 2. Cycles: N open/close cycles (default 1000) of a store plus a loader session (2 worker threads, one
//    batch taken, the epoch abandoned), and N/10 store writes. Open file descriptors (/proc/self/fd) and
//    threads (/proc/self/task) are counted before and after; the run fails unless they are equal.
//
// Prints one line per measurement and "soak: ok" at the end; exits 1 on any failure. Linux only (/proc).

/// The scratch directory, removed on every exit path (`exit` skips `defer`).
nonisolated(unsafe) var scratchDirectory: String?

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("soak: FAILED: \(message)\n".utf8))
    if let directory = unsafe scratchDirectory { try? FileManager.default.removeItem(atPath: directory) }
    exit(1)
}

/// Resident set size in bytes, from the `VmRSS:` line of /proc/self/status (kB).
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { fail("cannot read VmRSS from /proc/self/status") }
    return kilobytes * 1024
}

func entries(_ directory: String) -> Int {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
        fail("cannot list \(directory)")
    }
    return names.count
}

/// Open descriptors and live threads of this process. A worker thread that has signalled its exit may
/// still be unwinding for a moment, so a count above `baseline` is re-read for up to 2 s before it stands.
func handles(settlingTo baseline: (fds: Int, threads: Int)? = nil) -> (fds: Int, threads: Int) {
    var now = (fds: entries("/proc/self/fd"), threads: entries("/proc/self/task"))
    if let baseline {
        var waited = 0
        while (now.fds > baseline.fds || now.threads > baseline.threads) && waited < 200 {
            usleep(10_000)
            waited += 1
            now = (entries("/proc/self/fd"), entries("/proc/self/task"))
        }
    }
    return now
}

func mebibytes(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

// MARK: - Arguments

var epochs = 100, cycles = 1000, samples = 4096, toleranceMiB = 4.0
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { fail("\(flag) needs a value") }
    switch flag {
    case "--epochs": epochs = Int(value) ?? -1
    case "--cycles": cycles = Int(value) ?? -1
    case "--samples": samples = Int(value) ?? -1
    case "--rss-tolerance-mib": toleranceMiB = Double(value) ?? -1
    default: fail("unknown option \(flag) (use --epochs, --cycles, --samples, --rss-tolerance-mib)")
    }
}
guard epochs >= 2, cycles >= 1, samples >= 64, toleranceMiB >= 0 else {
    fail("--epochs must be at least 2, --cycles at least 1, --samples at least 64, --rss-tolerance-mib at least 0")
}

// MARK: - Store

let directory = NSTemporaryDirectory() + "stoke-soak-" + UUID().uuidString
do {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
} catch { fail("cannot create \(directory): \(error)") }
unsafe scratchDirectory = directory

/// A store where sample `i` has `id == i` and `x` bytes `(i * 31 + j) & 0xFF` (3×8×8 u8), LZ4 chunks of 64 samples.
@MainActor func writeStore(_ path: String, samples: Int) throws(StoreError) {
    var options = StoreWriteOptions()
    options.codec = .lz4
    options.chunking = .samples(64)
    options.workers = 2
    options.overwrite = true
    let writer = try StoreWriter(path: path, fields: [
        FieldSpec(name: "x", dtype: .u8, sampleShape: [3, 8, 8]), FieldSpec(name: "id", dtype: .i64, sampleShape: []),
    ], options: options)
    try writer.append("x", values: (0..<samples).flatMap { sample in (0..<192).map { UInt8(truncatingIfNeeded: sample * 31 + $0) } })
    try writer.append("id", values: (0..<samples).map { Int64($0) })
    _ = try writer.finish()
}

let storePath = directory + "/soak.h5"
do { try writeStore(storePath, samples: samples) } catch { fail("writing \(storePath): \(error)") }

// MARK: - 1. Epochs: resident memory stays flat

@MainActor func soakEpochs(order: SampleOrder) {
    var options = LoaderOptions()
    options.order = order
    options.batchSize = 64
    options.workers = 2
    options.seed = 7
    options.registerWithCUDA = false
    let started = Date()
    var afterFirst = 0
    do {
        let loader = try Loader(store: Store(path: storePath), options: options)
        for number in 0..<epochs {
            let epoch = try loader.epoch(number)
            var seen = 0
            var idSum = 0
            while let batch = try epoch.next() {
                let ids = try batch.values("id", as: Int64.self)
                guard ids.map(Int.init) == batch.indices else { fail("\(order) epoch \(number): ids differ from indices") }
                seen += ids.count
                idSum += ids.reduce(0) { $0 + Int($1) }
            }
            guard seen == samples, idSum == samples * (samples - 1) / 2 else {
                fail("\(order) epoch \(number): \(seen) samples (id sum \(idSum)), expected each of \(samples) once")
            }
            if number == 0 { afterFirst = residentBytes() }
        }
        loader.shutdown()
    } catch { fail("\(order): \(error)") }
    let atEnd = residentBytes()
    let growth = Double(atEnd - afterFirst) / 1_048_576
    print("soak: \(epochs) epochs \(order), 2 workers, \(samples) samples: RSS after epoch 1 \(mebibytes(afterFirst)), after epoch \(epochs) \(mebibytes(atEnd)) (\(String(format: "%+.1f", growth)) MiB, tolerance \(toleranceMiB) MiB), \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    if growth > toleranceMiB { fail("\(order): resident memory grew \(String(format: "%.1f", growth)) MiB over \(epochs - 1) epochs") }
}

soakEpochs(order: .random)
soakEpochs(order: .chunkShuffle(window: 4))

// MARK: - 2. Cycles: no descriptor or thread leaks

/// One store opened, a loader session started (worker threads), one batch taken, everything released.
@MainActor func cycle(_ number: Int) throws(StoreError) {
    var options = LoaderOptions()
    options.order = number.isMultiple(of: 2) ? .random : .chunkShuffle(window: 2)
    options.batchSize = 32
    options.workers = 2
    options.seed = UInt64(number + 1)
    options.registerWithCUDA = false
    let store = try Store(path: storePath)
    let loader = try Loader(store: store, options: options)
    let epoch = try loader.epoch(number + 1)
    guard let batch = try epoch.next(), batch.indices.count == 32 else { fail("cycle \(number): no first batch") }
    if number.isMultiple(of: 3) { loader.shutdown() }  // else released by deinit, mid-epoch
}

let cycleStart = Date()
do { try cycle(-1) } catch { fail("warm-up cycle: \(error)") }  // lazily created process-wide state
let before = handles()
do {
    for number in 0..<cycles {
        try cycle(number)
        if number.isMultiple(of: 10) { try writeStore(directory + "/cycle.h5", samples: 128) }
    }
} catch { fail("cycles: \(error)") }
let after = handles(settlingTo: before)
print("soak: \(cycles) store+loader cycles and \(cycles / 10 + (cycles % 10 == 0 ? 0 : 1)) store writes: fds \(before.fds) -> \(after.fds), threads \(before.threads) -> \(after.threads), \(String(format: "%.1f", Date().timeIntervalSince(cycleStart))) s")
if after.fds != before.fds { fail("\(after.fds - before.fds) file descriptors leaked over \(cycles) cycles") }
if after.threads != before.threads { fail("\(after.threads - before.threads) threads leaked over \(cycles) cycles") }
try? FileManager.default.removeItem(atPath: directory)
print("soak: ok")
