import Foundation
import StokeBench
import StokeLoader
import StokeStore
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

private func makeStore(samples: Int = 3000) throws -> (String, () -> Void) {
    let directory = NSTemporaryDirectory() + "stoke-bench-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/store.h5"
    var options = StoreWriteOptions()
    options.chunking = .samples(100)
    let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "image", dtype: .u8, sampleShape: [3, 16, 16])], options: options)
    var bytes = [UInt8](repeating: 0, count: samples * 768)
    for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: (index / 7) &* 13) }
    try writer.append("image", values: bytes)
    try writer.finish()
    return (path, { try? FileManager.default.removeItem(atPath: directory) })
}

@Suite("stoke bench")
struct BenchTests {
    @Test("--compute-ms-per-batch reports AU per epoch and its mean; --memory-limit records how it was applied")
    func acceleratorUtilization() throws {
        let (path, cleanup) = try makeStore(samples: 20000)
        defer { cleanup() }
        var configuration = IOBenchmark.Configuration()
        configuration.loader.batchSize = 256
        configuration.loader.workers = 2
        configuration.epochs = 2
        configuration.computeMillisecondsPerBatch = 5
        configuration.memoryLimitBytes = 64 << 20
        let result = try IOBenchmark(path: path, configuration: configuration).run()
        let json = result.json
        let au = try #require(json["au"] as? Double)
        let perEpoch = try #require(json["au_per_epoch"] as? [Double])
        #expect(perEpoch.count == 2)
        #expect(au > 0 && au <= 1)
        #expect(abs(au - perEpoch.reduce(0, +) / 2) < 1e-12)
        // 79 batches of 5 ms per epoch: compute is at least 0.39 s of each epoch's wall.
        let run = try #require(result.runs.first)
        #expect(run.stages["compute"]! >= 2 * 79 * 0.005)
        let limit = try #require(json["memory_limit"] as? [String: Any])
        #expect(limit["bytes"] as? Int == 64 << 20)
        #expect(["cgroup v2 memory.max", "fadvise(DONTNEED) of consumed chunks"].contains(limit["mode"] as? String ?? ""))
        if limit["mode"] as? String == "fadvise(DONTNEED) of consumed chunks" {
            // Decoded chunks left the page cache: most of the store is no longer resident.
            #expect(try PageCache.residentFraction(path) < 0.5)
        }
    }

    @Test("thread and in-flight counts are bounded with one clear error")
    func careless() throws {
        var options = LoaderOptions()
        #expect(throws: StoreError.self) { try IOBenchmark.apply(knob: "workers", value: "100000", to: &options) }
        #expect(throws: StoreError.self) { try IOBenchmark.apply(knob: "prefetch", value: "1000000", to: &options) }
        try IOBenchmark.apply(knob: "io-prefetch-mb", value: "0", to: &options)
        #expect(options.ioPrefetchBytes == 0)
    }

    @Test("the io JSON is complete and self-consistent")
    func ioJSON() throws {
        let (path, cleanup) = try makeStore()
        defer { cleanup() }
        var configuration = IOBenchmark.Configuration()
        configuration.loader.batchSize = 64
        configuration.loader.workers = 2
        configuration.epochs = 2
        let result = try IOBenchmark(path: path, configuration: configuration).run()
        let json = result.json
        for key in ["samples_per_s", "decoded_bytes_per_s", "stored_bytes_per_s", "ceilings", "efficiency", "bottleneck",
                    "stages", "config", "cold", "resident_fraction"] {
            #expect(json[key] != nil, "missing \(key)")
        }
        let run = try #require(result.runs.first)
        #expect(run.stats.samples == 6000)
        let ceilings = try #require(json["ceilings"] as? [String: Double])
        let binding = min(ceilings["decode_bytes_per_s"]!, ceilings["storage_decoded_bytes_per_s"]!)
        #expect(abs(run.efficiency - run.decodedBytesPerSecond / binding) < 1e-9 * max(1, run.efficiency))
        #expect(abs(run.decodedBytesPerSecond - run.samplesPerSecond * 768) < 1e-6 * run.decodedBytesPerSecond)
        let stages = run.stages
        let busy = stages["read"]! + stages["decode"]! + stages["gather"]!
        #expect(busy <= stages["wall"]! * 1.05 + 0.01)
        // The stage table adds up to the wall time.
        let sum = ["read", "decode", "gather", "chunk_wait", "idle", "other"].reduce(0) { $0 + stages[$1]! }
        #expect(abs(sum - stages["wall"]!) < 0.01 * stages["wall"]! + 1e-3, "\(stages)")
        #expect(["storage-bound", "read-bound", "decode-bound", "gather-bound", "consumer-bound"].contains(run.bottleneck))
        #expect(!run.advice.isEmpty)
        #expect(result.decode.bytes == 3000 * 768)
        #expect(result.storage.bytes == (try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int))
    }

