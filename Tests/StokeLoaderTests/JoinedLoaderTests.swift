import Foundation
import StokeLoader
import StokeStore
import Testing

@Suite("loader on joined stores")
struct JoinedLoaderTests {
    /// Sample `i` has `id == i` and `x` bytes `(i * 31 + j) & 0xFF`; written whole and as shards cut at `cuts`.
    private func write(_ path: String, rows: Range<Int>, total: Int, place: ShardPlace?) throws {
        var options = StoreWriteOptions()
        options.chunking = .samples(64)
        let writer = try StoreWriter(path: path, fields: [
            FieldSpec(name: "x", dtype: .u8, sampleShape: [2, 4, 4]), FieldSpec(name: "id", dtype: .i64, sampleShape: []),
        ], options: options)
        try writer.append("x", values: rows.flatMap { sample in (0..<32).map { UInt8(truncatingIfNeeded: sample * 31 + $0) } })
        try writer.append("id", values: rows.map { Int64($0) })
        if let place { try writer.setMetadata(ShardPlace.attributeName, json: place.json()) }
        try writer.finish()
    }

    @Test("the loader yields the same batches from a joined store as from one file, for every order",
          arguments: [SampleOrder.sequential, .random, .chunkShuffle(window: 3)])
    func sameBatches(order: SampleOrder) throws {
        let directory = NSTemporaryDirectory() + "stoke-joined-loader-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let total = 1000
        try write(directory + "/one.h5", rows: 0..<total, total: total, place: nil)
        // 384 and 704 are chunk boundaries; 500 is not (a chunk straddles two shards).
        let bounds = [0, 384, 500, 704, total]
        var shards: [String] = []
        for index in 0..<(bounds.count - 1) {
            let path = directory + "/shard-\(index).h5"
            try write(path, rows: bounds[index]..<bounds[index + 1], total: total, place: ShardPlace(
                index: index, count: bounds.count - 1, start: bounds[index], end: bounds[index + 1], total: total, sourcesSHA256: "s"))
            shards.append(path)
        }
        _ = try JoinedStore.join(shards: shards, to: directory + "/joined.h5")
        var options = LoaderOptions()
        options.order = order
        options.batchSize = 37
        options.workers = 2
        options.seed = 5
        let single = try Loader(store: Store(path: directory + "/one.h5"), options: options)
        let joined = try Loader(store: Store(path: directory + "/joined.h5"), options: options)
        for epoch in 0..<2 {
            let a = try single.epoch(epoch, startingAt: 0), b = try joined.epoch(epoch, startingAt: 0)
            var seen: [Int] = []
            while let left = try a.next() {
                guard let right = try b.next() else {
                    Issue.record("the joined store's epoch ended early")
                    break
                }
                #expect(left.indices == right.indices)
                #expect(try left.values("id", as: Int64.self) == right.values("id", as: Int64.self))
                #expect(try left.values("x", as: UInt8.self) == right.values("x", as: UInt8.self))
                #expect(try right.values("id", as: Int64.self).map(Int.init) == right.indices)
                seen += right.indices
            }
            if let _ = try b.next() { Issue.record("the joined store's epoch has more batches") }
            #expect(seen.sorted() == Array(0..<total))
        }
    }
}
