import Foundation
@testable import StokeLoader
import StokeStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

private func temporaryFile(bytes: Int) throws -> (String, () -> Void) {
    let directory = NSTemporaryDirectory() + "stoke-prefetch-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/data.bin"
    try Data(count: bytes).write(to: URL(fileURLWithPath: path))
    return (path, { try? FileManager.default.removeItem(atPath: directory) })
}

/// Polls `condition` for up to 5 s.
private func eventually(_ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .seconds(5)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.002)
    }
    return condition()
}

/// A store of `samples` rows of 4 KiB of noise (so LZ4 stores chunks nearly raw), 16 rows per chunk.
private func makeLargeStore(samples: Int, codec: Codec = .lz4) throws -> (String, () -> Void) {
    let directory = NSTemporaryDirectory() + "stoke-prefetch-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let path = directory + "/store.h5"
    var options = StoreWriteOptions()
    options.codec = codec
    options.chunking = .samples(16)
    let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "x", dtype: .u8, sampleShape: [4096])], options: options)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: samples * 4096)
    for index in bytes.indices {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    try writer.append("x", values: bytes)
    try writer.finish()
    return (path, { try? FileManager.default.removeItem(atPath: directory) })
}

@Suite("I/O prefetch")
struct IOPrefetchTests {
    @Test("the prefetcher never has more than its budget ahead and advises extents in plan order")
    func boundAndOrder() throws {
        let (path, cleanup) = try temporaryFile(bytes: 8 << 20)
        defer { cleanup() }
        let prefetcher = try IOPrefetcher(path: path, budgetBytes: 1 << 20)
        defer { prefetcher.shutdown() }
        prefetcher.recordOrder = true
        // 64 extents of 128 KiB, 4 per batch, in a shuffled file order (the plan's order, not the file's).
        var offsets = Array(0..<64).map { UInt64($0) << 17 }
        var generator = SystemRandomNumberGenerator()
        offsets.shuffle(using: &generator)
        let extents = offsets.enumerated().map { IOPrefetcher.Extent(offset: $1, size: 1 << 17, batch: $0 / 4) }
        prefetcher.start(extents, fromBatch: 0)
        // 8 extents fit the 1 MiB budget; the prefetcher then waits for the workers.
        #expect(eventually { prefetcher.issuedExtents == 8 })
        Thread.sleep(forTimeInterval: 0.05)
        #expect(prefetcher.issuedExtents == 8)
        for batch in 1...16 {
            prefetcher.consumed(batchesBelow: batch)
            #expect(eventually { prefetcher.issuedExtents == min(64, 8 + 4 * batch) })
            #expect(prefetcher.inFlight <= 1 << 20)
        }
        #expect(prefetcher.peakInFlightBytes <= 1 << 20)
        #expect(prefetcher.issuedOrder == extents)
    }

    @Test("extents the workers reached first are skipped, and a new epoch replaces the old one")
    func skipAndRestart() throws {
        let (path, cleanup) = try temporaryFile(bytes: 1 << 20)
        defer { cleanup() }
        let prefetcher = try IOPrefetcher(path: path, budgetBytes: 64 << 10)
        defer { prefetcher.shutdown() }
        prefetcher.recordOrder = true
        let extents = (0..<16).map { IOPrefetcher.Extent(offset: UInt64($0) << 16, size: 1 << 16, batch: $0) }
        prefetcher.start(extents, fromBatch: 10)  // resuming at batch 10: earlier extents are never advised
        #expect(eventually { prefetcher.issuedExtents == 1 })
        #expect(prefetcher.issuedOrder.first?.batch == 10)
        prefetcher.stop()
        #expect(prefetcher.inFlight == 0)
    }

