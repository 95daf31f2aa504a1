import Foundation
import StokeStore
import Testing

/// Stoke and h5py + hdf5plugin read each other's files, and h5dump reads Stoke's LZ4 stores through
/// Debian's hdf5-filter-plugin.
@Suite("interop with h5py, hdf5plugin and h5dump")
struct InteropTests {
    @Test("Stoke writes, h5py + hdf5plugin read equal arrays", arguments: [Codec.lz4, .lz4Shuffle, .deflate(level: 6), .none])
    func stokeToH5py(codec: Codec) throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let store = directory.file("store.h5")
        let raw = directory.file("expected.bin")
        let spec = FieldSpec(name: "image", dtype: .u16, sampleShape: [2, 9, 7])
        let samples = 101
        let bytes = sampleBytes(count: samples * spec.sampleBytes)
        var options = StoreWriteOptions()
        options.codec = codec
        options.chunking = .samples(16)
        options.lz4BlockBytes = 1000  // several LZ4 blocks per chunk, some stored raw
        let writer = try StoreWriter(path: store, fields: [spec], options: options)
        try writer.append("image", values: bytes)
        try writer.finish()
        try Data(bytes).write(to: URL(fileURLWithPath: raw))
        let result = try python("""
            import sys, h5py, hdf5plugin, numpy as np
            f = h5py.File(sys.argv[1], 'r')
            d = f['image']
            expected = np.fromfile(sys.argv[2], dtype='<u2').reshape(d.shape)
            assert d.shape == (101, 2, 9, 7), d.shape
            assert d.fletcher32
            assert np.array_equal(d[...], expected), 'arrays differ'
            assert np.array_equal(d[37:59], expected[37:59])
            print('ok')
            """, [store, raw])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("ok"))
    }

    @Test("h5py + hdf5plugin write, Stoke reads equal arrays, with and without a chunk index")
    func h5pyToStoke() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("h5py.h5")
        let result = try python("""
            import sys, h5py, hdf5plugin, numpy as np
            rng = np.random.default_rng(7)
            a = (rng.integers(0, 16, size=(203, 3, 8, 8)) * 5).astype(np.uint8)
            b = rng.standard_normal((203, 12)).astype(np.float32)
            with h5py.File(sys.argv[1], 'w') as f:
                f.create_dataset('lz4', data=a, chunks=(16, 3, 8, 8), **hdf5plugin.LZ4())
                f.create_dataset('gzip', data=b, chunks=(20, 12), compression='gzip', compression_opts=5, fletcher32=True)
                f.create_dataset('shuffle_lz4', data=b, chunks=(32, 12), shuffle=True, **hdf5plugin.LZ4(nbytes=256))
                f.create_dataset('plain', data=a, chunks=(50, 3, 8, 8))
                f.create_dataset('contiguous', data=b)
                f.create_dataset('split', data=a, chunks=(16, 1, 8, 8), compression='gzip')
            a.tofile(sys.argv[1] + '.a'); b.tofile(sys.argv[1] + '.b')
            print('written')
            """, [path])
        try #require(result.status == 0, "\(result.output)")
        let expectedA = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path + ".a")))
        let expectedB = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path + ".b")))

        func check(_ store: Store) throws {
            #expect(store.sampleCount == 203)
            for (name, expected) in [("lz4", expectedA), ("gzip", expectedB), ("shuffle_lz4", expectedB), ("plain", expectedA),
                                     ("contiguous", expectedB), ("split", expectedA)] {
                let field = try store.field(name)
                var back = [UInt8](repeating: 0, count: field.rawBytes)
                try back.withUnsafeMutableBytes { try field.readRows(0..<field.rows, into: $0, workers: 2) }
                #expect(back == expected, "field \(name)")
                let rows = [202, 0, 100, 15, 16]
                var picked = [UInt8](repeating: 0, count: rows.count * field.sampleBytes)
                try picked.withUnsafeMutableBytes { try field.readRows(indices: rows, into: $0) }
                #expect(picked == rows.flatMap { expected[($0 * field.sampleBytes)..<(($0 + 1) * field.sampleBytes)] }, "field \(name)")
                _ = try field.verify()
            }
            #expect(try store.field("split").decodesDirectly == false)
            #expect(try store.field("lz4").decodesDirectly)
        }
        do {
            let before = try Store(path: path, options: StoreReadOptions(verifyChecksums: true))
            #expect(before.hasChunkIndex == false)
            try check(before)
        }

        let reports = try ChunkIndexing.addIndex(to: path)
        #expect(Set(reports.map(\.field)) == ["lz4", "gzip", "shuffle_lz4", "plain"])
        #expect(reports.allSatisfy { $0.method == "b-tree scan" })
        let after = try Store(path: path, options: StoreReadOptions(verifyChecksums: true))
        #expect(after.hasChunkIndex)
        #expect(try after.field("lz4").chunkIndex?.count == 13)
        try check(after)
        // The file stays readable by h5py after the index was added in place.
        let reread = try python("import sys, h5py, hdf5plugin; f = h5py.File(sys.argv[1], 'r'); print(f['lz4'][5].sum())", [path])
        #expect(reread.status == 0, "\(reread.output)")
    }

    @Test("h5dump reads a Stoke LZ4 store through Debian's filter plugin")
    func h5dumpReadsStoke() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("dump.h5")
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "values", dtype: .i32, sampleShape: [3])])
        try writer.append("values", values: (0..<30).map { Int32($0 * 7) })
        try writer.finish()
        let dump = try run("/usr/bin/h5dump", ["-p", "-d", "/values", path])
        #expect(dump.status == 0, "\(dump.output)")
        #expect(dump.output.contains("189, 196, 203"), "\(dump.output)")
        #expect(dump.output.contains("32004"))
    }
}
