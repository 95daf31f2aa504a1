import Foundation
import StokeStore
import Testing

/// The chunk index is only ever a faster way to read what the library reads: files with a userblock,
/// chunks never written (the fill value), stores edited after `stoke index`, and files that declare
/// far more chunks than they hold.
@Suite("chunk index trust: userblock, fill value, stale index, declared sizes")
struct IndexTrustTests {
    /// Every row of `name` through Stoke's own decode path.
    func readAll(_ store: Store, _ name: String) throws -> [UInt8] {
        let field = try store.field(name)
        var back = [UInt8](repeating: 0, count: field.rawBytes)
        try back.withUnsafeMutableBytes { try field.readRows(0..<field.rows, into: $0, workers: 2) }
        return back
    }

    @Test("a file with a 512-byte userblock is found, scanned at its base address and indexed correctly")
    func userblock() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("ub.h5")
        let result = try python("""
            import sys, h5py, numpy as np
            x = np.random.default_rng(0).random((200, 1, 8, 8), dtype=np.float32)
            with h5py.File(sys.argv[1], 'w', userblock_size=512) as f:
                f.create_dataset('data', data=x, chunks=(16, 1, 8, 8))
                f.create_dataset('label', data=np.arange(200, dtype=np.int64), chunks=(16,))
            x.tofile(sys.argv[1] + '.x')
            """, [path])
        try #require(result.status == 0, "\(result.output)")
        let expected = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path + ".x")))
        #expect(HDF5Signature.isHDF5(path: path))
        do {
            let before = try Store(path: path)
            #expect(try before.field("data").chunkIndexSource == .scannedAtOpen)
            #expect(try before.field("data").chunkIndex?.first?.offset ?? 0 > 512)
            #expect(try readAll(before, "data") == expected)
        }
        let reports = try ChunkIndexing.addIndex(to: path)
        #expect(reports.allSatisfy { $0.method == "b-tree scan" })
        let after = try Store(path: path)
        #expect(try after.field("data").chunkIndexSource == .persisted)
        #expect(try readAll(after, "data") == expected)
        for field in after.fields { _ = try field.verify() }  // the index holds the bytes the library reads
    }

    @Test("chunks never written read as the fill value, before and after stoke index")
    func fillValue() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("fill.h5")
        let result = try python("""
            import sys, h5py, numpy as np
            x = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
            with h5py.File(sys.argv[1], 'w') as f:
                d = f.create_dataset('data', shape=(200, 1, 8, 8), dtype='f4', chunks=(16, 1, 8, 8), fillvalue=7.5); d[:64] = x
                l = f.create_dataset('label', shape=(200,), dtype='i8', chunks=(16,), fillvalue=3); l[:64] = 0
            """, [path])
        try #require(result.status == 0, "\(result.output)")
        for indexed in [false, true] {
            if indexed { _ = try ChunkIndexing.addIndex(to: path) }
            let store = try Store(path: path)
            let data = try store.field("data").read(0..<200, as: Float.self)
            #expect(data[(100 * 64)..<(101 * 64)].allSatisfy { $0 == 7.5 }, "indexed: \(indexed)")
            #expect(data[0] != 7.5)
            let labels = try store.field("label").read(0..<200, as: Int64.self)
            #expect(labels[0..<64].allSatisfy { $0 == 0 })
            #expect(labels[64...].allSatisfy { $0 == 3 }, "indexed: \(indexed)")
            var picked = [Int64](repeating: 0, count: 2)
            try picked.withUnsafeMutableBytes { try store.field("label").readRows(indices: [150, 10], into: $0) }
            #expect(picked == [3, 0])
            for field in store.fields { _ = try field.verify() }
        }
    }

    @Test("a persisted index made stale by an in-place h5py edit is detected and not used")
    func staleIndex() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("s.h5")
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "data", dtype: .f32, sampleShape: [4])])
        try writer.append("data", values: [Float](repeating: 0, count: 200 * 4))
        try writer.finish()
        do { #expect(try Store(path: path).field("data").chunkIndexSource == .persisted) }
        let edit = try python("""
            import sys, h5py, hdf5plugin, numpy as np
            with h5py.File(sys.argv[1], 'r+') as f: f['data'][0:16] = np.full((16, 4), 5.0, np.float32)
            """, [path])
        try #require(edit.status == 0, "\(edit.output)")
        do {
            let store = try Store(path: path)
            #expect(try store.field("data").chunkIndexSource == .stale)
            #expect(store.hasChunkIndex == false)
            #expect(try store.field("data").read(0..<1, as: Float.self) == [5, 5, 5, 5])
        }
        let reports = try ChunkIndexing.addIndex(to: path)
        #expect(reports.first?.previous == "stale")
        #expect(try Store(path: path).field("data").chunkIndexSource == .persisted)
    }

    @Test("a 1e9-row file of a few KB neither indexes nor opens with gigabytes of index")
    func declaredHuge() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("sparse.h5")
        let result = try python("""
            import sys, h5py
            with h5py.File(sys.argv[1], 'w') as f:
                f.create_dataset('data', shape=(10**9, 1000, 1000), dtype='f4', chunks=(1, 1000, 1000), compression='gzip')
            """, [path])
        try #require(result.status == 0, "\(result.output)")
        let start = ContinuousClock.now
        #expect {
            _ = try ChunkIndexing.addIndex(to: path)
        } throws: { error in
            "\(error)".contains("memory budget") && "\(error)".contains("'data'")
        }
        let store = try Store(path: path)
        if case .library = try store.field("data").chunkIndexSource {} else { Issue.record("expected no in-memory index") }
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
