import Foundation
import StokePack
import StokeStore
import Testing

private func writeNPY(_ header: String, payload: [UInt8], version: UInt8 = 1, to path: String) throws {
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    var text = Array(header.utf8)
    let prefix = version == 1 ? 10 : 12
    while (prefix + text.count + 1) % 64 != 0 { text.append(0x20) }
    text.append(0x0A)
    if version == 1 {
        bytes += [UInt8(text.count & 0xFF), UInt8(text.count >> 8)]
    } else {
        bytes += [UInt8(text.count & 0xFF), UInt8((text.count >> 8) & 0xFF), 0, 0]
    }
    try Data(bytes + text + payload).write(to: URL(fileURLWithPath: path))
}

@Suite("NPY source")
struct NPYTests {
    let directory = NSTemporaryDirectory() + "stoke-npy-" + UUID().uuidString

    init() { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }

    @Test func readsBigEndianAndFortranOrder() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // 2 samples of 3 big-endian int16 values: [[1, 2, 3], [4, 5, 6]].
        let big = directory + "/big.npy"
        try writeNPY("{'descr': '>i2', 'fortran_order': False, 'shape': (2, 3), }", payload: [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6], to: big)
        let array = try NPYArray(path: big)
        #expect(array.dtype == .i16)
        #expect(array.shape == [2, 3])
        var collected: [UInt8] = []
        try array.forEachBatch(batchRows: 1) { _, bytes in collected += bytes }
        #expect(collected == [1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0])

        // The same values in Fortran order: column-major storage 1, 4, 2, 5, 3, 6.
        let fortran = directory + "/f.npy"
        try writeNPY("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }", payload: [1, 4, 2, 5, 3, 6], version: 2, to: fortran)
        var rows: [UInt8] = []
        try NPYArray(path: fortran).forEachBatch(batchRows: 2) { _, bytes in rows += bytes }
        #expect(rows == [1, 2, 3, 4, 5, 6])
    }

    @Test func malformedFilesGiveOneClearError() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cases: [(String, String, [UInt8])] = [
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 3), }", "needs 120 bytes", [0, 0, 0, 0]),
            ("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "field 'descr'", [UInt8](repeating: 0, count: 8)),
            ("{'descr': '<f4', 'shape': (1,), }", "'fortran_order'", [0, 0, 0, 0]),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", "0-d array", [0, 0, 0, 0]),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", "needs", []),
        ]
        for (index, (header, message, payload)) in cases.enumerated() {
            let path = directory + "/bad\(index).npy"
            try writeNPY(header, payload: payload, to: path)
            let error = #expect(throws: SourceError.self) { try NPYArray(path: path) }
            #expect(error?.description.contains(message) == true, "\(String(describing: error))")
            #expect(error?.description.hasPrefix(path) == true)
        }
        let notNPY = directory + "/text.npy"
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notNPY))
        #expect(throws: SourceError.self) { try NPYArray(path: notNPY) }
        #expect(throws: SourceError.self) { try NPYArray(path: directory + "/missing.npy") }
    }
}
