// The loader's throughput next to the decode ceiling, and its allocations per batch in the steady
// state (mallocCountTotal per iteration, one iteration = one batch; the goal is 0).
// `swift run -c release --package-path Benchmarks loader-ratios` prints the ratios on a ≥ 1 GB store.

import Benchmark
import Foundation
import LoaderBenchSupport
import StokeLoader
import StokeStore
import StoreBenchSupport

let mebibytes = ProcessInfo.processInfo.environment["STOKE_BENCH_MIB"].flatMap(Int.init) ?? 128
let workers = 2

final class LoaderFixture: @unchecked Sendable {
    // Created once under `lock`, then only read.
    nonisolated(unsafe) static var shared: LoaderFixture?
    static let lock = NSLock()
    let scratch: ScratchDirectory
    let loader: Loader
    let feed: BatchFeed

    static func get() throws -> LoaderFixture {
        lock.lock()
        defer { lock.unlock() }
        if let shared { return shared }
        let fixture = try LoaderFixture()
        shared = fixture
        atexit { LoaderFixture.shared?.scratch.remove() }
        return fixture
    }

    private init() throws {
        scratch = try ScratchDirectory()
        let path = scratch.file("loader.h5")
        _ = try makeImageStore(path: path, mebibytes: mebibytes)
        var options = LoaderOptions()
        options.workers = workers
        options.batchSize = 256
        options.order = .chunkShuffle(window: 4)
        loader = try Loader(store: Store(path: path), options: options)
        feed = BatchFeed(loader: try Loader(store: Store(path: path), options: options))
        _ = try runEpoch(loader, number: 0)
    }
}

let benchmarks: @Sendable () -> Void = {
    let epochMetrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident]
    Benchmark("Loader epoch chunk-shuffle batch 256 \(workers) workers \(mebibytes) MiB",
              configuration: .init(metrics: epochMetrics, timeUnits: .milliseconds, warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 10)) { benchmark in
        let fixture = try LoaderFixture.get()
        benchmark.startMeasurement()
        _ = try runEpoch(fixture.loader, number: benchmark.currentIteration + 1)
        benchmark.stopMeasurement()
    } setup: {
        _ = try LoaderFixture.get()
    }

    Benchmark("Loader steady-state batch (mallocs per batch)",
              configuration: .init(metrics: [.mallocCountTotal, .wallClock], timeUnits: .microseconds, warmupIterations: 50, maxDuration: .seconds(5), maxIterations: 2000)) { benchmark in
        let fixture = try LoaderFixture.get()
        for _ in benchmark.scaledIterations { blackHole(try fixture.feed.next()) }
    } setup: {
        _ = try LoaderFixture.get()
    }
}
