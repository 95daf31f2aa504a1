import Foundation
import StokeEngine
import Testing

/// Train/test stores of the generated Fashion-MNIST stand-in and a small trained MLP, made once for
/// the suite (every test only reads them).
private let fixture: Result<String, any Error> = {
    let directory = temporaryDirectory("stoke-quantize-")
    do {
        let data = try execute(stokeBinary, ["demo", "--generated", "--samples", "2000", "--directory", directory, "--data-only"])
        guard data.status == 0 else { throw FixtureError(message: "demo --data-only: \(data.stderr)") }
        let train = try execute(stokeBinary, ["train", directory + "/train.h5", "--arch", "mlp:784-32-16-10", "-o", directory + "/m.h5",
                                              "--epochs", "2", "--lr", "0.003", "--seed", "3"])
        guard train.status == 0 else { throw FixtureError(message: "train: \(train.stderr)") }
        return .success(directory)
    } catch {
        return .failure(error)
    }
}()

private struct FixtureError: Error, CustomStringConvertible { let message: String; var description: String { message } }

/// The numbers every before/after object must carry, sane.
private func expectMetrics(_ object: Any?, _ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let metrics = object as? [String: Any] else {
        Issue.record("no '\(label)' object", sourceLocation: sourceLocation)
        return
    }
    #expect(metrics["params"] as? Int == 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10, "\(label)", sourceLocation: sourceLocation)
    #expect(metrics["macs"] as? Int == 784 * 32 + 32 * 16 + 16 * 10, "\(label)", sourceLocation: sourceLocation)
    #expect(metrics["bytes"] as? Int ?? 0 > 0, "\(label)", sourceLocation: sourceLocation)
    #expect(metrics["samples_per_s"] as? Double ?? 0 > 0, "\(label)", sourceLocation: sourceLocation)
    #expect((0...1).contains(metrics["accuracy"] as? Double ?? -1), "\(label)", sourceLocation: sourceLocation)
}

