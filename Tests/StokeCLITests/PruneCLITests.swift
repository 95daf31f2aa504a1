import Foundation
import Testing

@Suite("stoke prune")
struct PruneCLITests {
    /// A generated Fashion-MNIST stand-in packed into train/test stores, and an MLP trained on it.
    func prepare(_ directory: String) throws {
        let data = try execute(stokeBinary, ["demo", "--generated", "--samples", "2000", "--directory", directory, "--data-only"])
        try #require(data.status == 0, "\(data.stderr)")
        let train = try execute(stokeBinary, ["train", directory + "/train.h5", "--arch", "mlp:784-32-16-10", "-o", directory + "/m.h5",
                                              "--epochs", "1", "--lr", "0.003", "--seed", "1", "--json"])
        try #require(train.status == 0, "\(train.stderr)")
    }

    func metrics(_ document: [String: Any]?, _ key: String) throws -> [String: Any] {
        let object = try #require(document?[key] as? [String: Any], "no '\(key)' in \(String(describing: document))")
        for field in ["params", "bytes", "macs", "accuracy", "samples_per_s"] { #expect(object[field] != nil, "\(key).\(field)") }
        return object
    }

    @Test("ln-structured removes neurons: params and MACs fall, JSON before/after, ONNX output runs in onnxruntime and stoke infer")
    func structured() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try prepare(directory)
        let run = try execute(stokeBinary, ["prune", directory + "/m.h5", "-o", directory + "/p.onnx", "--method", "ln-structured", "--amount", "0.5",
                                            "--eval", directory + "/test.h5", "--json"])
        try #require(run.status == 0, "\(run.stderr)")
        let document = jsonObject(run.stdout)
        let before = try metrics(document, "before"), after = try metrics(document, "after")
        #expect(before["params"] as? Int == 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10)
        #expect(after["params"] as? Int == 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10)
        #expect((after["macs"] as? Int ?? .max) < (before["macs"] as? Int ?? 0))
        #expect(document?["method"] as? String == "ln-structured" && document?["n"] as? Int == 2 && document?["amount"] as? Double == 0.5)
        let accuracy = try #require(after["accuracy"] as? Double)
        let infer = try execute(stokeBinary, ["infer", directory + "/p.onnx", directory + "/test.h5", "--json"])
        #expect(abs((jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1) - accuracy) < 1e-9, "\(infer.stderr)")
        let ort = try execute(venvPython, ["-c", """
            import sys, numpy as np, onnx, onnxruntime as ort
            onnx.checker.check_model(onnx.load(sys.argv[1]))
            s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])
            y = s.run(None, {s.get_inputs()[0].name: np.zeros((2, 1, 28, 28), np.float32)})[0]
            assert y.shape == (2, 10), y.shape
            """, directory + "/p.onnx"])
        #expect(ort.status == 0, "\(ort.stderr)")
        // The ONNX file comes back in as a native model that can be pruned again and fine-tuned.
        let table = try execute(stokeBinary, ["prune", directory + "/p.onnx", "-o", directory + "/again.h5", "--method", "neurons", "--amount", "0.5",
                                              "--finetune", directory + "/train.h5", "--epochs", "1"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("parameters") && table.stdout.contains("MACs/sample"), "\(table.stdout)")
        let again = try execute(stokeBinary, ["inspect", directory + "/again.h5", "--json"])
        #expect(jsonObject(again.stdout)?["parameters"] as? Int == 784 * 8 + 8 + 8 * 4 + 4 + 4 * 10 + 10, "\(again.stdout)")
    }

    @Test("--iterations: K rounds of pruning amount·i/K then fine-tuning, with the accuracy right after pruning")
    func iterative() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try prepare(directory)
        let run = try execute(stokeBinary, ["prune", directory + "/m.h5", "-o", directory + "/p.h5", "--method", "l1", "--amount", "0.5",
                                            "--finetune", directory + "/train.h5", "--epochs", "1", "--iterations", "2", "--eval", directory + "/test.h5", "--json"])
        try #require(run.status == 0, "\(run.stderr)")
        let document = jsonObject(run.stdout)
        let rounds = try #require(document?["rounds"] as? [[String: Any]])
        #expect(rounds.count == 2)
        #expect(abs((rounds.first?["sparsity"] as? Double ?? 0) - 0.25) < 0.01)
        #expect(abs((document?["sparsity"] as? Double ?? 0) - 0.5) < 0.01, "the second round keeps the first round's zeros")
        #expect(document?["accuracy_pruned"] is Double && document?["accuracy_finetuned"] is Double)
        let after = try metrics(document, "after"), before = try metrics(document, "before")
        #expect(after["params"] as? Int == before["params"] as? Int)
        #expect((after["nonzeros"] as? Int ?? .max) < (before["nonzeros"] as? Int ?? 0))
        let structured = try execute(stokeBinary, ["prune", directory + "/m.h5", "-o", directory + "/s.h5", "--method", "ln-structured", "--n", "1",
                                                   "--amount", "0.5", "--finetune", directory + "/train.h5", "--epochs", "1", "--iterations", "2", "--json"])
        try #require(structured.status == 0, "\(structured.stderr)")
        let shrunk = jsonObject(structured.stdout)
        #expect((try metrics(shrunk, "after"))["params"] as? Int == 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10)
        #expect((shrunk?["rounds"] as? [[String: Any]])?.first?["params"] as? Int == 784 * 24 + 24 + 24 * 12 + 12 + 12 * 10 + 10)
    }

