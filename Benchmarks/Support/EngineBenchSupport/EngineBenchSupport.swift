import Foundation
import StokeEngine

// What engine-ratios and quant-ratios share: the two benchmark models, timing and reporting helpers,
// and where the project's Python lives.

/// The load average (1, 5, 15 minutes) as /proc/loadavg prints it, for every report.
public func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// Monotonic time, seconds.
public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
public func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
public func format(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }

public enum Paths {
    /// The repository root: this file is Benchmarks/Support/EngineBenchSupport/EngineBenchSupport.swift.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The venv's interpreter (numpy, onnx, onnxruntime), or `STOKE_BENCH_PYTHON`.
    public static var python: String {
        ProcessInfo.processInfo.environment["STOKE_BENCH_PYTHON"] ?? repositoryRoot.appendingPathComponent(".venv/bin/python3").path
    }
}

/// One of the benchmark models, built natively (and exported to ONNX for onnxruntime).
public struct BenchModel {
    public let name: String
    public let native: SequentialModel
    /// One sample's shape, without the batch axis.
    public let sampleShape: [Int]
}

/// The Fashion-MNIST-sized MLP 784-512-256-10 and small CNN (two 3×3 convs + pools + two FC), seeded.
public func models() throws -> [BenchModel] {
    let mlp = try SequentialModel(layers: [
        .linear(inFeatures: 784, outFeatures: 512), .relu, .linear(inFeatures: 512, outFeatures: 256), .relu,
        .linear(inFeatures: 256, outFeatures: 10),
    ], sampleShape: [784], seed: 1)
    let cnn = try SequentialModel(layers: [
        .conv2d(inChannels: 1, outChannels: 16, kernelSize: 3, padding: 1), .relu, .maxPool2d(kernelSize: 2),
        .conv2d(inChannels: 16, outChannels: 32, kernelSize: 3, padding: 1), .relu, .maxPool2d(kernelSize: 2),
        .flatten, .linear(inFeatures: 32 * 7 * 7, outFeatures: 128), .relu, .linear(inFeatures: 128, outFeatures: 10),
    ], sampleShape: [1, 28, 28], seed: 2)
    return [BenchModel(name: "mlp", native: mlp, sampleShape: [784]), BenchModel(name: "cnn", native: cnn, sampleShape: [1, 28, 28])]
}

/// FLOP/s of an M×K by K×N (constant) MatMul through the engine (the kernel its Gemm, MatMul and Conv
/// use), best of 3 measurements of at least 0.5 s each.
public func sgemmRate(m: Int, k: Int, n: Int, threads: Int) throws -> Double {
    func values(_ shape: [Int], seed: UInt64) -> Tensor {
        var state = seed
        return Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 23) - 1
        })
    }
    let graph = Graph(name: "sgemm", nodes: [Node(name: "matmul", opType: "MatMul", inputs: ["a", "b"], outputs: ["c"])],
                      initializers: ["b": values([k, n], seed: 7)],
                      inputs: [ValueInfo(name: "a", shape: [.fixed(m), .fixed(k)])], outputs: [ValueInfo(name: "c", shape: nil)])
    let session = Session(model: try Model(graph: graph, opset: 17), threads: threads)
    let a = values([m, k], seed: 8)
    for _ in 0..<2 { try session.run(["a": a]) { _ in } }
    var best = 0.0
    for _ in 0..<3 {
        var runs = 0
        let start = now()
        while now() - start < 0.5 {
            try session.run(["a": a]) { _ in }
            runs += 1
        }
        best = max(best, 2 * Double(m * n * k) * Double(runs) / (now() - start))
    }
    return best
}
