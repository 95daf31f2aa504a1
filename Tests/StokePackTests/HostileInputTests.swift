import Foundation
import StokePack
import Testing

/// Deterministic pseudo-random numbers (SplitMix64), so a failure reproduces.
private struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("hostile source bytes")
struct HostileInputTests {
    @Test("corrupted and truncated NPZ, IDX, PNM, PNG and JPEG files either read or throw SourceError naming the file; never crash")
    func corruptedSourcesNeverCrash() throws {
        let directory = scratchDirectory("stoke-hostile")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, gzip, numpy as np
            from PIL import Image
            d = sys.argv[1]
            rng = np.random.default_rng(2)
            np.savez(d + '/a.npz', x=rng.random((20, 3)), y=np.arange(20))
            np.savez_compressed(d + '/c.npz', x=rng.random((20, 3)), y=np.arange(20))
            idx = bytes([0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6]) + rng.integers(0, 255, 120, dtype=np.uint8).tobytes()
            open(d + '/a.idx', 'wb').write(idx)
            open(d + '/a.idx.gz', 'wb').write(gzip.compress(idx))
            im = Image.fromarray(rng.integers(0, 255, size=(12, 10, 3), dtype=np.uint8))
            im.save(d + '/a.png'); im.save(d + '/a.ppm'); im.save(d + '/a.jpg', quality=80)
            """, [directory])
        var random = Generator(state: 42)
        let readers: [(String, (String) throws -> Void)] = [
            ("a.npz", { _ = try NPZArchive(path: $0) }), ("c.npz", { _ = try NPZArchive(path: $0) }),
            ("a.idx", { _ = try IDXArray(path: $0) }), ("a.idx.gz", { _ = try IDXArray(path: $0) }),
            ("a.png", { _ = try ImageDecoder.decode(path: $0) }), ("a.ppm", { _ = try ImageDecoder.decode(path: $0) }),
            ("a.jpg", { _ = try ImageDecoder.decode(path: $0) }),
        ]
        var failures = 0, successes = 0
        for (name, read) in readers {
            let original = try readBytes("\(directory)/\(name)")
            for trial in 0..<40 {
                var bytes = original
                if trial % 4 == 0 {
                    bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &random)))
                } else {
                    for _ in 0..<(1 + trial % 5) {
                        bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    }
                }
                let path = "\(directory)/t-\(trial)-\(name)"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                do {
                    try read(path)
                    successes += 1
                } catch let error as SourceError {
                    #expect(error.path.hasPrefix(path), "\(name) trial \(trial): \(error)")
                    failures += 1
                }
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        // Both outcomes occur: flips in pixel data decode, flips in headers and checksums are refused.
        #expect(failures > 0 && successes > 0, "failures \(failures), successes \(successes)")
    }

    @Test("forged sizes (gzip trailer, zip member size, PNG and JPEG dimensions) are refused before any large allocation")
    func forgedSizes() throws {
        let directory = scratchDirectory("stoke-forged")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try runPython("""
            import sys, gzip, struct, zlib, numpy as np
            from PIL import Image
            d = sys.argv[1]
            idx = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
            z = bytearray(gzip.compress(idx)); z[-4:] = b'\\xff\\xff\\xff\\xff'
            open(d + '/trailer.gz', 'wb').write(bytes(z))
            np.savez_compressed(d + '/big.npz', x=np.zeros(100, np.uint8))
            b = bytearray(open(d + '/big.npz', 'rb').read())
            cd = b.rindex(b'PK\\x01\\x02')
            b[cd + 24:cd + 28] = struct.pack('<I', 0xFFFFFFF0)   # uncompressed size in the central directory
            open(d + '/big.npz', 'wb').write(bytes(b))
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(d + '/small.png')
            p = bytearray(open(d + '/small.png', 'rb').read())
            p[16:24] = struct.pack('>II', 10000, 10000)
            p[29:33] = struct.pack('>I', zlib.crc32(bytes(p[12:29])))   # a valid IHDR CRC for the forged size
            open(d + '/huge.png', 'wb').write(bytes(p))
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d + '/small.jpg')
            j = bytearray(open(d + '/small.jpg', 'rb').read())
            sof = j.index(b'\\xff\\xc0')
            j[sof + 5:sof + 9] = struct.pack('>HH', 10000, 10000)
            open(d + '/huge.jpg', 'wb').write(bytes(j))
            """, [directory])
        // zlib checks the trailer's size against the data; the 4 GiB hint was not allocated first.
        let trailer = #expect(throws: SourceError.self) { try IDXArray(path: directory + "/trailer.gz") }
        #expect(trailer?.reason.contains("incorrect length check") == true, "\(String(describing: trailer))")
        let zip = #expect(throws: SourceError.self) { try NPZArchive(path: directory + "/big.npz") }
        // The member's NPY header (inflated from its first bytes) disagrees with the size the archive declares.
        #expect(zip?.reason.contains("refused before inflating") == true, "\(String(describing: zip))")
        for name in ["huge.png", "huge.jpg"] {
            let error = #expect(throws: SourceError.self) { try ImageDecoder.decode(path: "\(directory)/\(name)") }
            #expect(error?.reason.contains("more than a") == true, "\(name): \(String(describing: error))")
        }
    }
}