    @Test("a PyTorch-style ONNX CNN (BatchNorm, Reshape flatten, MatMul+Add) loses filters and MACs; refusals are one line naming the cause")
    func onnxCNNAndRefusals() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let data = try execute(stokeBinary, ["demo", "--generated", "--samples", "600", "--directory", directory, "--data-only"])
        try #require(data.status == 0, "\(data.stderr)")
        let script = repositoryRoot.appendingPathComponent("Tests/StokeEngineTests/Resources/torch_style_onnx.py").path
        for (kind, extra) in [("cnn", ["28"]), ("branch", [])] {
            let made = try execute(venvPython, [script, kind, "\(directory)/\(kind).onnx"] + extra)
            try #require(made.status == 0, "\(made.stderr)")
        }
        let run = try execute(stokeBinary, ["prune", directory + "/cnn.onnx", "-o", directory + "/cnn-pruned.h5", "--method", "ln-structured", "--n", "1",
                                            "--amount", "0.5", "--eval", directory + "/test.h5", "--json"])
        try #require(run.status == 0, "\(run.stderr)")
        let document = jsonObject(run.stdout)
        let before = try metrics(document, "before"), after = try metrics(document, "after")
        #expect((after["macs"] as? Int ?? .max) < (before["macs"] as? Int ?? 0))
        #expect((after["params"] as? Int ?? .max) < (before["params"] as? Int ?? 0))
        let infer = try execute(stokeBinary, ["infer", directory + "/cnn-pruned.h5", directory + "/test.h5", "--json"])
        #expect(abs((jsonObject(infer.stdout)?["accuracy"] as? Double ?? -1) - (after["accuracy"] as? Double ?? -2)) < 1e-9, "\(infer.stderr)")

        let cases: [([String], String)] = [
            (["prune", directory + "/branch.onnx", "-o", directory + "/x.h5"], "/residual/Add"),
            (["prune", directory + "/cnn.onnx", "-o", directory + "/x.h5", "--iterations", "2"], "--finetune"),
            (["prune", directory + "/cnn.onnx", "-o", directory + "/x.h5", "--method", "ln-structured", "--n", "3"], "--n"),
            (["prune", directory + "/nothing.onnx", "-o", directory + "/x.h5"], "nothing.onnx"),
        ]
        for (arguments, needle) in cases {
            let result = try execute(stokeBinary, arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(needle), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "\(arguments): \(result.stderr)")
        }
    }
}
