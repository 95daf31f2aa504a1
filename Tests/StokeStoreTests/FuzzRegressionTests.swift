import Foundation
@testable import StokeStore
import Testing

/// Inputs that crashed a fuzz target (Fuzz/corpus/<target>/regression-*), replayed through the same entry
/// point as the target: each must now give an error, not a trap.
@Suite("fuzz regressions: store")
struct StoreFuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus").path

    static func regressionInputs(_ target: String) -> [String] {
        let folder = corpus + "/" + target
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasPrefix("regression-") }.sorted().map { folder + "/" + $0 }
    }

    /// The chunk-index target's input: object header address (4 bytes LE), rank - 1, rows per chunk
    /// (2 bytes LE), chunk count (2 bytes LE), then the HDF5 file.
    @Test("chunk B-tree scanner: object header blocks whose size overflows or runs past the file are refused")
    func chunkIndex() throws {
        let inputs = Self.regressionInputs("chunk-index")
        #expect(!inputs.isEmpty)
        let directory = NSTemporaryDirectory() + "stoke-fuzz-regression-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for input in inputs {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: input)))
            try #require(bytes.count >= 9)
            func little(_ range: Range<Int>) -> Int { bytes[range].reversed().reduce(0) { $0 << 8 | Int($1) } }
            let path = directory + "/file.h5"
            try Data(bytes[9...]).write(to: URL(fileURLWithPath: path))
            let file = try MappedFile(path: path)
            #expect(throws: ChunkBTree.ScanError.self, "\(input)") {
                try ChunkBTree.scan(
                    file: file, objectHeader: UInt64(little(0..<4)), rank: Int(bytes[4] % 4) + 1,
                    chunkRows: UInt64(max(1, little(5..<7))), chunkCount: little(7..<9) % 4097)
            }
        }
    }
}
