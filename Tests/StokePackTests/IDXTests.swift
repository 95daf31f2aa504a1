import Foundation
import StokePack
import StokeStore
import Testing

@Suite("IDX source and gzip")
struct IDXTests {
    @Test("Fashion-MNIST t10k packs byte-identical to the source (gunzipped by Python)")
    func fashionMNISTTest() throws {
        let directory = scratchDirectory("stoke-idx")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let imagesPath = "\(fashionMNIST)/t10k-images-idx3-ubyte.gz", labelsPath = "\(fashionMNIST)/t10k-labels-idx1-ubyte.gz"
        try runPython("""
            import gzip, sys
            open(sys.argv[3], 'wb').write(gzip.open(sys.argv[1]).read()[16:])
            open(sys.argv[4], 'wb').write(gzip.open(sys.argv[2]).read()[8:])
            """, [imagesPath, labelsPath, directory + "/images.raw", directory + "/labels.raw"])
        let images = try IDXArray(path: imagesPath)
        #expect(images.dtype == .u8)
        #expect(images.shape == [10000, 28, 28])
        let labels = try IDXArray(path: labelsPath)
        let values = try labels.int64Values()
        let store = directory + "/t10k.h5"
        let summary = try ArrayPacker.pack(
            fields: [
                PackField(name: "image", source: images, sampleShape: [1, 28, 28]),
                PackField(name: "label", source: MemoryArray(path: labelsPath, dtype: .i64, shape: [values.count], values: values)),
            ],
            to: store, options: StoreWriteOptions(), metadata: [])
        #expect(summary.samples == 10000)
        let reader = try Store(path: store)
        let image = try reader.field("image")
        #expect(image.sampleShape == [1, 28, 28])
        #expect(try image.read(0..<10000, as: UInt8.self) == readBytes(directory + "/images.raw"))
        let label = try reader.field("label")
        #expect(label.dtype == .i64)
        #expect(try label.read(0..<10000, as: Int64.self) == readBytes(directory + "/labels.raw").map(Int64.init))
    }

    @Test("raw IDX with big-endian int16/int32/float32 elements; malformed headers name the file")
    func rawAndMalformed() throws {
        let directory = scratchDirectory("stoke-idx")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Shape [2, 3] int16: 1 2 3 / -4 5 6, big-endian.
        let int16: [UInt8] = [0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 0, 2, 0, 3, 0xFF, 0xFC, 0, 5, 0, 6]
        try Data(int16).write(to: URL(fileURLWithPath: directory + "/a.idx"))
        let array = try IDXArray(path: directory + "/a.idx")
        #expect(array.dtype == .i16)
        #expect(array.shape == [2, 3])
        var rows: [UInt8] = []
        try array.forEachBatch(batchRows: 1) { _, bytes in rows += bytes }
        #expect(rows == [1, 0, 2, 0, 3, 0, 0xFC, 0xFF, 5, 0, 6, 0])
        #expect(try array.int64Values() == [1, 2, 3, -4, 5, 6])

        let float32: [UInt8] = [0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0xC0, 0, 0]  // [1.5]
        try Data(float32).write(to: URL(fileURLWithPath: directory + "/f.idx"))
        var floats: [UInt8] = []
        try IDXArray(path: directory + "/f.idx").forEachBatch(batchRows: 4) { _, bytes in floats += bytes }
        #expect(floats == [0, 0, 0xC0, 0x3F])

        let cases: [([UInt8], String)] = [
            ([1, 0, 8, 1, 0, 0, 0, 1, 7], "not an IDX file"),
            ([0, 0, 0x07, 1, 0, 0, 0, 1, 7], "type code 0x7"),
            ([0, 0, 8, 3, 0, 0, 0, 1], "runs past the end"),
            ([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3], "needs 4 bytes after the header, the file has 3"),
        ]
        for (index, (bytes, message)) in cases.enumerated() {
            let path = directory + "/bad\(index).idx"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: SourceError.self) { try IDXArray(path: path) }
            #expect(error?.description.hasPrefix(path) == true)
            #expect(error?.description.contains(message) == true, "\(String(describing: error))")
        }
    }

    @Test("gzip: multi-member files decode whole; truncated and corrupt ones are refused with the file named")
    func gzipErrors() throws {
        let directory = scratchDirectory("stoke-gz")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import gzip, sys, random
            d = sys.argv[1]
            random.seed(4)
            payload = bytes([0, 0, 8, 1, 0, 0, 0, 200]) + bytes(random.randrange(256) for _ in range(200))
            open(d + '/whole.raw', 'wb').write(payload)
            # Two gzip members, split mid-way through the data, as `cat a.gz b.gz` makes.
            open(d + '/multi.gz', 'wb').write(gzip.compress(payload[:100]) + gzip.compress(payload[100:]))
            full = gzip.compress(payload)
            open(d + '/truncated.gz', 'wb').write(full[:len(full) // 2])
            corrupt = bytearray(full); corrupt[12] ^= 0xFF; corrupt[13] ^= 0x55
            open(d + '/corrupt.gz', 'wb').write(bytes(corrupt))
            open(d + '/garbage.gz', 'wb').write(full + b'xyz')
            """, [directory])
        let whole = try IDXArray(path: directory + "/multi.gz")
        var bytes: [UInt8] = []
        try whole.forEachBatch(batchRows: 64) { _, batch in bytes += batch }
        #expect(bytes == Array(try readBytes(directory + "/whole.raw").dropFirst(8)))
        for (name, message) in [("truncated", "truncated"), ("corrupt", "corrupt"), ("garbage", "trailing garbage")] {
            let path = "\(directory)/\(name).gz"
            let error = #expect(throws: SourceError.self) { try IDXArray(path: path) }
            #expect(error?.description.hasPrefix(path) == true, "\(String(describing: error))")
            #expect(error?.description.contains(message) == true, "\(name): \(String(describing: error))")
        }
    }

    @Test("SHA-256 matches the FIPS 180-4 test vectors across block boundaries")
    func sha256Vectors() {
        func digest(_ text: String) -> String { Array(text.utf8).withUnsafeBytes { SHA256.hex($0) } }
        #expect(digest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Streaming in odd pieces gives the one-shot digest.
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        var hasher = SHA256()
        var offset = 0
        for step in [1, 63, 64, 65, 1000, 7] where offset < million.count {
            hasher.update(Array(million[offset..<min(million.count, offset + step)]))
            offset += step
        }
        hasher.update(Array(million[offset...]))
        #expect(hasher.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
