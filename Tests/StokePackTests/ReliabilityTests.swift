import Foundation
import StokePack
import StokeStore
import Testing

/// Issue 19: hostile or careless inputs on the packing side give one clear error, never wrong data.
@Suite("packing reliability (issue 19)")
struct PackReliabilityTests {
    private func write(_ text: String, _ path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    @Test("r02: an image list with another header keeps integer labels; one non-integer label is refused with its line")
    func imageListLabels() throws {
        let directory = scratchDirectory("stoke-r02")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rows = (0..<12).map { "img\($0).png,\($0)" }
        try write((["filename,target"] + rows).joined(separator: "\n") + "\n", directory + "/header.csv")
        let headed = try ImageList.csv(directory + "/header.csv")
        #expect(headed.labels == (0..<12).map { Int64($0) })
        #expect(headed.classes == nil)
        #expect(headed.paths.count == 12)

        try write((rows + ["img0.png,3a"]).joined(separator: "\n") + "\n", directory + "/typo.csv")
        let typo = #expect(throws: SourceError.self) { try ImageList.csv(directory + "/typo.csv") }
        #expect(typo?.reason.hasPrefix("line 13: label '3a' is not an integer") == true, "\(String(describing: typo))")

        try write("a.png,dog\nb.png,7\n", directory + "/mixed.csv")
        let mixed = #expect(throws: SourceError.self) { try ImageList.csv(directory + "/mixed.csv") }
        #expect(mixed?.reason.hasPrefix("line 2: label '7' is an integer") == true, "\(String(describing: mixed))")

        // Class names stay class names; a header line is still skipped.
        try write("image,class\nx.png,dog\ny.png,cat\n", directory + "/named.csv")
        let named = try ImageList.csv(directory + "/named.csv")
        #expect(named.classes == ["cat", "dog"])
        #expect(named.labels == [1, 0])
    }

    @Test("r17: CSV cells follow a strict decimal grammar; NUL tails, hex floats and overflow are refused; nan/inf spelled out are kept")
    func csvGrammar() throws {
        let directory = scratchDirectory("stoke-r17")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cases: [(cell: String, reason: String)] = [
            ("3.5\0\0", "line 2, column 1 'a': '3.5\0\0' is not a number (expected a plain decimal"),
            ("0x1p3", "line 2, column 1 'a': '0x1p3' is not a number (expected a plain decimal"),
            ("1e400", "line 2, column 1 'a': '1e400' is outside float32's range"),
            ("1.5.2", "line 2, column 1 'a': '1.5.2' is not a number (expected a plain decimal"),
            ("1e", "line 2, column 1 'a': '1e' is not a number (expected a plain decimal"),
            (".", "line 2, column 1 'a': '.' is not a number (expected a plain decimal"),
        ]
        for (cell, reason) in cases {
            try write("a,b\n\(cell),1\n", directory + "/t.csv")
            let error = #expect(throws: SourceError.self) { try CSVTable(path: directory + "/t.csv") }
            #expect(error?.reason.hasPrefix(reason) == true, "\(cell.debugDescription): \(String(describing: error))")
            // The message shows the NUL bytes as escapes, never raw.
            #expect(error?.description.contains("\0") == false)
        }
        try write("a,b,c,d\n1.5,-2.25e1,+.5,7.\nnan,-inf,Infinity,1E-3\n", directory + "/ok.csv")
        let table = try CSVTable(path: directory + "/ok.csv")
        let values: [Float] = table.data.storage.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        #expect(Array(values[0..<4]) == [1.5, -22.5, 0.5, 7])
        #expect(values[4].isNaN && values[5] == -.infinity && values[6] == .infinity && values[7] == Float("1E-3"))
    }

    @Test("r17: control characters from a file reach error messages escaped")
    func escapedErrors() throws {
        let directory = scratchDirectory("stoke-r17e")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write("a,\u{1B}[31mRED\u{1B}[0m\u{1B}]0;title\u{07},species\n1,2,0\n", directory + "/esc.csv")
        let error = #expect(throws: SourceError.self) { try CSVTable(path: directory + "/esc.csv", labelColumn: "nope") }
        let text = error?.description ?? ""
        #expect(!text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(text.debugDescription)")
        #expect(text.contains("\\e[31mRED\\e[0m\\e]0;title\\u{7}"))
    }

    @Test("r10: with a validation store, both stores appear together or neither; a failed rename restores what was there")
    func validationPairIsAtomic() throws {
        let directory = scratchDirectory("stoke-r10")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let values = (0..<(200 * 8)).map { Float($0) }
        let source = MemoryArray(path: "x", dtype: .f32, shape: [200, 8], values: values)
        var options = StoreWriteOptions()
        options.overwrite = true
        func pack(fraction: Double) throws {
            _ = try ArrayPacker.pack(
                fields: [PackField(name: "data", source: source)], to: directory + "/train.h5", options: options, metadata: [],
                validation: .init(split: SampleSplit(fraction: fraction), path: directory + "/val.h5", metadata: []))
        }
        try pack(fraction: 0.2)
        let train = try readBytes(directory + "/train.h5"), val = try readBytes(directory + "/val.h5")

        // The validation path cannot be replaced: train.h5, renamed first, is put back.
        try FileManager.default.removeItem(atPath: directory + "/val.h5")
        try FileManager.default.createDirectory(atPath: directory + "/val.h5/keep", withIntermediateDirectories: true)
        #expect(throws: StoreError.self) { try pack(fraction: 0.3) }
        #expect(try readBytes(directory + "/train.h5") == train)
        try FileManager.default.removeItem(atPath: directory + "/val.h5")
        try Data(val).write(to: URL(fileURLWithPath: directory + "/val.h5"))

        // The train path cannot be replaced: val.h5 is left as it was.
        try FileManager.default.removeItem(atPath: directory + "/train.h5")
        try FileManager.default.createDirectory(atPath: directory + "/train.h5/keep", withIntermediateDirectories: true)
        #expect(throws: StoreError.self) { try pack(fraction: 0.3) }
        #expect(try readBytes(directory + "/val.h5") == val)
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(left == ["train.h5", "val.h5"], "\(left)")
    }

    @Test("r15: a store with a corrupt chunk is not 'up to date' for the same command and sources")
    func upToDateChecksChunks() throws {
        let directory = scratchDirectory("stoke-r15")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.h5"
        let source = MemoryArray(path: "x", dtype: .f32, shape: [200, 64], values: (0..<(200 * 64)).map { Float($0 % 97) })
        let sources = [SourceRecord(path: "x.npy", bytes: 1, sha256: "00")]
        let arguments = ["pack", "--from", "npy", "x.npy", "-o", path]
        let provenance = ProvenanceDocument(arguments: arguments, command: "stoke", sources: sources).json()
        _ = try ArrayPacker.pack(fields: [PackField(name: "data", source: source)], to: path, options: StoreWriteOptions(), metadata: [("provenance", provenance)])
        #expect(ExistingStore.check(path: path, arguments: arguments, sources: sources) == .upToDate)
        let offset = try #require(try Store(path: path).field("data").chunkIndex?.first?.offset)
        var bytes = try readBytes(path)
        bytes[Int(offset) + 100] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let state = ExistingStore.check(path: path, arguments: arguments, sources: sources)
        guard case .stale(let reason) = state else {
            Issue.record("expected stale, got \(state)")
            return
        }
        #expect(reason.contains("damaged") && reason.contains("chunk 0"), "\(reason)")
    }

    @Test("r09: an NPZ member whose NPY header declares more than the member holds is refused before it is inflated")
    func npzBomb() throws {
        let directory = scratchDirectory("stoke-r09")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, zipfile, struct
            def header(descr, shape):
                d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
                d = d + ' ' * ((64 - ((10 + len(d) + 1) % 64)) % 64) + '\\n'
                return b'\\x93NUMPY\\x01\\x00' + struct.pack('<H', len(d)) + d.encode()
            with zipfile.ZipFile(sys.argv[1] + '/bomb.npz', 'w', zipfile.ZIP_DEFLATED) as z:
                with z.open('data.npy', 'w', force_zip64=True) as f:
                    f.write(header('<f4', (20000, 1000, 100)))
                    for _ in range(4): f.write(b'\\0' * (1 << 22))
            """, [directory])
        let started = Date()
        let error = #expect(throws: SourceError.self) { try NPZArchive(path: directory + "/bomb.npz") }
        #expect(error?.reason.contains("the NPY header declares 8000000128 bytes") == true, "\(String(describing: error))")
        #expect(Date().timeIntervalSince(started) < 5)
    }
}
