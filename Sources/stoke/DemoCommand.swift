import ArgumentParser
import Foundation
import StokeLoader
import StokePack
import StokeStore

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the main job on its embedded default and report what it measured.",
        discussion: """
            Packs Fashion-MNIST (Debian's dataset-fashion-mnist; a generated dataset with the same shapes \
            when it is not installed) into train and test stores, inspects and verifies them, and streams them \
            through the loader. Training, compression and inference join as their issues land.
            """)

    static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

    @Option(name: .long, help: "Where to write the demo's files.") var directory: String = "stoke-demo"
    @Option(name: .long, help: "Samples of the generated dataset when Fashion-MNIST is not installed.") var samples: Int = 60_000
    @Flag(name: .long, help: "Use the generated dataset even when Fashion-MNIST is installed.") var generated = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func validate() throws {
        guard samples > 0 else { throw UsageError("--samples must be positive") }
    }

    func run() throws {
        try reportingErrors {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let useFashion = !generated && FileManager.default.fileExists(atPath: Demo.fashionMNIST + "/train-images-idx3-ubyte.gz")
            let dataset = useFashion ? "Fashion-MNIST (\(Demo.fashionMNIST))" : "a generated dataset with Fashion-MNIST's shapes (Fashion-MNIST is not installed)"
            if !json { print("stoke demo: \(dataset)") }
            var document: [String: Any] = ["dataset": useFashion ? "fashion-mnist" : "generated"]
            var stores: [(name: String, path: String)] = []
            for split in ["train", "test"] {
                let path = "\(directory)/\(split).h5"
                let started = Date()
                if useFashion {
                    try packFashion(split: split, to: path)
                } else {
                    try packGenerated(samples: split == "train" ? samples : max(1, samples / 6), seed: split == "train" ? 1 : 2, to: path)
                }
                document["\(split)_pack_seconds"] = Date().timeIntervalSince(started)
                stores.append((split, path))
            }
            var streams: [[String: Any]] = []
            for (split, path) in stores {
                let report = try InspectReport(path: path)
                let verified = try Store(path: path, options: StoreReadOptions(verifyChecksums: true)).fields.reduce(0) { $0 + (try $1.verify()) }
                var options = LoaderOptions()
                options.batchSize = 256
                options.order = split == "train" ? .chunkShuffle(window: 4) : .sequential
                options.seed = 42
                let loader = try Loader(store: Store(path: path), options: options)
                let started = ContinuousClock.now
                let epoch = try loader.epoch(0)
                var delivered = 0
                var checksum = 0.0
                while let batch = try epoch.next() {
                    delivered += batch.count
                    checksum += try batch.withField("image") { bytes, layout in
                        layout.dtype == .f32 ? Double(unsafe bytes.assumingMemoryBound(to: Float.self).first ?? 0) : 0
                    }
                }
                let elapsed = started.duration(to: .now)
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                let stats = epoch.stats
                let stream: [String: Any] = [
                    "store": split, "order": options.order.description, "samples": delivered, "seconds": seconds,
                    "samples_per_s": Double(delivered) / max(seconds, 1e-9), "batches": stats.batches,
                    "data_wait_fraction": stats.waitSeconds / max(seconds, 1e-9), "chunk_decodes": stats.chunkDecodes,
                    "normalized": loader.layouts.first { $0.name == "image" }?.dtype == .f32,
                    "pinned": loader.pinning.pinned, "verified_chunks": verified,
                ]
                streams.append(stream)
                document[split] = report.json
                if !json {
                    print("")
                    report.printTable()
                    print("verify: \(verified) chunks decode and match their Fletcher-32 checksums")
                    print(String(format: "loader (%@, batch 256, %@): %d samples in %.3f s = %.0f samples/s; %d chunk decodes; pinned buffers: %@",
                                 options.order.description, stream["normalized"] as? Bool == true ? "normalized to f32" : "u8",
                                 delivered, seconds, Double(delivered) / max(seconds, 1e-9), stats.chunkDecodes,
                                 loader.pinning.pinned ? "yes" : "no (\(loader.pinning.reason))"))
                }
            }
            document["streams"] = streams
            if json { printJSON(document) }
        }
    }

    /// Packs one split of Debian's Fashion-MNIST, with its usual normalization recorded for the loader.
    private func packFashion(split: String, to path: String) throws {
        let prefix = split == "train" ? "train" : "t10k"
        let images = try IDXArray(path: "\(Demo.fashionMNIST)/\(prefix)-images-idx3-ubyte.gz")
        let labelFile = try IDXArray(path: "\(Demo.fashionMNIST)/\(prefix)-labels-idx1-ubyte.gz")
        let labels = try labelFile.int64Values()
        var options = StoreWriteOptions()
        options.overwrite = true
        _ = try ArrayPacker.pack(
            fields: [
                PackField(name: "image", source: images, sampleShape: [1] + images.sampleShape),
                PackField(name: "label", source: MemoryArray(path: labelFile.path, dtype: .i64, shape: [labels.count], values: labels)),
            ],
            to: path, options: options, metadata: [("normalization", Demo.normalizationJSON)])
    }

    /// Fashion-MNIST's mean and std of pixel values on the 0–1 scale.
    static let normalizationJSON = #"{"field": "image", "mean": [0.2860], "std": [0.3530], "scale": 0.00392156862745098}"#

    /// A blurry class-dependent blob per sample: compressible like real images, learnable by class.
    private func packGenerated(samples: Int, seed: UInt64, to path: String) throws {
        let images = FieldSpec(name: "image", dtype: .u8, sampleShape: [1, 28, 28])
        let labels = FieldSpec(name: "label", dtype: .i64, sampleShape: [])
        var options = StoreWriteOptions()
        options.overwrite = true
        let writer = try StoreWriter(path: path, fields: [images, labels], options: options)
        try writer.setMetadata("normalization", json: Demo.normalizationJSON)
        var generator = SplitMix64(seed: seed)
        var produced = 0
        while produced < samples {
            let count = min(1000, samples - produced)
            var pixels = [UInt8](repeating: 0, count: count * images.sampleBytes)
            var classes = [Int64](repeating: 0, count: count)
            for sample in 0..<count {
                let label = Int(generator.next() % 10)
                classes[sample] = Int64(label)
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
    }
}
