import Foundation
import StokeBench
import StokeEngine
import StokeStore
import Testing

@Suite("calibration from a store")
struct CalibrationRunTests {
    @Test("CalibrationRun observes exactly the first N samples of a store, as the loader feeds them")
    func firstSamples() throws {
        let directory = NSTemporaryDirectory() + "stoke-calibration-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/store.h5"
        var options = StoreWriteOptions()
        options.chunking = .samples(64)
        let writer = try StoreWriter(path: path, fields: [FieldSpec(name: "image", dtype: .u8, sampleShape: [4]),
                                                          FieldSpec(name: "label", dtype: .i64, sampleShape: [])], options: options)
        // Samples 0..<300 hold pixels up to 99; later ones 250, which calibration must not see.
        var pixels = [UInt8](repeating: 250, count: 4000)
        for index in 0..<1200 { pixels[index] = UInt8(index % 100) }
        try writer.append("image", values: pixels)
        let labels: [Int64] = (0..<1000).map { Int64($0 % 3) }
        try writer.append("label", values: labels)
        try writer.finish()

        let model = try SequentialModel(layers: [.linear(inFeatures: 4, outFeatures: 3)], sampleShape: [4], seed: 3).model()
        let table = try CalibrationRun.run(model: model, storePath: path, samples: 300, method: .minMax, batchSize: 128)
        // No normalization recorded: the loader widens bytes to floats.
        #expect(table.ranges["input"] == 0...99)
        let output = try #require(table.ranges["output"])
        #expect(output.contains(0) && output.upperBound > output.lowerBound)
        let quantized = try model.quantizedStatic(calibration: table)
        #expect(quantized.quantizedNodeCount == 1)
        #expect(throws: (any Error).self) { try CalibrationRun.run(model: model, storePath: path, samples: 0, method: .mse) }
    }
}
