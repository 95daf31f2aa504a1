import ArgumentParser
import Foundation
import StokeStore

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the main job on its embedded default and report what it measured.",
        discussion: "Until the loader and engine land, this packs a generated Fashion-MNIST-shaped dataset, inspects, verifies and reads it back.")

    @Option(name: .long, help: "Where to write the demo's files.") var directory: String = "stoke-demo"
    @Option(name: .long, help: "Samples to generate.") var samples: Int = 60_000
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = directory + "/generated.h5"
            print("stoke demo: a generated dataset with Fashion-MNIST's shapes (\(samples) samples of 1x28x28 u8 + int64 labels)")
            let images = FieldSpec(name: "image", dtype: .u8, sampleShape: [1, 28, 28])
            let labels = FieldSpec(name: "label", dtype: .i64, sampleShape: [])
            var options = StoreWriteOptions()
            options.overwrite = true
            let started = Date()
            let writer = try StoreWriter(path: path, fields: [images, labels], options: options)
            var generator = SplitMix64(seed: 42)
            let batch = 1000
            var produced = 0
            while produced < samples {
                let count = min(batch, samples - produced)
                var pixels = [UInt8](repeating: 0, count: count * images.sampleBytes)
                var classes = [Int64](repeating: 0, count: count)
                for sample in 0..<count {
                    let label = Int(generator.next() % 10)
                    classes[sample] = Int64(label)
                    // A blurry class-dependent blob plus noise: compressible like real images.
                    for y in 0..<28 {
                        for x in 0..<28 {
                            let dx = x - 8 - label, dy = y - 14
                            let value = max(0, 255 - (dx * dx + dy * dy) * 3) / 8 * 8 + (generator.next() % 64 == 0 ? 3 : 0)
                            pixels[sample * 784 + y * 28 + x] = UInt8(clamping: value)
                        }
                    }
                }
                try writer.append("image", values: pixels)
                try writer.append("label", values: classes)
                produced += count
            }
            try writer.finish()
            let packSeconds = Date().timeIntervalSince(started)
            let report = try InspectReport(path: path)
            let store = try Store(path: path, options: StoreReadOptions(verifyChecksums: true))
            var chunks = 0
            for field in store.fields { chunks += try field.verify() }
            let field = try store.field("image")
            var buffer = [UInt8](repeating: 0, count: field.rawBytes)
            let readStart = Date()
            unsafe try buffer.withUnsafeMutableBytes {
                unsafe try field.readRows(0..<field.rows, into: $0, workers: ProcessInfo.processInfo.activeProcessorCount)
            }
            let readSeconds = Date().timeIntervalSince(readStart)
            if json {
                var document = report.json
                document["pack_seconds"] = packSeconds
                document["verified_chunks"] = chunks
                document["read_decoded_bytes_per_s"] = Double(field.rawBytes) / max(readSeconds, 1e-9)
                printJSON(document)
            } else {
                print(String(format: "packed in %.2f s", packSeconds))
                report.printTable()
                print("verify: \(chunks) chunks decode and match their Fletcher-32 checksums")
                print(String(format: "read back: %@ of images decoded in %.3f s (%.0f MB/s)", formatBytes(field.rawBytes),
                             readSeconds, Double(field.rawBytes) / max(readSeconds, 1e-9) / 1e6))
            }
        }
    }
}