    @Test("shutdown while the prefetcher is busy returns promptly, and twice is safe")
    func shutdownMidPrefetch() throws {
        let (path, cleanup) = try temporaryFile(bytes: 4 << 20)
        defer { cleanup() }
        let prefetcher = try IOPrefetcher(path: path, budgetBytes: 1 << 30)
        let extents = (0..<100_000).map { IOPrefetcher.Extent(offset: UInt64($0 % 1024) << 12, size: 4096, batch: $0) }
        prefetcher.start(extents, fromBatch: 0)
        let start = ContinuousClock.now
        prefetcher.shutdown()
        prefetcher.shutdown()
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test("a loader shut down mid-epoch joins its workers and its prefetcher; held batches stay valid")
    func loaderShutdownMidEpoch() throws {
        let (path, cleanup) = try makeLargeStore(samples: 2048)
        defer { cleanup() }
        var options = LoaderOptions()
        options.workers = 2
        options.batchSize = 64
        options.ioPrefetchBytes = 1 << 20
        let loader = try Loader(store: Store(path: path), options: options)
        let epoch = try loader.epoch(0)
        guard let batch = try epoch.next() else {
            Issue.record("no first batch")
            return
        }
        loader.shutdown()
        #expect(try batch.values("x", as: UInt8.self).count == 64 * 4096)
        #expect(epoch.stats.ioPrefetchPeakBytes <= 1 << 20)
    }

    @Test("the loader reads every chunk ahead once, within its budget, and reports the read stage")
    func loaderPrefetchStats() throws {
        let (path, cleanup) = try makeLargeStore(samples: 2048)
        defer { cleanup() }
        let store = try Store(path: path)
        var options = LoaderOptions()
        options.workers = 2
        options.batchSize = 64
        options.ioPrefetchBytes = 256 << 10
        let loader = try Loader(store: store, options: options)
        let epoch = try loader.epoch(0)
        var samples = 0
        while let batch = try epoch.next() { samples += batch.count }
        #expect(samples == 2048)
        let stored = try store.field("x").storedBytes()
        let stats = epoch.stats
        #expect(stats.ioPrefetchedBytes <= stored)
        #expect(stats.ioPrefetchedBytes > 0)
        #expect(stats.ioPrefetchPeakBytes <= 256 << 10)
        #expect(stats.readSeconds > 0)
    }

    @Test("a store truncated while it is read gives an error naming the chunk, not a crash")
    func truncatedWhilePrefetching() throws {
        let (path, cleanup) = try makeLargeStore(samples: 1024)
        defer { cleanup() }
        var options = LoaderOptions()
        options.workers = 1
        options.prefetch = 1
        options.batchSize = 16
        options.order = .sequential
        let loader = try Loader(store: Store(path: path), options: options)
        let epoch = try loader.epoch(0)
        guard let first = try epoch.next() else {
            Issue.record("no first batch")
            return
        }
        _ = consume first
        Thread.sleep(forTimeInterval: 0.3)  // the worker fills batch 1, then waits for it to be taken
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(truncate(path, off_t(size / 4)) == 0)
        var error: StoreError?
        do {
            while let _ = try epoch.next() {}
        } catch let caught {
            error = caught
        }
        let described = try #require(error).description
        #expect(described.contains("truncated"), "\(described)")
        #expect(described.contains("field 'x' chunk"), "\(described)")
    }

    @Test("careless sizes: workers and prefetch are bounded, a huge batch size takes the samples there are")
    func bounds() throws {
        let (path, cleanup) = try makeLargeStore(samples: 200)
        defer { cleanup() }
        let store = try Store(path: path)
        var options = LoaderOptions()
        options.workers = 100_000
        #expect(throws: StoreError.self) { try Loader(store: store, options: options) }
        options.workers = 2
        options.prefetch = 1_000_000_000
        #expect(throws: StoreError.self) { try Loader(store: store, options: options) }
        options.prefetch = 4
        options.batchSize = 100_000_000
        let loader = try Loader(store: store, options: options)
        #expect(loader.batchBufferBytes < 200 * 4096 + 4096)
        let epoch = try loader.epoch(0)
        guard let batch = try epoch.next() else {
            Issue.record("no batch")
            return
        }
        #expect(batch.count == 200)
    }

    @Test("Fletcher-32 is checked on the loader's read path by default, and can be turned off")
    func checksumsByDefault() throws {
        let (path, cleanup) = try makeLargeStore(samples: 64, codec: .none)
        defer { cleanup() }
        let location = try #require(try Store(path: path).field("x").chunkIndex?[2])
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: location.offset + 200)
        let byte = try #require(try handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: location.offset + 200)
        try handle.write(contentsOf: [byte ^ 0x40])
        try handle.close()
        var options = LoaderOptions()
        options.workers = 1
        options.order = .sequential
        let checked = try Loader(store: Store(path: path), options: options)
        let error = #expect(throws: StoreError.self) {
            let epoch = try checked.epoch(0)
            while let _ = try epoch.next() {}
        }
        #expect(error?.description.contains("chunk 2") == true, "\(String(describing: error))")
        let unchecked = try Loader(store: Store(path: path, options: StoreReadOptions(verifyChecksums: false)), options: options)
        let epoch = try unchecked.epoch(0)
        var samples = 0
        while let batch = try epoch.next() { samples += batch.count }
        #expect(samples == 64)
    }
}
