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
}