    @Test("cold mode evicts the store: almost nothing resident before the epoch")
    func coldEvicts() throws {
        let (path, cleanup) = try makeStore(samples: 20000)
        defer { cleanup() }
        var configuration = IOBenchmark.Configuration()
        configuration.cold = true
        configuration.loader.workers = 1
        let result = try IOBenchmark(path: path, configuration: configuration).run()
        #expect((result.storageResidentFraction ?? 1) < 0.05)
        #expect((result.runs.first?.residentFraction ?? 1) < 0.05)
        #expect(result.json["cold"] as? Bool == true)
    }

    @Test("a sweep runs every combination and records its settings")
    func sweep() throws {
        let (path, cleanup) = try makeStore()
        defer { cleanup() }
        let sweeps = [try IOBenchmark.parseSweep("workers=1,2"), try IOBenchmark.parseSweep("prefetch=1,3")]
        let result = try IOBenchmark(path: path, configuration: IOBenchmark.Configuration()).run(sweep: sweeps)
        #expect(result.runs.map(\.settings) == [
            ["workers": "1", "prefetch": "1"], ["workers": "1", "prefetch": "3"],
            ["workers": "2", "prefetch": "1"], ["workers": "2", "prefetch": "3"],
        ])
        #expect((result.json["sweep"] as? [Any])?.count == 4)
        #expect(throws: StoreError.self) { try IOBenchmark.parseSweep("workers") }
        var options = LoaderOptions()
        #expect(throws: StoreError.self) { try IOBenchmark.apply(knob: "speed", value: "9", to: &options) }
        #expect(throws: StoreError.self) { try IOBenchmark.apply(knob: "workers", value: "0", to: &options) }
    }

    @Test("codec comparison on a store sample")
    func codecs() throws {
        let (path, cleanup) = try makeStore()
        defer { cleanup() }
        let result = try CodecBenchmark.run(input: path, field: nil, chunks: 4, cores: 2) { _ in
            throw StoreError.invalidArgument("not an NPY")
        }
        #expect(result.rows.map(\.codec) == CodecBenchmark.defaultCodecs)
        #expect(result.chunksSampled == 4)
        let none = try #require(result.rows.first)
        #expect(abs(none.ratio - 1) < 1e-9)
        #expect(result.rows.allSatisfy { $0.decodeBytesPerSecond > 0 && $0.warmSamplesPerSecond > 0 })
        #expect(result.rows[1].ratio > 2)  // the repetitive test pattern compresses
    }

    @Test("SVG charts are well formed")
    func charts() throws {
        let line = Report.lineChart(title: "t<1>", xLabel: "s", yLabel: "samples/s", series: [("a", [(0, 1), (1, 2)])], references: [("c", 3)])
        #expect(line.hasPrefix("<svg") && line.hasSuffix("</svg>"))
        #expect(line.contains("t&lt;1&gt;"))
        let data = Data(line.utf8)
        let parser = XMLParser(data: data)
        #expect(parser.parse())
        let bars = Report.barChart(title: "b", yLabel: "y", bars: [("x=1", 5), ("x=2", 7)])
        #expect(XMLParser(data: Data(bars.utf8)).parse())
    }
}
