import Foundation
import StokeStore
import Testing

/// Samples of `[3, 8, 8]` u8 (192 bytes) with i64 labels, as one store or as shards of it.
private struct JoinFixture {
    static let sampleShape = [3, 8, 8]
    static let rowBytes = 192
    let total: Int
    let data: [UInt8]
    let labels: [Int64]

    init(total: Int) {
        self.total = total
        data = sampleBytes(count: total * Self.rowBytes, seed: 7)
        labels = (0..<total).map { Int64(($0 * 7919) % 10) }
    }

    func write(_ path: String, rows: Range<Int>, chunk: Int = 32, place: ShardPlace?, recipe: String = #"{"source":"test"}"#) throws {
        var options = StoreWriteOptions()
        options.chunking = .samples(chunk)
        options.workers = 1
        let writer = try StoreWriter(
            path: path, fields: [FieldSpec(name: "image", dtype: .u8, sampleShape: Self.sampleShape), FieldSpec(name: "label", dtype: .i64, sampleShape: [])],
            options: options)
        try writer.append("image", values: Array(data[(rows.lowerBound * Self.rowBytes)..<(rows.upperBound * Self.rowBytes)]))
        try writer.append("label", values: Array(labels[rows]))
        try writer.setMetadata("recipe", json: recipe)
        if let place { try writer.setMetadata(ShardPlace.attributeName, json: place.json()) }
        _ = try writer.finish()
    }

    /// Writes shards cut at `cuts` (inner boundaries) into `folder`; returns their paths.
    func shards(in folder: String, cuts: [Int], chunk: Int = 32) throws -> [String] {
        let bounds = [0] + cuts + [total]
        var paths: [String] = []
        for index in 0..<(bounds.count - 1) {
            let path = folder + "/part-\(index).h5"
            let place = ShardPlace(index: index, count: bounds.count - 1, start: bounds[index], end: bounds[index + 1], total: total, sourcesSHA256: "abc")
            try write(path, rows: bounds[index]..<bounds[index + 1], chunk: chunk, place: place)
            paths.append(path)
        }
        return paths
    }
}

@Suite("Joined stores: shards as one store")
struct JoinTests {
    @Test("a joined store reads like one file through Store (aligned and straddling cuts), verifies, and moves with its folder",
          arguments: [[320, 640], [300], [5, 6, 700]])
    func readsLikeOneFile(cuts: [Int]) throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let fixture = JoinFixture(total: 1000)
        try FileManager.default.createDirectory(atPath: directory.file("set"), withIntermediateDirectories: true)
        let shards = try fixture.shards(in: directory.file("set"), cuts: cuts)
        let joined = directory.file("set/all.h5")
        // Given out of order: the join sorts by the recorded shard index.
        let summary = try JoinedStore.join(shards: shards.reversed(), to: joined)
        #expect(summary.samples == 1000)
        #expect(summary.shards == shards.indices.map { "part-\($0).h5" })

        let shardChunks = try shards.map { try Store(path: $0).field("image").chunkCount }.reduce(0, +)
        func check(_ path: String) throws {
            let store = try Store(path: path)
            #expect(store.sampleCount == 1000)
            #expect(store.hasChunkIndex)
            let image = try store.field("image"), label = try store.field("label")
            #expect(image.chunkRows == 32 && image.chunkCount == 32)
            #expect(try image.read(0..<1000, as: UInt8.self, workers: 2) == fixture.data)
            #expect(try label.read(0..<1000, as: Int64.self) == fixture.labels)
            #expect(try image.read(290..<333, as: UInt8.self) == Array(fixture.data[(290 * 192)..<(333 * 192)]))
            let indices = [999, 0, 320, 319, 5, 700, 6, 641, 0]
            var picked = [UInt8](repeating: 0, count: indices.count * 192)
            try unsafe picked.withUnsafeMutableBytes { try unsafe image.readRows(indices: indices, into: $0) }
            #expect(picked == indices.flatMap { fixture.data[($0 * 192)..<(($0 + 1) * 192)] })
            #expect(try image.verify() == shardChunks)
            #expect(store.attributes["recipe"] == #"{"source":"test"}"#)
            #expect(store.attributes[ShardPlace.attributeName] == nil)
        }
        try check(joined)

