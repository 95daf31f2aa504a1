import Foundation
import StokePack
import StokeStore
import Testing

/// Bytes of every row of an array source, in order.
private func allBytes(_ source: any ArraySource) throws -> [UInt8] {
    var bytes: [UInt8] = []
    try source.forEachBatch(batchRows: 7) { _, batch in bytes += batch }
    return bytes
}

@Suite("NPZ and CSV sources")
struct NPZCSVTests {
    @Test("NPZ: stored (savez) and deflated (savez_compressed) archives, several dtypes and orders, pack round trip")
    func npzRoundTrip() throws {
        let directory = scratchDirectory("stoke-npz")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, numpy as np
            d = sys.argv[1]
            rng = np.random.default_rng(7)
            x = rng.standard_normal((33, 4, 5)).astype(np.float32)
            y = rng.integers(-5, 5, size=33).astype('>i8')
            m = np.asfortranarray(rng.integers(0, 255, size=(33, 6), dtype=np.uint8))
            np.savez(d + '/plain.npz', x=x, y=y, m=m)
            np.savez_compressed(d + '/small.npz', x=x, y=y, m=m)
            x.tofile(d + '/x.raw'); y.astype('<i8').tofile(d + '/y.raw'); np.ascontiguousarray(m).tofile(d + '/m.raw')
            """, [directory])
        for archiveName in ["plain", "small"] {
            let archive = try NPZArchive(path: "\(directory)/\(archiveName).npz")
            #expect(archive.arrays.map(\.name) == ["x", "y", "m"])
            #expect(archive.arrays.map(\.array.dtype) == [.f32, .i64, .u8])
            #expect(archive.arrays.map(\.array.shape) == [[33, 4, 5], [33], [33, 6]])
            for (name, array) in archive.arrays {
                #expect(try allBytes(array) == readBytes("\(directory)/\(name).raw"), "\(archiveName):\(name)")
            }
            let store = "\(directory)/\(archiveName).h5"
            let summary = try ArrayPacker.pack(
                fields: archive.arrays.map { PackField(name: $0.name, source: $0.array) }, to: store,
                options: StoreWriteOptions(), metadata: [])
            #expect(summary.samples == 33)
            let reader = try Store(path: store)
            #expect(try reader.field("x").read(0..<33, as: Float.self).withUnsafeBytes { Array($0) } == readBytes("\(directory)/x.raw"))
            #expect(try reader.field("y").read(0..<33, as: Int64.self).withUnsafeBytes { Array($0) } == readBytes("\(directory)/y.raw"))
            #expect(try reader.field("m").read(0..<33, as: UInt8.self) == readBytes("\(directory)/m.raw"))
        }
    }

    @Test("NPZ: zip64 central directory (saturated sizes and offsets with zip64 extra fields, zip64 end record) reads the same arrays")
    func npzZip64() throws {
        let directory = scratchDirectory("stoke-npz")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, struct, numpy as np
            d = sys.argv[1]
            np.savez(d + '/plain.npz', a=np.arange(30, dtype=np.int32).reshape(10, 3), b=np.arange(10, dtype=np.float64))
            np.arange(30, dtype=np.int32).tofile(d + '/a.raw'); np.arange(10, dtype=np.float64).tofile(d + '/b.raw')
            z = open(d + '/plain.npz', 'rb').read()
            end = z.rindex(b'PK\\x05\\x06')
            count, size, offset = struct.unpack('<HII', z[end + 10:end + 20])
            entries, at = [], offset
            for _ in range(count):
                head = bytearray(z[at:at + 46])
                n, e, c = struct.unpack('<HHH', head[28:34])
                name, extra, comment = z[at + 46:at + 46 + n], z[at + 46 + n:at + 46 + n + e], z[at + 46 + n + e:at + 46 + n + e + c]
                csize, usize = struct.unpack('<II', head[20:28]); local = struct.unpack('<I', head[42:46])[0]
                head[20:28] = struct.pack('<II', 0xFFFFFFFF, 0xFFFFFFFF); head[42:46] = struct.pack('<I', 0xFFFFFFFF)
                z64 = struct.pack('<HHQQQ', 1, 24, usize, csize, local)
                head[30:32] = struct.pack('<H', len(z64) + len(extra))
                entries.append(bytes(head) + name + z64 + extra + comment)
                at += 46 + n + e + c
            cd = b''.join(entries)
            body = z[:offset]
            rec64 = struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, count, count, len(cd), len(body))
            loc = struct.pack('<IIQI', 0x07064b50, 0, len(body) + len(cd), 1)
            eocd = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
            open(d + '/zip64.npz', 'wb').write(body + cd + rec64 + loc + eocd)
            # numpy itself reads the rewritten archive.
            with np.load(d + '/zip64.npz') as f:
                assert (f['a'] == np.arange(30).reshape(10, 3)).all()
            """, [directory])
        let archive = try NPZArchive(path: directory + "/zip64.npz")
        #expect(archive.arrays.map(\.name) == ["a", "b"])
        for (name, array) in archive.arrays {
            #expect(try allBytes(array) == readBytes("\(directory)/\(name).raw"), "\(name)")
        }
    }

    @Test("NPZ: a flipped data byte fails the member's CRC-32; truncation and non-zip files are named")
    func npzCorruption() throws {
        let directory = scratchDirectory("stoke-npz")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, numpy as np
            d = sys.argv[1]
            np.savez(d + '/a.npz', data=np.arange(1000, dtype=np.int32))
            np.savez_compressed(d + '/c.npz', data=np.arange(1000, dtype=np.int32))
            """, [directory])
        var bytes = try readBytes(directory + "/a.npz")
        // Element 500 (int32 little-endian 500 = f4 01 00 00) lies in the stored member's data.
        let needle: [UInt8] = [0xF4, 0x01, 0x00, 0x00, 0xF5, 0x01]
        let at = try #require((0..<(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle })
        bytes[at] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/flipped.npz"))
        let crc = #expect(throws: SourceError.self) { try NPZArchive(path: directory + "/flipped.npz") }
        #expect(crc?.description.contains("flipped.npz:data.npy: CRC-32 mismatch") == true, "\(String(describing: crc))")

        var compressed = try readBytes(directory + "/c.npz")
        compressed[60] ^= 0xFF  // inside the deflate stream, after the 30-byte local header and name
        try Data(compressed).write(to: URL(fileURLWithPath: directory + "/bad-deflate.npz"))
        let inflate = #expect(throws: SourceError.self) { try NPZArchive(path: directory + "/bad-deflate.npz") }
        #expect(inflate?.description.hasPrefix(directory + "/bad-deflate.npz:data.npy") == true, "\(String(describing: inflate))")

        let original = try readBytes(directory + "/a.npz")
        try Data(original[..<(original.count - 30)]).write(to: URL(fileURLWithPath: directory + "/cut.npz"))
        let cut = #expect(throws: SourceError.self) { try NPZArchive(path: directory + "/cut.npz") }
        #expect(cut?.description.hasPrefix(directory + "/cut.npz") == true)
        try Data("not a zip at all".utf8).write(to: URL(fileURLWithPath: directory + "/text.npz"))
        let text = #expect(throws: SourceError.self) { try NPZArchive(path: directory + "/text.npz") }
        #expect(text?.description.contains("no end-of-central-directory record") == true)
    }

    @Test("CSV: header, label column, quotes, spaces, blank lines and CRLF; values match the text")
    func csvRoundTrip() throws {
        let directory = scratchDirectory("stoke-csv")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/iris.csv"
        try Data("sepal_length, sepal_width,\"species\",petal\r\n5.1,3.5,0,1.4e0\r\n\r\n4.9, 3.0 ,1,-0.2\n6.25,2.5,\"2\",7\n".utf8)
            .write(to: URL(fileURLWithPath: path))
        let table = try CSVTable(path: path, labelColumn: "species")
        #expect(table.columns == ["sepal_length", "sepal_width", "petal"])
        #expect(table.data.shape == [3, 3])
        let expected: [Float] = [5.1, 3.5, 1.4, 4.9, 3.0, -0.2, 6.25, 2.5, 7]
        #expect(try allBytes(table.data) == expected.withUnsafeBytes { Array($0) })
        #expect(try allBytes(try #require(table.labels)) == [Int64(0), 1, 2].withUnsafeBytes { Array($0) })
        let unlabelled = try CSVTable(path: path)
        #expect(unlabelled.data.shape == [3, 4])
        #expect(unlabelled.labels == nil)
    }

    @Test("CSV: a bad value names the line and column; ragged rows and a missing label column are refused")
    func csvErrors() throws {
        let directory = scratchDirectory("stoke-csv")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cases: [(String, String?, String)] = [
            ("a,b,label\n1,2,0\n3,x7,1\n", "label", "line 3, column 2 'b': 'x7' is not a number"),
            ("a,b,label\n1,2,0\n3,4,1.5\n", "label", "line 3, column 3 'label': label '1.5' is not an integer"),
            ("a,b\n1,2\n3\n", nil, "line 3 has 1 fields, the header has 2"),
            ("a,b\n1,\n", nil, "line 2, column 2 'b': empty value"),
            ("a,b\n1,2\n", "kind", "no column named 'kind' in the header (a, b)"),
            ("a,a\n1,2\n", nil, "column name 'a' appears twice"),
            ("a,b\n", nil, "no rows"),
        ]
        for (index, (text, label, message)) in cases.enumerated() {
            let path = "\(directory)/bad\(index).csv"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: SourceError.self) { try CSVTable(path: path, labelColumn: label) }
            #expect(error?.description == "\(path): " + (error?.reason ?? ""), "\(String(describing: error))")
            #expect(error?.description.contains(message) == true, "case \(index): \(String(describing: error))")
        }
    }
}
