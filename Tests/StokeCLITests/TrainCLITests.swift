import Foundation
import Testing

@Suite("stoke train and distill")
struct TrainCLITests {
    @Test("stoke train --arch cnn:… trains from the loader, reports the JSON keys and saves a loadable model")
    func trainCNN() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try execute(stokeBinary, ["demo", "--generated", "--samples", "1200", "--directory", directory, "--data-only"]).status == 0)
        let train = try execute(stokeBinary, ["train", "\(directory)/train.h5", "--arch", "cnn:c4k3p1-bn-relu-mp2-do0.1-fc10", "-o", "\(directory)/cnn.h5",
                                              "--epochs", "2", "--batch-size", "50", "--lr", "0.01", "--eval", "\(directory)/test.h5", "--json"])
        try #require(train.status == 0, "\(train.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(train.stdout.utf8)) as? [String: Any])
        #expect(document["epochs"] as? Int == 2)
        #expect((document["samples_per_s"] as? Double ?? 0) > 0)
        #expect((document["train_loss"] as? Double ?? .infinity) < 2.3)
        // The generated classes are blobs at class-dependent positions: easy for a CNN.
        #expect((document["test_accuracy"] as? Double ?? 0) > 0.5, "\(document)")
        let inspect = try execute(stokeBinary, ["inspect", "\(directory)/cnn.h5", "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("BatchNormalization") || inspect.stdout.contains("Conv"), "\(inspect.stdout.prefix(400))")

        // A distilled MLP student from the CNN teacher, compared with the student alone.
        let distill = try execute(stokeBinary, ["distill", "\(directory)/train.h5", "--teacher", "\(directory)/cnn.h5", "--arch", "mlp:784-16-10",
                                                "-o", "\(directory)/student.h5", "--epochs", "1", "--eval", "\(directory)/test.h5", "--json"])
        try #require(distill.status == 0, "\(distill.stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(distill.stdout.utf8)) as? [String: Any])
        for key in ["teacher_accuracy", "student_alone_accuracy", "distilled_accuracy"] {
            #expect((0...1).contains(result[key] as? Double ?? -1), "\(key): \(result)")
        }
    }

    @Test("a bad --arch token is named in the one-line error")
    func badArchitecture() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (arch, token) in [("cnn:c16k3p1-relu-zz2-fc10", "zz2"), ("cnn:c16p1-fc10", "c16p1"), ("cnn:c8k3-do1.5-fc10", "do1.5"),
                              ("mlp:784-x-10", "x"), ("rnn:10", "rnn:10")] {
            let result = try execute(stokeBinary, ["train", "\(directory)/none.h5", "--arch", arch, "-o", "\(directory)/m.h5"])
            #expect(result.status != 0, "\(arch)")
            #expect(result.stderr.contains(token), "\(arch): \(result.stderr)")
        }
        #expect(try execute(stokeBinary, ["demo", "--generated", "--samples", "300", "--directory", directory, "--data-only"]).status == 0)
        // Shapes are checked against the store: a pool after flattening, an MLP of the wrong width.
        for (arch, text) in [("cnn:fc10-mp2", "mp2"), ("mlp:100-10", "100")] {
            let result = try execute(stokeBinary, ["train", "\(directory)/train.h5", "--arch", arch, "-o", "\(directory)/m.h5"])
            #expect(result.status != 0, "\(arch)")
            #expect(result.stderr.contains(text), "\(arch): \(result.stderr)")
        }
    }

    @Test("outputs that would destroy an input or land in a missing folder, wrong --eval stores and out-of-range labels fail at once with one line")
    func outputsAndStoresCheckedFirst() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try execute(stokeBinary, ["demo", "--generated", "--samples", "300", "--directory", directory, "--data-only"]).status == 0)
        let train = "\(directory)/train.h5", test = "\(directory)/test.h5"
        let before = try Data(contentsOf: URL(fileURLWithPath: train))
        let cases: [([String], String)] = [
            (["train", train, "--arch", "mlp:784-10", "-o", train], "is also an input"),
            (["train", train, "--arch", "mlp:784-10", "-o", "\(directory)/nowhere/m.h5"], "does not exist"),
            (["train", train, "--arch", "mlp:784-10", "-o", "\(directory)/m.h5", "--eval", "\(directory)/none.h5"], "none.h5"),
        ]
        for (arguments, message) in cases {
            let result = try execute(stokeBinary, arguments)
            let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
            #expect(result.status != 0 && lines.count == 1 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: train)) == before, "the training store is untouched")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/m.h5"), "nothing written before the --eval check")

        // A model whose output has 3 classes against labels 0-9: infer names the label instead of reporting 0%.
        let model = "\(directory)/three.h5"
        #expect(try execute(stokeBinary, ["train", train, "--arch", "mlp:784-3", "-o", model, "--epochs", "1"]).status != 0,
                "training itself refuses labels beyond the classes")
        let small = try execute(stokeBinary, ["train", train, "--arch", "mlp:784-10", "-o", "\(directory)/ten.h5", "--epochs", "1"])
        try #require(small.status == 0, "\(small.stderr)")
        let asStore = try execute(stokeBinary, ["infer", "\(directory)/ten.h5", "\(directory)/ten.h5"])
        #expect(asStore.status != 0 && asStore.stderr.contains("is a model file, not a store"), "\(asStore.stderr)")
        let made = try execute(venvPython, ["-c", """
            import numpy as np, sys; d = sys.argv[1]
            np.save(d + '/x.npy', np.zeros((40, 1, 28, 28), np.uint8)); np.save(d + '/y.npy', np.arange(40, dtype=np.int64) + 5)
            """, directory])
        try #require(made.status == 0, "\(made.stderr)")
        #expect(try execute(stokeBinary, ["pack", "--from", "npy", "\(directory)/x.npy", "--labels", "\(directory)/y.npy", "-o", "\(directory)/big.h5"]).status == 0)
        let badLabels = try execute(stokeBinary, ["infer", "\(directory)/ten.h5", "\(directory)/big.h5"])
        #expect(badLabels.status != 0 && badLabels.stderr.contains("outside the model's 10 classes"), "\(badLabels.stderr)")
        let overInput = try execute(stokeBinary, ["infer", "\(directory)/ten.h5", test, "--output", test])
        #expect(overInput.status != 0 && overInput.stderr.contains("is also an input"), "\(overInput.stderr)")
    }
}
