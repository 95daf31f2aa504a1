import Foundation
import StokeStore
import Testing
@testable import StokeEngine

/// Debian's Fashion-MNIST (dataset-fashion-mnist), read straight from its IDX files and normalized as
/// the demo's stores are: (x / 255 − 0.2860) / 0.3530.
enum FashionMNIST {
    static let directory = "/usr/share/datasets/fashion-mnist"
    static var installed: Bool { FileManager.default.fileExists(atPath: directory + "/train-images-idx3-ubyte.gz") }

    /// The first `count` samples of a split ("train" or "t10k") as [count, 1, 28, 28] floats and labels.
    static func load(_ split: String, count: Int) throws -> (images: [Float], labels: [Int64]) {
        func read(_ name: String) throws -> [UInt8] {
            let path = "\(directory)/\(split)-\(name)-ubyte.gz"
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return try data.withUnsafeBytes { try Gzip.decompress($0, path: path) }
        }
        let images = try read("images-idx3"), labels = try read("labels-idx1")
        let n = min(count, labels.count - 8)
        let pixels = images[16..<(16 + n * 784)].map { (Float($0) / 255 - 0.2860) / 0.3530 }
        return (pixels, labels[8..<(8 + n)].map { Int64($0) })
    }

    /// Trains `trainer` for `epochs` passes over the samples in fixed batches (no shuffling: the order
    /// is part of what a seed reproduces). With `teacher` logits, distillation steps.
    static func train(_ trainer: Trainer, _ data: (images: [Float], labels: [Int64]), epochs: Int, batch: Int = 100,
                      teacher: (logits: [Float], temperature: Float, alpha: Float)? = nil) throws {
        let count = data.labels.count, classes = trainer.classes
        for epoch in 0..<epochs {
            trainer.startEpoch(epoch)
            for start in stride(from: 0, to: count, by: batch) {
                let n = min(batch, count - start)
                _ = try data.images[(start * 784)..<((start + n) * 784)].withUnsafeBufferPointer { input in
                    try data.labels[start..<(start + n)].withUnsafeBufferPointer { labels in
                        if let teacher {
                            try teacher.logits[(start * classes)..<((start + n) * classes)].withUnsafeBufferPointer {
                                try trainer.distillationStep(input: input, labels: labels, teacherLogits: $0, count: n,
                                                             temperature: teacher.temperature, alpha: teacher.alpha)
                            }
                        } else {
                            try trainer.step(input: input, labels: labels, count: n)
                        }
                    }
                }
            }
        }
    }

    static func logits(_ trainer: Trainer, _ images: [Float]) throws -> [Float] {
        try images.withUnsafeBufferPointer { try trainer.logits(input: $0, count: images.count / 784) }
    }

    static func accuracy(_ logits: [Float], _ labels: [Int64], classes: Int = 10) -> Double {
        var correct = 0
        for row in labels.indices {
            let slice = logits[(row * classes)..<((row + 1) * classes)]
            if Int64(slice.indices.max { slice[$0] < slice[$1] }! - row * classes) == labels[row] { correct += 1 }
        }
        return Double(correct) / Double(labels.count)
    }
}
