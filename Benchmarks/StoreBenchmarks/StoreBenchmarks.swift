// StokeStore write and read-and-decode throughput, each next to its reference in the same run.
//
// One iteration = one pass over the benchmark's array, so throughput (#/s) × its size is bytes/s;
// every benchmark also records a custom `MB/s` metric (decimal MB of raw data per second).
// package-benchmark cannot show ratios; `swift run -c release --package-path Benchmarks store-ratios`
// prints them (see README.md).

import Benchmark
import Foundation
import StokeStore
import StoreBenchSupport

/// Size of each benchmark's array, MiB. Modest, so the suite runs in a few minutes on two cores;
/// `STOKE_BENCH_MIB` overrides it.
let mebibytes = ProcessInfo.processInfo.environment["STOKE_BENCH_MIB"].flatMap(Int.init) ?? 64
let workers = 2
let megabytesPerSecondMetric = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)

/// Generated once per benchmark process, on first use (setup hooks, never at registration).
final class Fixture: @unchecked Sendable {
    // Written once under `lock`, then only read.
    nonisolated(unsafe) static var shared: Fixture?
    static let lock = NSLock()

    let scratch: ScratchDirectory
    let setup: WriteSetup
    let data: [UInt8]
    let rawPath: String
    var h5py: H5pyWriter?
    var reader: RowReader?
    var ceiling: DecodeCeiling?

    static func get() throws -> Fixture {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        let fixture = try Fixture()
        shared = fixture
        return fixture
    }

    private init() throws {
        scratch = try ScratchDirectory()
        setup = WriteSetup(samples: BenchData.samples(mebibytes: mebibytes), workers: workers)
        data = BenchData.imageLike(samples: setup.samples)
        rawPath = scratch.file("data.u8")
        try Data(data).write(to: URL(fileURLWithPath: rawPath))
        // Benchmarks may run in any order in this process: clean up only when it exits.
        atexit { Fixture.shared?.tearDown() }
    }

    func h5pyWriter() throws -> H5pyWriter {
        if let h5py { return h5py }
        let writer = try H5pyWriter(rawPath: rawPath, setup: setup, outputPath: scratch.file("h5py.h5"))
        h5py = writer
        return writer
    }

    /// A Stoke store of the array, opened for reading, plus its chunks copied to memory for the ceiling.
    func readSide() throws -> (RowReader, DecodeCeiling) {
        if let reader, let ceiling { return (reader, ceiling) }
        let path = scratch.file("read.h5")
        try writeStokeStore(data, setup: setup, path: path)
        let reader = try RowReader(path: path)
        let ceiling = try DecodeCeiling(field: reader.field)
        try reader.readAll(workers: workers)  // faults the map and destination in
        self.reader = reader
        self.ceiling = ceiling
        return (reader, ceiling)
    }

    func tearDown() {
        h5py?.close()
        scratch.remove()
    }
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident, megabytesPerSecondMetric]
    let write = Benchmark.Configuration(
        metrics: metrics, timeUnits: .milliseconds, warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 8)
    let read = Benchmark.Configuration(
        metrics: metrics, timeUnits: .milliseconds, warmupIterations: 2, maxDuration: .seconds(5), maxIterations: 40)
    let size = "\(mebibytes) MiB"

    // MARK: Write throughput: Stoke vs h5py + hdf5plugin, same array, same chunks, same filters

    Benchmark("Write stoke StoreWriter lz4 \(workers) workers \(size)", configuration: write) { benchmark in
        let fixture = try Fixture.get()
        let path = fixture.scratch.file("write.h5")
        unlink(path)
        benchmark.startMeasurement()
        let start = now()
        try writeStokeStore(fixture.data, setup: fixture.setup, path: path)
        let seconds = now() - start
        benchmark.stopMeasurement()
        benchmark.measurement(megabytesPerSecondMetric, Int(megabytesPerSecond(bytes: fixture.setup.rawBytes, seconds: seconds)))
    } setup: {
        _ = try Fixture.get()
    }

    // The h5py child's time is its own; this process only waits on a pipe, so mallocCountTotal and
    // peakMemoryResident here describe the waiting Swift process, not h5py.
    Benchmark("Write h5py hdf5plugin lz4 \(size)", configuration: write) { benchmark in
        let fixture = try Fixture.get()
        let writer = try fixture.h5pyWriter()
        benchmark.startMeasurement()
        let timing = try writer.write()
        benchmark.stopMeasurement()
        benchmark.measurement(megabytesPerSecondMetric, Int(megabytesPerSecond(bytes: fixture.setup.rawBytes, seconds: timing.writeSeconds)))
    } setup: {
        _ = try Fixture.get().h5pyWriter()
    }

    // MARK: Read and decode: Field.readRows vs the in-memory decode ceiling, file in page cache

    Benchmark("Read stoke readRows \(workers) workers \(size)", configuration: read) { benchmark in
        let fixture = try Fixture.get()
        let (reader, _) = try fixture.readSide()
        benchmark.startMeasurement()
        let start = now()
        try reader.readAll(workers: workers)
        let seconds = now() - start
        benchmark.stopMeasurement()
        benchmark.measurement(megabytesPerSecondMetric, Int(megabytesPerSecond(bytes: reader.field.rawBytes, seconds: seconds)))
    } setup: {
        _ = try Fixture.get().readSide()
    }

    let cores = ProcessInfo.processInfo.activeProcessorCount
    Benchmark("Read decode ceiling \(cores) threads in memory \(size)", configuration: read) { benchmark in
        let fixture = try Fixture.get()
        let (reader, ceiling) = try fixture.readSide()
        benchmark.startMeasurement()
        let start = now()
        try ceiling.decodeAll(threads: cores)
        let seconds = now() - start
        benchmark.stopMeasurement()
        benchmark.measurement(megabytesPerSecondMetric, Int(megabytesPerSecond(bytes: reader.field.rawBytes, seconds: seconds)))
    } setup: {
        _ = try Fixture.get().readSide()
    }
}
