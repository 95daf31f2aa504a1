import Dispatch
import Foundation
import Testing
@testable import StokeEngine

/// Samples/s of Stoke vs onnxruntime on the interop MLP and CNN. Off by default (tests check
/// behaviour, not timing); run it on a release build:
///     STOKE_ENGINE_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ThroughputBenchmark
/// Stoke and onnxruntime alternate over three rounds and the best round of each is reported, so a
/// burst of load from other processes does not decide the comparison.
@Suite("Throughput benchmark", .enabled(if: ProcessInfo.processInfo.environment["STOKE_ENGINE_BENCH"] != nil))
struct ThroughputBenchmark {
    @Test func mlpAndCNNAgainstOnnxRuntime() throws {
        let environment = ProcessInfo.processInfo.environment
        let batch = Int(environment["STOKE_ENGINE_BENCH_BATCH"] ?? "") ?? 256
        let threads = Int(environment["STOKE_ENGINE_BENCH_THREADS"] ?? "") ?? 2
        let generated = try TestSupport.generatedDirectory.get()
        print("[bench] GEMM backend \(GemmBackend.selected.rawValue) (OpenBLAS core: \(GemmBackend.openBLASCoreName))")
        var best: [String: Double] = [:]
        var sessions: [String: (Session, Tensor)] = [:]
        for name in ["mlp", "cnn"] {
            let model = try Model.load(onnx: generated.appendingPathComponent("interop/\(name)/model.onnx").path)
            let shape = name == "mlp" ? [batch, 784] : [batch, 1, 28, 28]
            sessions[name] = (Session(model: model, threads: threads), GraphBuilding.random(shape, seed: 1))
        }
        for _ in 0..<3 {
            for name in ["mlp", "cnn"] {
                let (session, x) = try #require(sessions[name])
                for _ in 0..<3 { try session.run(["input": x]) { _ in } }
                var runs = 0
                let start = DispatchTime.now().uptimeNanoseconds
                var elapsed = 0.0
                while elapsed < 1 {
                    try session.run(["input": x]) { _ in }
                    runs += 1
                    elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                }
                best["stoke \(name)"] = max(best["stoke \(name)"] ?? 0, Double(runs * batch) / elapsed)
            }
            let (status, output) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent("interop_models.py").path,
                                                              "--bench", String(batch), String(threads)])
            #expect(status == 0, "\(output)")
            for line in output.split(separator: "\n") where line.hasPrefix("onnxruntime") {
                // "onnxruntime 1.32.0 mlp batch=256 threads=2: 123 samples/s"
                let words = line.split(separator: " ")
                guard words.count >= 6, let rate = Double(words[words.count - 2]) else { continue }
                best["onnxruntime \(words[2])"] = max(best["onnxruntime \(words[2])"] ?? 0, rate)
            }
        }
        for name in ["mlp", "cnn"] {
            let ours = best["stoke \(name)"] ?? 0, theirs = best["onnxruntime \(name)"] ?? 0
            print("[bench] \(name) batch=\(batch) threads=\(threads): stoke \(Int(ours)) samples/s, onnxruntime \(Int(theirs)) samples/s (\(String(format: "%.2f", ours / max(theirs, 1)))x)")
            let (session, x) = try #require(sessions[name])
            let profile = try session.profile(["input": x], repeats: 5)
            let total = profile.reduce(0) { $0 + $1.seconds }
            for timing in profile.sorted(by: { $0.seconds > $1.seconds }).prefix(4) {
                print("[bench]   \(timing.node) (\(timing.opType)): \(String(format: "%.1f", 100 * timing.seconds / total))%")
            }
        }
    }
}
