import Foundation
import Testing

/// The venv Python as the tests call it.
private let python = venvPython

@Suite("stoke command line")
struct CLITests {
    @Test("pack NPY v1/v2/v3, big-endian and Fortran order; inspect --json; verify")
    func packInspectVerify() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(python, ["-c", """
            import sys, numpy as np
            from numpy.lib import format as fmt
            d = sys.argv[1]
            rng = np.random.default_rng(3)
            x = rng.integers(0, 200, size=(77, 3, 5, 4)).astype(np.float32)
            y = np.arange(77, dtype=np.int64)
            for version in [(1, 0), (2, 0), (3, 0)]:
                with open(f'{d}/x{version[0]}.npy', 'wb') as f:
                    fmt.write_array(f, x, version=version)
            np.save(f'{d}/xbe.npy', x.astype('>f4'))
            np.save(f'{d}/xf.npy', np.asfortranarray(x))
            np.save(f'{d}/y.npy', y)
            np.save(f'{d}/ybad.npy', y[:70])
            np.save(f'{d}/complex.npy', np.zeros((4, 2), dtype=np.complex64))
            x.tofile(f'{d}/expected.bin')
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let expected = try Data(contentsOf: URL(fileURLWithPath: directory + "/expected.bin"))
        for source in ["x1", "x2", "x3", "xbe", "xf"] {
            let store = "\(directory)/\(source).h5"
            let pack = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/\(source).npy", "--labels", "\(directory)/y.npy",
                                                 "-o", store, "--codec", "lz4-shuffle", "--chunk-samples", "10", "--json"])
            #expect(pack.status == 0, "\(source): \(pack.stderr)")
            let check = try execute(python, ["-c", """
                import sys, h5py, hdf5plugin, numpy as np
                f = h5py.File(sys.argv[1], 'r')
                x = np.fromfile(sys.argv[2], dtype='<f4').reshape(77, 3, 5, 4)
                assert np.array_equal(f['data'][...], x)
                assert np.array_equal(f['label'][...], np.arange(77))
                """, store, directory + "/expected.bin"])
            #expect(check.status == 0, "\(source): \(check.stderr)")
        }
        _ = expected
        let inspect = try execute(stokeBinary, ["inspect", "\(directory)/x1.h5", "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let document = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(document?["samples"] as? Int == 77)
        #expect(document?["chunk_index"] as? Bool == true)
        let fields = document?["fields"] as? [[String: Any]] ?? []
        #expect(fields.map { $0["name"] as? String } == ["data", "label"])
        #expect(fields.first?["dtype"] as? String == "f32")
        #expect(fields.first?["shape"] as? [Int] == [77, 3, 5, 4])
        #expect(fields.first?["chunk_shape"] as? [Int] == [10, 3, 5, 4])
        #expect(fields.first?["codec"] as? String == "lz4-shuffle")
        #expect((fields.first?["stored_bytes"] as? Int ?? 0) > 0)
        #expect(fields.first?["raw_bytes"] as? Int == 77 * 60 * 4)
        let verify = try execute(stokeBinary, ["verify", "\(directory)/x1.h5"])
        #expect(verify.status == 0, "\(verify.stderr)")

        // Bad input: one clear line, non-zero exit, nothing written.
        let mismatch = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/x1.npy", "--labels", "\(directory)/ybad.npy", "-o", "\(directory)/bad.h5"])
        #expect(mismatch.status != 0)
        #expect(mismatch.stderr.contains("ybad.npy: has 70 samples"))
        let unsupported = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/complex.npy", "-o", "\(directory)/bad.h5"])
        #expect(unsupported.status != 0)
        #expect(unsupported.stderr.contains("field 'descr'"))
        let exists = try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/x1.npy", "-o", "\(directory)/x1.h5"])
        #expect(exists.status != 0)
        #expect(exists.stderr.contains("already exists"))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/bad.h5"))
        let missing = try execute(stokeBinary, ["verify", "\(directory)/nope.h5"])
        #expect(missing.status != 0)
        #expect(missing.stderr.split(separator: "\n").count == 1)
    }

    @Test("stoke bench io: JSON on a packed store, one clear line for bad arguments")
    func benchIO() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(python, ["-c", "import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(2).integers(0, 8, size=(500, 3, 8, 8), dtype=np.uint8))", "\(directory)/a.npy"])
        try #require(made.status == 0)
        let store = "\(directory)/a.h5"
        #expect(try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/a.npy", "-o", store, "--chunk-samples", "50"]).status == 0)
        let bench = try execute(stokeBinary, ["bench", "io", store, "--batch-size", "32", "--sweep", "workers=1,2", "--report", "\(directory)/r.html", "--json"])
        #expect(bench.status == 0, "\(bench.stderr)")
        let document = try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any]
        #expect(document?["samples_per_s"] as? Double ?? 0 > 0)
        #expect((document?["sweep"] as? [Any])?.count == 2)
        let html = try String(contentsOfFile: "\(directory)/r.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("samples/s"))
        let codecs = try execute(stokeBinary, ["bench", "codecs", "\(directory)/a.npy", "--chunks", "2", "--json"])
        #expect(codecs.status == 0, "\(codecs.stderr)")
        for bad in [["bench", "io", store, "--order", "zigzag"], ["bench", "io", store, "--sweep", "speed=1"],
                    ["bench", "io", "\(directory)/missing.h5"], ["bench", "codecs", store, "--codecs", "zstd"]] {
            let result = try execute(stokeBinary, bad)
            #expect(result.status != 0, "\(bad)")
            #expect(result.stderr.split(separator: "\n").filter { !$0.isEmpty }.count <= 2, "\(bad): \(result.stderr)")
        }
    }

    @Test("stoke demo packs, verifies and streams train and test stores")
    func demo() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let run = try execute(stokeBinary, ["demo", "--generated", "--samples", "3000", "--directory", directory, "--quick", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(document?["dataset"] as? String == "generated")
        let streams = document?["streams"] as? [[String: Any]] ?? []
        #expect(streams.map { $0["samples"] as? Int } == [3000, 500])
        #expect(streams.allSatisfy { $0["normalized"] as? Bool == true })
        #expect(FileManager.default.fileExists(atPath: directory + "/train.h5"))
        let variants = document?["variants"] as? [[String: Any]] ?? []
        #expect(variants.map { $0["variant"] as? String } == [
            "teacher FP32", "teacher INT8 (dynamic)", "teacher INT8 (static)", "teacher 50% pruned (L2 structured) + fine-tuned",
            "pruned INT8 (dynamic)", "pruned INT8 (static)", "student 784-64-10 alone", "student 784-64-10 distilled",
            "student INT8 (dynamic)", "student INT8 (static)",
        ])
        #expect(variants.allSatisfy { ($0["accuracy"] as? Double ?? 0) > 0.5 })
        // The machine, so two users can compare tables; the verdicts follow from the numbers.
        let machine = document?["machine"] as? [String: Any] ?? [:]
        #expect(["avx512-vnni", "avx2", "portable"].contains(machine["kernel_set"] as? String ?? ""))
        #expect(machine["cores"] as? Int ?? 0 > 0 && machine["stoke_version"] is String)
        #expect((document?["total_seconds"] as? Double ?? 0) > 0)
        let seeds = (document?["distillation"] as? [String: Any])?["seeds"] as? [[String: Any]] ?? []
        #expect(seeds.count == 3)
        let wins = seeds.filter { ($0["distilled_accuracy"] as? Double ?? 0) > ($0["alone_accuracy"] as? Double ?? 0) }.count
        let verdicts = document?["verdicts"] as? [String] ?? []
        let distillation = verdicts.first { $0.hasPrefix("Distillation") } ?? ""
        #expect(distillation.hasPrefix(wins == 3 ? "Distillation pays" : wins == 0 ? "Distillation does NOT pay" : "Distillation does not reliably pay"),
                "\(wins) of 3 seeds won: \(distillation)")
        let accuracy = { (row: [String: Any]?) in row?["accuracy"] as? Double ?? 0 }
        let teacher = accuracy(variants.first)
        let best = variants.map(accuracy).max() ?? 1
        let bestStudent = variants.filter { ($0["variant"] as? String ?? "").hasPrefix("student") }.map(accuracy).max() ?? 1
        let expected = best <= teacher ? "is the most accurate model" : bestStudent < teacher ? "is more accurate than every student" : "is NOT the strongest model"
        #expect(verdicts.contains { $0.hasPrefix("The teacher") && $0.contains(expected) }, "\(verdicts)")
        #expect(FileManager.default.fileExists(atPath: directory + "/report.html"))
        #expect(FileManager.default.fileExists(atPath: directory + "/report.json"))

        // A second run with the same inputs reuses every store and model; --force redoes them.
        let again = try execute(stokeBinary, ["demo", "--generated", "--samples", "3000", "--directory", directory, "--quick"])
        #expect(again.status == 0, "\(again.stderr)")
        for file in ["train.h5", "test.h5", "teacher.h5", "student.h5", "student-alone.h5", "teacher-pruned.h5"] {
            #expect(again.stdout.contains("\(directory)/\(file): up to date, reused"), "\(file) was not reused")
        }
        let changed = try execute(stokeBinary, ["demo", "--generated", "--samples", "2400", "--directory", directory, "--quick", "--data-only"])
        #expect(changed.status == 0 && !changed.stdout.contains("train.h5: up to date"), "a changed dataset must be repacked")
    }

    @Test("stoke inspect and stoke run on an ONNX model match onnxruntime")
    func runModel() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(python, ["-c", """
            import sys, numpy as np, onnx, onnxruntime as ort
            from onnx import helper, TensorProto, numpy_helper
            d = sys.argv[1]; rng = np.random.default_rng(0)
            w1 = (rng.standard_normal((20, 16)) * 0.2).astype(np.float32); w2 = (rng.standard_normal((16, 3)) * 0.2).astype(np.float32)
            nodes = [helper.make_node('MatMul', ['x', 'w1'], ['h']), helper.make_node('Relu', ['h'], ['r']), helper.make_node('MatMul', ['r', 'w2'], ['out:logits'])]
            g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', 20])],
                                  [helper.make_tensor_value_info('out:logits', TensorProto.FLOAT, ['batch', 3])],
                                  [numpy_helper.from_array(w1, 'w1'), numpy_helper.from_array(w2, 'w2')])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]), d + '/m.onnx')
            x = rng.standard_normal((8, 20)).astype(np.float32); np.save(d + '/x.npy', x)
            np.save(d + '/ref.npy', ort.InferenceSession(d + '/m.onnx').run(None, {'x': x})[0])
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let inspect = try execute(stokeBinary, ["inspect", "\(directory)/m.onnx", "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let document = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(document?["parameters"] as? Int == 20 * 16 + 16 * 3)
        #expect(document?["macs"] as? Int == 20 * 16 + 16 * 3)
        #expect((document?["operators"] as? [String: Int])?["MatMul"] == 2)
        let run = try execute(stokeBinary, ["run", "\(directory)/m.onnx", "--input", "x=\(directory)/x.npy", "--output-dir", "\(directory)/out",
                                            "--repeat", "5", "--profile", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(result?["samples_per_s"] as? Double ?? 0 > 0)
        #expect((result?["profile"] as? [Any])?.isEmpty == false)
        let compare = try execute(python, ["-c", "import sys, numpy as np; a = np.load(sys.argv[1]); b = np.load(sys.argv[2]); assert np.allclose(a, b, rtol=1e-4, atol=1e-5), abs(a - b).max()",
                                           "\(directory)/out/out_logits.npy", "\(directory)/ref.npy"])
        #expect(compare.status == 0, "\(compare.stderr)")
        for bad in [["run", "\(directory)/m.onnx"], ["run", "\(directory)/m.onnx", "--input", "x"], ["inspect", "\(directory)/x.npy"],
                    ["run", "\(directory)/missing.onnx", "--input", "x=\(directory)/x.npy"]] {
            let result = try execute(stokeBinary, bad)
            #expect(result.status != 0, "\(bad)")
            #expect(result.stderr.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "\(bad): \(result.stderr)")
        }
    }

    @Test("stoke infer streams a store through a model: accuracy, predictions store, sweep with recommendations")
    func infer() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try execute(stokeBinary, ["demo", "--generated", "--samples", "1200", "--directory", directory, "--data-only"]).status == 0)
        // A model whose logits are the sums of image columns' pixel blocks: deterministic, checkable in numpy.
        let made = try execute(python, ["-c", """
            import sys, numpy as np, onnx
            from onnx import helper, TensorProto, numpy_helper
            rng = np.random.default_rng(1); w = rng.standard_normal((784, 10)).astype(np.float32) * 0.01
            nodes = [helper.make_node('Flatten', ['image'], ['f']), helper.make_node('MatMul', ['f', 'w'], ['logits'])]
            g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 1, 28, 28])],
                                  [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', 10])], [numpy_helper.from_array(w, 'w')])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]), sys.argv[1] + '/m.onnx')
            np.save(sys.argv[1] + '/w.npy', w)
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        let run = try execute(stokeBinary, ["infer", "\(directory)/m.onnx", "\(directory)/test.h5", "--batch-size", "64",
                                            "--output", "\(directory)/pred.h5", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let document = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(document?["samples"] as? Int == 200)
        let accuracy = try #require(document?["accuracy"] as? Double)
        #expect((0...1).contains(accuracy))
        #expect((document?["confusion"] as? [[Int]])?.flatMap { $0 }.reduce(0, +) == 200)
        #expect((document?["threads"] as? [String: Any])?["engine"] as? Int ?? 0 >= 1)
        // The predictions equal numpy's argmax of normalized images times the weights.
        let check = try execute(python, ["-c", """
            import sys, h5py, hdf5plugin, numpy as np
            d = sys.argv[1]; w = np.load(d + '/w.npy')
            x = (h5py.File(d + '/test.h5')['image'][...].reshape(200, -1) / 255.0 - 0.2860) / 0.3530
            p = h5py.File(d + '/pred.h5')
            assert np.allclose(p['logits'][...], x @ w, atol=1e-4), abs(p['logits'][...] - x @ w).max()
            assert (p['prediction'][...] == (x @ w).argmax(1)).mean() > 0.99
            """, directory])
        #expect(check.status == 0, "\(check.stderr)")
        let sweep = try execute(stokeBinary, ["infer", "\(directory)/m.onnx", "\(directory)/test.h5", "--sweep", "batch-size=1,32",
                                              "--max-latency-ms", "1000", "--report", "\(directory)/sweep.html", "--json"])
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let sweepDocument = try JSONSerialization.jsonObject(with: Data(sweep.stdout.utf8)) as? [String: Any]
        #expect((sweepDocument?["sweep"] as? [Any])?.count == 2)
        let peaks = (sweepDocument?["sweep"] as? [[String: Any]] ?? []).compactMap { $0["peak_resident_bytes"] as? Int }
        #expect(peaks.count == 2 && peaks.allSatisfy { $0 > 1 << 20 }, "peak memory per setting: \(peaks)")
        let sweepReport = (try? String(contentsOfFile: "\(directory)/sweep.html", encoding: .utf8)) ?? ""
        #expect(sweepReport.contains("Throughput against batch size") && sweepReport.contains("<svg"))
        let noSweep = try execute(stokeBinary, ["infer", "\(directory)/m.onnx", "\(directory)/test.h5", "--report", "\(directory)/r.html"])
        #expect(noSweep.status != 0 && noSweep.stderr.contains("--report needs --sweep"))
        #expect((sweepDocument?["recommended"] as? [String: Any])?["latency_bound"] is [String: Int])
        let bad = try execute(stokeBinary, ["infer", "\(directory)/m.onnx", "\(directory)/test.h5", "--sweep", "speed=1"])
        #expect(bad.status != 0)
    }

    @Test("stoke train fits an MLP from a store, evaluates it, saves a model file stoke infer can stream")
    func train() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try execute(stokeBinary, ["demo", "--generated", "--samples", "2000", "--directory", directory, "--data-only"]).status == 0)
        let run = try execute(stokeBinary, ["train", directory + "/train.h5", "--arch", "mlp:784-32-10", "-o", directory + "/m.h5",
                                            "--epochs", "2", "--lr", "0.003", "--eval", directory + "/test.h5", "--seed", "3", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let document = jsonObject(run.stdout)
        #expect(document?["epochs"] as? Int == 2)
        #expect(document?["samples_per_s"] as? Double ?? 0 > 0)
        let accuracy = try #require(document?["test_accuracy"] as? Double)
        #expect(accuracy > 0.6, "chance is 0.1: \(accuracy)")
        let infer = try execute(stokeBinary, ["infer", directory + "/m.h5", directory + "/test.h5", "--json"])
        #expect(infer.status == 0, "\(infer.stderr)")
        #expect(abs((jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1) - accuracy) < 1e-9)
        let again = try execute(stokeBinary, ["train", directory + "/train.h5", "--arch", "mlp:784-32-10", "-o", directory + "/m2.h5",
                                              "--epochs", "2", "--lr", "0.003", "--seed", "3", "--json"])
        #expect(jsonObject(again.stdout)?["train_loss"] as? Double == document?["train_loss"] as? Double, "same seed, same run")
        let distill = try execute(stokeBinary, ["distill", directory + "/train.h5", "--teacher", directory + "/m.h5", "--arch", "mlp:784-8-10",
                                                "-o", directory + "/student.h5", "--epochs", "1", "--eval", directory + "/test.h5", "--json"])
        #expect(distill.status == 0, "\(distill.stderr)")
        let distilled = jsonObject(distill.stdout)
        #expect(abs((distilled?["teacher_accuracy"] as? Double ?? -1) - accuracy) < 1e-9)
        #expect(distilled?["student_alone_accuracy"] is Double && distilled?["distilled_accuracy"] is Double)
        #expect(FileManager.default.fileExists(atPath: directory + "/student.h5"))
        let prune = try execute(stokeBinary, ["prune", directory + "/m.h5", "-o", directory + "/pruned.h5", "--amount", "0.5", "--method", "l1",
                                              "--finetune", directory + "/train.h5", "--eval", directory + "/test.h5", "--json"])
        #expect(prune.status == 0, "\(prune.stderr)")
        let pruneDocument = jsonObject(prune.stdout)
        #expect(abs((pruneDocument?["sparsity"] as? Double ?? 0) - 0.5) < 0.01)
        #expect(pruneDocument?["accuracy_finetuned"] is Double)
        let neurons = try execute(stokeBinary, ["prune", directory + "/m.h5", "-o", directory + "/small.h5", "--amount", "0.5", "--method", "neurons", "--json"])
        #expect((jsonObject(neurons.stdout)?["after"] as? [String: Any])?["params"] as? Int == 784 * 16 + 16 + 16 * 10 + 10)
        for bad in [["--arch", "cnn:1"], ["--arch", "mlp:100-10"], ["--arch", "mlp:784-10", "--optimizer", "lion"]] {
            let result = try execute(stokeBinary, ["train", directory + "/train.h5", "-o", directory + "/x.h5"] + bad)
            #expect(result.status != 0, "\(bad)")
            #expect(result.stderr.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "\(bad): \(result.stderr)")
        }
    }

    @Test("verify names the field and chunk of a flipped byte")
    func verifyFindsCorruption() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(python, ["-c", "import numpy as np, sys; a = np.random.default_rng(5).integers(0, 256, size=(100, 64), dtype=np.uint8); np.save(sys.argv[1], a); a[50].tofile(sys.argv[1] + '.row50')", "\(directory)/a.npy"])
        try #require(made.status == 0)
        let store = "\(directory)/a.h5"
        #expect(try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/a.npy", "-o", store, "--chunk-samples", "25", "--codec", "none"]).status == 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store)))
        // Chunk 2 holds rows 50..<75; find row 50's random bytes in the file.
        let row = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(directory)/a.npy.row50")))
        let start = try #require((0...(bytes.count - 64)).first { bytes[$0..<($0 + 64)].elementsEqual(row) })
        bytes[start + 10] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: store))
        let verify = try execute(stokeBinary, ["verify", store])
        #expect(verify.status == 1)
        #expect(verify.stderr.contains("field 'data' chunk 2"), "\(verify.stderr)")
        #expect(verify.stderr.contains("Fletcher-32"))
    }

    @Test("killing a pack mid-way leaves no store at the final path")
    func interruptedPack() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try execute(python, ["-c", "import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(1).integers(0, 255, size=(6000, 3, 96, 96), dtype=np.uint8))", "\(directory)/big.npy"])
        try #require(made.status == 0)
        let store = "\(directory)/big.h5"
        let process = try ChildProcess(stokeBinary, ["pack", "--from", "npy", "\(directory)/big.npy", "-o", store, "--codec", "deflate:9", "--workers", "1"],
                                       captureOutput: false)
        // Wait until the partial file exists, then kill the writer.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            if names.contains(where: { $0.hasPrefix("big.h5.partial-") }) { break }
            usleep(20_000)
        }
        usleep(200_000)
        process.send(SIGKILL)
        #expect(try process.waitForExit().signal == SIGKILL)
        #expect(!FileManager.default.fileExists(atPath: store))
    }
}