@Suite("stoke quantize")
struct QuantizeCLITests {
    @Test func dynamicEndToEnd() throws {
        let directory = try fixture.get()
        let output = directory + "/dynamic.h5"
        let run = try execute(stokeBinary, ["quantize", directory + "/m.h5", "-o", output, "--eval", directory + "/test.h5", "--threads", "1", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let document = try #require(jsonObject(run.stdout))
        expectMetrics(document["before"], "before")
        expectMetrics(document["after"], "after")
        #expect(document["mode"] as? String == "dynamic" && document["quantized_nodes"] as? Int == 3)
        let before = try #require(document["before"] as? [String: Any]), after = try #require(document["after"] as? [String: Any])
        #expect(after["bytes"] as? Int ?? .max < (before["bytes"] as? Int ?? 0) / 2, "int8 weights")
        let drop = (before["accuracy"] as? Double ?? 0) - (after["accuracy"] as? Double ?? 0)
        #expect(abs(drop) < 0.02, "dynamic INT8 accuracy within 2 pp: \(drop)")
        // The saved file streams through stoke infer with the accuracy quantize measured.
        let infer = try execute(stokeBinary, ["infer", output, directory + "/test.h5", "--json"])
        #expect(infer.status == 0, "\(infer.stderr)")
        #expect(abs((jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1) - (after["accuracy"] as? Double ?? 0)) < 1e-9)
        let table = try execute(stokeBinary, ["quantize", directory + "/m.h5", "-o", directory + "/dynamic2.h5", "--eval", directory + "/test.h5"])
        #expect(table.status == 0 && table.stdout.contains("size (bytes)") && table.stdout.contains("accuracy"), "\(table.stdout)")
    }

    @Test("--qat fine-tunes with fake quantization and converts with the learned ranges")
    func quantizationAwareTraining() throws {
        let directory = try fixture.get()
        let output = directory + "/qat.h5"
        let run = try execute(stokeBinary, ["quantize", directory + "/m.h5", "-o", output, "--qat", directory + "/train.h5", "--epochs", "1",
                                            "--eval", directory + "/test.h5", "--threads", "1", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let document = try #require(jsonObject(run.stdout))
        expectMetrics(document["before"], "before")
        expectMetrics(document["after"], "after")
        #expect(document["mode"] as? String == "static" && (document["qat"] as? [String: Any])?["epochs"] as? Int == 1)
        let before = try #require(document["before"] as? [String: Any]), after = try #require(document["after"] as? [String: Any])
        let drop = (before["accuracy"] as? Double ?? 0) - (after["accuracy"] as? Double ?? 0)
        #expect(drop < 0.02, "QAT INT8 within 2 pp of FP32 (it also fine-tunes): \(drop)")
        let inspect = try execute(stokeBinary, ["inspect", output, "--json"])
        #expect(inspect.status == 0 && inspect.stdout.contains("QuantizeLinear"), "\(inspect.stdout)")
    }

    @Test func badArgumentsFailWithOneLine() throws {
        let directory = try fixture.get()
        let made = try execute(venvPython, ["-c", "import numpy as np, sys; np.save(sys.argv[1], np.zeros((20, 5), np.float32))", directory + "/narrow.npy"])
        try #require(made.status == 0)
        #expect(try execute(stokeBinary, ["pack", "--from", "npy", directory + "/narrow.npy", "-o", directory + "/narrow.h5"]).status == 0)
        let model = directory + "/m.h5", out = directory + "/bad.h5"
        let cases: [([String], String)] = [
            (["--mode", "static"], "needs --calibrate"),
            (["--percentile", "0"], "--percentile"),
            (["--percentile", "100.5", "--calibrate", directory + "/train.h5"], "--percentile"),
            (["--keep-fp32", "x"], "static quantization"),
            (["--calibrate", directory + "/narrow.h5"], "no field holds the model's input"),
            (["--eval", directory + "/narrow.h5"], "no field holds the model's input"),
            (["--mode", "static", "--calibrate", directory + "/train.h5", "--keep-fp32", "nosuchnode"], "unknown --keep-fp32 node 'nosuchnode'"),
            (["--qat", directory + "/train.h5", "--calibrate", directory + "/train.h5"], "drop --calibrate"),
            (["--mode", "dynamic", "--qat", directory + "/train.h5"], "--qat applies to static quantization"),
            (["--qat", directory + "/train.h5", "--epochs", "0"], "--epochs"),
            (["--qat", directory + "/narrow.h5"], "no field holds the model's input"),
        ]
        for (arguments, message) in cases {
            let result = try execute(stokeBinary, ["quantize", model, "-o", out] + arguments)
            #expect(result.status != 0, "\(arguments)")
            let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
            #expect(lines.count == 1 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out), "nothing is written on a usage error")
    }
}

extension QuantizeCLITests {
    @Test func staticEndToEndWithMixedPrecision() throws {
        let directory = try fixture.get()
        let model = directory + "/m.h5", train = directory + "/train.h5", test = directory + "/test.h5"
        let run = try execute(stokeBinary, ["quantize", model, "-o", directory + "/static.h5", "--calibrate", train, "--calibration-samples", "512",
                                            "--method", "percentile", "--percentile", "99.9", "--eval", test, "--threads", "1", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let document = try #require(jsonObject(run.stdout))
        expectMetrics(document["before"], "before")
        expectMetrics(document["after"], "after")
        #expect(document["mode"] as? String == "static")
        #expect((document["calibration"] as? [String: Any])?["method"] as? String == "percentile")
        let layers = try #require(document["layers"] as? [[String: Any]])
        #expect(layers.count == 3 && layers.allSatisfy { $0["precision"] as? String == "int8" && $0["macs"] as? Int ?? 0 > 0 }, "\(layers)")
        let before = try #require(document["before"] as? [String: Any]), after = try #require(document["after"] as? [String: Any])
        let drop = (before["accuracy"] as? Double ?? 0) - (after["accuracy"] as? Double ?? 0)
        #expect(abs(drop) < 0.03, "static INT8 accuracy within 3 pp: \(drop)")
        // stoke inspect tells the graph model file (scalar scale datasets and all) from a store.
        let inspect = try execute(stokeBinary, ["inspect", directory + "/static.h5", "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(jsonObject(inspect.stdout)?["parameters"] as? Int == after["params"] as? Int)
        // The HDF5 file reloads into the same model: stoke infer measures the same accuracy.
        let infer = try execute(stokeBinary, ["infer", directory + "/static.h5", test, "--json"])
        #expect(abs((jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1) - (after["accuracy"] as? Double ?? 0)) < 1e-9, "\(infer.stderr)")

        let perTensor = try execute(stokeBinary, ["quantize", model, "-o", directory + "/per-tensor.h5", "--calibrate", train, "--calibration-samples", "256",
                                                  "--per-tensor", "--method", "mse", "--json"])
        #expect(perTensor.status == 0, "\(perTensor.stderr)")
        #expect((jsonObject(perTensor.stdout)?["calibration"] as? [String: Any])?["per_channel"] as? Bool == false)
        // A bound of 0 pp: the policy keeps layers FP32 until the labeled set loses nothing.
        let mixed = try execute(stokeBinary, ["quantize", model, "-o", directory + "/mixed.onnx", "--calibrate", train, "--calibration-samples", "256",
                                              "--eval", test, "--max-accuracy-drop", "0", "--keep-fp32", (layers.last?["node"] as? String) ?? "", "--json"])
        #expect(mixed.status == 0, "\(mixed.stderr)")
        let mixedDocument = try #require(jsonObject(mixed.stdout))
        let policy = try #require(mixedDocument["mixed_precision"] as? [String: Any])
        let fp32Accuracy = try #require(policy["fp32_accuracy"] as? Double), accuracy = try #require(policy["accuracy"] as? Double)
        #expect(accuracy >= fp32Accuracy - 1e-12, "the bound holds on the labeled set")
        let mixedLayers = try #require(mixedDocument["layers"] as? [[String: Any]])
        #expect(mixedLayers.allSatisfy { $0["error"] is Double && $0["accuracy"] is Double }, "\(mixedLayers)")
        #expect(mixedLayers.last?["precision"] as? String == "fp32", "--keep-fp32 is honored")
        let kept = Set(mixedLayers.filter { $0["precision"] as? String == "fp32" }.compactMap { $0["node"] as? String })
        #expect(Set(policy["kept_fp32"] as? [String] ?? []) == kept)
        #expect(abs(((mixedDocument["after"] as? [String: Any])?["accuracy"] as? Double ?? -1) - accuracy) < 1e-9,
                "the policy's accuracy is the after accuracy on the same store")
        // The ONNX output is standard QDQ that Stoke loads again.
        #expect(try Model.load(path: directory + "/mixed.onnx").outputs.count == 1)
        let table = try execute(stokeBinary, ["quantize", model, "-o", directory + "/table.h5", "--calibrate", train, "--calibration-samples", "256",
                                              "--max-accuracy-drop", "1"])
        #expect(table.status == 0 && table.stdout.contains("output error (alone)") && table.stdout.contains("INT8"), "\(table.stdout)\(table.stderr)")
    }
}

@Suite("Mixed precision")
struct MixedPrecisionTests {
    @Test func policyKeepsTheLayerThatBreaksAccuracyFP32() throws {
        let native = try SequentialModel(layers: [
            .linear(inFeatures: 24, outFeatures: 32), .relu, .linear(inFeatures: 32, outFeatures: 32), .relu, .linear(inFeatures: 32, outFeatures: 6),
        ], sampleShape: [24], seed: 5)
        let model = try native.model()
        var state: UInt64 = 9
        func batch(_ rows: Int) -> Tensor {
            Tensor(shape: [rows, 24], floats: (0..<(rows * 24)).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(state >> 40) / Float(1 << 23) - 1
            })
        }
        let inputName = model.inputs[0].name, outputName = model.outputs[0].name
        // Labels are the FP32 model's own predictions: FP32 accuracy is 100%.
        var batches: [EvaluationBatch] = []
        for _ in 0..<4 {
            let x = batch(128)
            let logits = try #require(try Session(model: model).run([inputName: x])[outputName]).floats
            var labels: [Int64] = []
            for row in 0..<128 {
                let scores = Array(logits[(row * 6)..<(row * 6 + 6)])
                labels.append(Int64(scores.firstIndex(of: scores.max()!)!))
            }
            batches.append(EvaluationBatch(inputs: [inputName: x], labels: labels))
        }
        let calibrator = try Calibrator(model: model)
        for entry in batches { try calibrator.observe(entry.inputs) }
        var table = try calibrator.table()
        let nodes = model.quantizableNodes
        try #require(nodes.count == 3)
        // Sabotage the first layer: a calibrated input range 1000× too narrow saturates nearly every
        // input value. (The model input is read by that layer alone; a hidden activation's range
        // would also be the output range of the layer before it.)
        let sabotaged = nodes[0]
        let sabotagedInput = inputName
        let range = try #require(table.ranges[sabotagedInput], "calibration covers \(sabotagedInput): \(table.ranges.keys.sorted())")
        table.ranges[sabotagedInput] = range.lowerBound / 1000...range.upperBound / 1000

        let layers = try MixedPrecision.sensitivity(of: model, calibration: table, batches: batches, labeled: batches)
        #expect(layers.map(\.node) == nodes)
        let worst = try #require(layers.min { ($0.accuracy ?? 1) < ($1.accuracy ?? 1) })
        #expect(worst.node == sabotaged, "\(layers)")
        #expect(worst.outputError == layers.map(\.outputError).max(), "\(layers)")
        #expect(layers.allSatisfy { $0.macs > 0 && !$0.keptFP32 })

        let plan = try MixedPrecision.plan(for: model, calibration: table, batches: batches, labeled: batches, maxAccuracyDrop: 0.1)
        #expect(plan.keepFP32.contains(sabotaged), "the bound demands the sabotaged layer stay FP32")
        #expect(plan.fp32Accuracy == 1)
        #expect((plan.accuracy ?? 0) >= 0.9)
        #expect(plan.layers.first { $0.node == sabotaged }?.keptFP32 == true)
        let loose = try MixedPrecision.plan(for: model, calibration: table, batches: batches, labeled: batches, maxAccuracyDrop: 1)
        #expect(loose.keepFP32.isEmpty, "a bound of 100 pp keeps everything INT8")
        #expect(throws: EngineError.self) {
            _ = try MixedPrecision.plan(for: model, calibration: table, batches: batches, labeled: batches.map { EvaluationBatch(inputs: $0.inputs, labels: nil) },
                                        maxAccuracyDrop: 0.1)
        }
    }
}
