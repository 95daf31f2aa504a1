import Foundation
import StokeStore
import Testing

/// Issue 19: stores written by other tools are read correctly or refused with one clear line.
@Suite("store reliability (issue 19)")
struct StoreReliabilityTests {
    @Test("r21: fields of unequal length are refused at open, naming the fields and their lengths")
    func unequalLengths() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("d.h5")
        let made = try python("""
            import sys, h5py, numpy as np
            with h5py.File(sys.argv[1], 'w') as f:
                f.create_dataset('data', data=np.zeros((200, 4), np.float32), chunks=(16, 4))
                f.create_dataset('label', data=np.zeros(150, np.int64), chunks=(16,))
            """, [path])
        try #require(made.status == 0, "\(made.output)")
        let error = #expect(throws: StoreError.self) { try Store(path: path) }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("'data' 200") && text.contains("'label' 150") && text.contains("differ in length"), "\(text)")
    }

    @Test("r06/r19: check() says what it verified: decoded+checksum, checksum only (Zstd under Fletcher-32), decoded without checksum, nothing")
    func verifyLevels() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let spec = FieldSpec(name: "x", dtype: .f32, sampleShape: [16])
        let values = (0..<(200 * 16)).map { Float($0) }
        for (checksum, codec, level) in [(true, Codec.lz4, FieldCheck.Level.decodedAndChecksums), (false, .lz4, .decodedOnly), (false, .none, .decodedOnly)] {
            let path = directory.file("s-\(checksum)-\(codec).h5")
            var options = StoreWriteOptions()
            options.checksum = checksum
            options.codec = codec
            options.chunking = .samples(32)
            let writer = try StoreWriter(path: path, fields: [spec], options: options)
            try writer.append("x", values: values)
            try writer.finish()
            let check = try Store(path: path).field("x").check()
            #expect(check.level == level, "\(check)")
            #expect(check.verified == checksum)
            #expect(check.chunks == 7)
            #expect(checksum || check.note.contains("no checksum recorded"), "\(check.note)")
        }

        let zstd = directory.file("zstd.h5")
        let made = try python("""
            import sys, h5py, hdf5plugin, numpy as np
            x = np.random.default_rng(0).random((200, 1, 8, 8), dtype=np.float32)
            with h5py.File(sys.argv[1], 'w') as f:
                f.create_dataset('data', data=x, chunks=(16, 1, 8, 8), fletcher32=True, **hdf5plugin.Zstd())
                f.create_dataset('bare', data=x, chunks=(16, 1, 8, 8), **hdf5plugin.Zstd())
                f.create_dataset('flat', data=np.zeros((200, 3), np.int64))
            with h5py.File(sys.argv[1], 'r') as f:
                info = f['data'].id.get_chunk_info(3)
            b = bytearray(open(sys.argv[1], 'rb').read()); b[info.byte_offset + info.size // 2] ^= 0x5A
            open(sys.argv[1] + '.flipped', 'wb').write(b)
            """, [zstd])
        try #require(made.status == 0, "\(made.output)")
        let store = try Store(path: zstd)
        let data = try store.field("data").check()
        #expect(data.level == .checksums && data.verified && data.chunks == 13, "\(data)")
        #expect(data.note.contains("not decoded") && data.note.contains("32015"), "\(data.note)")
        let bare = try store.field("bare").check()
        #expect(bare.level == .nothing && !bare.verified, "\(bare)")
        let flat = try store.field("flat").check()
        #expect(flat.level == .nothing && flat.note.contains("contiguous"), "\(flat)")
        let flipped = try Store(path: zstd + ".flipped")
        let error = #expect(throws: StoreError.self) { try flipped.field("data").check() }
        #expect("\(error.map { "\($0)" } ?? "")".contains("chunk 3 is corrupt: Fletcher-32 checksum mismatch"))
    }

    @Test("r22: a partly written h5py dataset verifies: unwritten chunks are counted as fill value, not corrupt")
    func partlyWritten() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("partial.h5")
        let made = try python("""
            import sys, h5py, numpy as np
            with h5py.File(sys.argv[1], 'w') as f:
                d = f.create_dataset('data', shape=(100, 4), dtype='f4', chunks=(10, 4), fillvalue=7, fletcher32=True)
                d[0:30] = 1.0
                d[60:70] = 2.0
            """, [path])
        try #require(made.status == 0, "\(made.output)")
        let check = try Store(path: path).field("data").check()
        #expect(check.chunks == 4 && check.unwrittenChunks == 6, "\(check)")
        #expect(check.level == .decodedAndChecksums && check.note.contains("6 chunks were never written"), "\(check)")
    }

    @Test("r22: a uint32 field is read as u32; libver='latest' compressed fields are read or refused saying why")
    func foreignFormats() throws {
        let directory = TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("u32.h5"), latest = directory.file("latest.h5")
        let made = try python("""
            import sys, h5py, numpy as np
            x = np.arange(200 * 4, dtype=np.float32).reshape(200, 4)
            with h5py.File(sys.argv[1], 'w') as f:
                f.create_dataset('data', data=x, chunks=(16, 4))
                f.create_dataset('label', data=(np.arange(200) * 20_000_000).astype('u4'), chunks=(16,), compression='gzip')
            with h5py.File(sys.argv[2], 'w', libver='latest') as f:
                f.create_dataset('data', data=x, chunks=(16, 4), compression='gzip', fletcher32=True)
            """, [path, latest])
        try #require(made.status == 0, "\(made.output)")
        let store = try Store(path: path)
        let label = try store.field("label")
        #expect(label.dtype == .u32)
        #expect(try label.read(0..<200, as: UInt32.self) == (0..<200).map { UInt32($0) * 20_000_000 })
        #expect(try label.check().level == .decodedOnly)

        do {
            let opened = try Store(path: latest)
            #expect(try opened.field("data").read(0..<200, as: Float.self) == (0..<800).map { Float($0) })
        } catch {
            let text = "\(error)"
            #expect(text.contains("uses a newer HDF5 file format than this Stoke's HDF5 library") && text.contains("libver"), "\(text)")
        }
    }
}
