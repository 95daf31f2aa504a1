import Dispatch
import Foundation
import Testing
@testable import StokeEngine

/// Samples/s of Stoke vs onnxruntime on the interop MLP and CNN. Off by default (tests check
/// behaviour, not timing); run it on a release build:
///     STOKE_ENGINE_BENCH=1 swift test -c release --filter ThroughputBenchmark
@Suite("Throughput benchmark", .enabled(if: ProcessInfo.processInfo.environment["STOKE_ENGINE_BENCH"] != nil))
struct ThroughputBenchmark {
    @Test func mlpAndCNNAgainstOnnxRuntime() throws {
        let environment = ProcessInfo.processInfo.environment
        let batch = Int(environment["STOKE_ENGINE_BENCH_BATCH"] ?? "") ?? 256
        let threads = Int(environment["STOKE_ENGINE_BENCH_THREADS"] ?? "") ?? 2
        let generated = try TestSupport.generatedDirectory.get()
        for name in ["mlp", "cnn"] {
            let model = try Model.load(onnx: generated.appendingPathComponent("interop/\(name)/model.onnx").path)
            let session = Session(model: model, threads: threads)
            let shape = name == "mlp" ? [batch, 784] : [batch, 1, 28, 28]
            let x = GraphBuilding.random(shape, seed: 1)
            for _ in 0..<3 { _ = try session.run(["input": x]) }
            var runs = 0
            let start = DispatchTime.now().uptimeNanoseconds
            var elapsed = 0.0
            while elapsed < 2 {
                try session.run(["input": x]) { _ in }
                runs += 1
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            print("[bench] stoke \(name) batch=\(batch) threads=\(threads): \(Int(Double(runs * batch) / elapsed)) samples/s")
            let profile = try session.profile(["input": x], repeats: 5)
            let total = profile.reduce(0) { $0 + $1.seconds }
            for timing in profile.sorted(by: { $0.seconds > $1.seconds }).prefix(6) {
                print("[bench]   \(timing.node) (\(timing.opType)): \(String(format: "%.1f", 100 * timing.seconds / total))%")
            }
        }
        let (status, output) = try TestSupport.runPython([TestSupport.resources.appendingPathComponent("interop_models.py").path,
                                                          "--bench", String(batch), String(threads)])
        #expect(status == 0)
        for line in output.split(separator: "\n") { print("[bench] \(line)") }
    }
}