        // h5py reads the virtual datasets as one dataset each, also from another working directory.
        let h5py = try python("""
            import sys, os, h5py, hdf5plugin, numpy as np
            os.chdir('/')
            f = h5py.File(sys.argv[1], 'r')
            x = f['image']
            assert x.is_virtual and x.shape == (1000, 3, 8, 8), x
            expected = np.frombuffer(open(sys.argv[2], 'rb').read(), np.uint8).reshape(1000, 3, 8, 8)
            assert np.array_equal(x[...], expected)
            assert list(f['label'][...]) == [(i * 7919) % 10 for i in range(1000)]
            """, [joined, try dump(fixture.data, directory.file("expected.bin"))])
        #expect(h5py.status == 0, "\(h5py.output)")

        // The folder moves as a whole: the shards are named relative to the joined store.
        try FileManager.default.moveItem(atPath: directory.file("set"), toPath: directory.file("moved"))
        try check(directory.file("moved/all.h5"))
    }

    @Test("the join refuses shards that do not fit, naming the shard")
    func refusesMisfits() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let fixture = JoinFixture(total: 1000)
        let a = directory.file("a.h5"), b = directory.file("b.h5"), out = directory.file("out.h5")
        func place(_ index: Int, _ range: Range<Int>, count: Int = 2, hash: String = "abc") -> ShardPlace {
            ShardPlace(index: index, count: count, start: range.lowerBound, end: range.upperBound, total: 1000, sourcesSHA256: hash)
        }
        func expectError(_ shards: [String], _ fragments: [String]) {
            do {
                _ = try JoinedStore.join(shards: shards, to: out)
                Issue.record("joined \(shards) without complaint")
            } catch {
                for fragment in fragments { #expect("\(error)".contains(fragment), "\(error)") }
            }
            #expect(!FileManager.default.fileExists(atPath: out))
        }
        // A gap: 320..<400 belongs to no shard.
        try fixture.write(a, rows: 0..<320, place: place(0, 0..<320))
        try fixture.write(b, rows: 400..<1000, place: place(1, 400..<1000))
        expectError([a, b], [b, "a gap", "320"])
        // An overlap.
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 300..<1000, place: place(1, 300..<1000))
        expectError([a, b], [b, "an overlap"])
        // The same shard twice, and a missing one.
        expectError([a, a], [a, "is shard 0 of 2, and so is"])
        expectError([a], [a, "is shard 0 of 2, but 1 shard(s) were given"])
        // Another recipe, another source list.
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 320..<1000, place: place(1, 320..<1000), recipe: #"{"source":"other"}"#)
        expectError([a, b], [b, "another recipe"])
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 320..<1000, place: place(1, 320..<1000, hash: "def"))
        expectError([a, b], [b, "another source list"])
        // Another chunking.
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 320..<1000, chunk: 16, place: place(1, 320..<1000))
        expectError([a, b], [b, "has fields"])
        // Not a shard at all.
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 320..<1000, place: nil)
        expectError([a, b], [b, "not packed with --shard"])
        // A shard replaced after the join: opening the joined store says so.
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 320..<1000, place: place(1, 320..<1000))
        _ = try JoinedStore.join(shards: [a, b], to: out)
        #expect(try Store(path: out).sampleCount == 1000)
        try FileManager.default.removeItem(atPath: b)
        try fixture.write(b, rows: 320..<1000, place: place(1, 320..<1000, hash: "new"))
        #expect(throws: StoreError.self) { try Store(path: out) }
    }

    private func dump(_ bytes: [UInt8], _ path: String) throws -> String {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}
