import Foundation
import StokePack
import Testing

/// Inputs that stopped a fuzz target (kept in Fuzz/corpus/<target>/regression-*), as suite tests.
@Suite("fuzz regressions: pack sources")
struct PackFuzzRegressionTests {
    @Test("IDX: a 16-byte header declaring 218 million samples of 0 elements is refused, not looped over")
    func idxEmptySamples() throws {
        let directory = NSTemporaryDirectory() + "stoke-fuzz-regression-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/empty.idx"
        // u8, rank 3, shape [0x0D000000, 0, 0x00040508]: Fuzz/corpus/idx/regression-empty-samples
        try Data([0, 0, 0x08, 3, 0x0D, 0, 0, 0, 0, 0, 0, 0, 0, 4, 5, 8]).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: SourceError.self) { try IDXArray(path: path) }
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("218103808 samples of 0 elements") == true)
    }
}
